/*
 * fuzz_conn.h: drive the real connection code (conn.c, http1.c, http2.c,
 * request.c, file.c, body.c) with untrusted bytes, no seam in server/.
 *
 * One process-wide fake worker: an event_base, a config loaded by
 * config_load() from a generated file with a plain listener, and a small
 * site on disk. Each input becomes one connection: a socketpair whose
 * server end goes through conn_accept() exactly as an accepted TCP socket
 * would (plain listener: no TLS); the input is written to the client end,
 * which then half-closes. The event loop runs, draining the client end,
 * until the server has closed the connection. A connection that neither
 * closes nor makes progress is a bug (a stuck state), reported as a crash.
 *
 * HTTP/2 needs TLS to be chosen (ALPN), so fuzz_http2 sets h2_proto and
 * calls h2_start() on the accepted plain connection. http2.c's writer calls SSL_write /
 * SSL_get_error / SSL_sendfile on c->ssl even then; the linker wraps those
 * three (-Wl,--wrap=...) so that with ssl == NULL they write to the socket.
 */
#ifndef FUZZ_CONN_H
#define FUZZ_CONN_H

#define _GNU_SOURCE
#include "kttpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define FZ_SITE "/tmp/kttpd-fuzz-site"
#define FZ_MAX_INPUT (64 * 1024) /* fits a socketpair's buffer */

static struct worker fz_w;
static struct config *fz_cfg;
static int fz_ready;

static void fz_write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, data, n) != (ssize_t)n) {
		fprintf(stderr, "fuzz: cannot write %s: %s\n", path,
		    strerror(errno));
		abort();
	}
	close(fd);
}

/* The site: small files (under 4 KiB), one big one, an index, a dotfile. */
static void fz_site(void)
{
	static const char *const dirs[] = { FZ_SITE, FZ_SITE "/a",
		FZ_SITE "/a/sub", FZ_SITE "/a/c", FZ_SITE "/a/.well-known",
		FZ_SITE "/b", NULL };
	char big[40000];

	for (int i = 0; dirs[i]; i++)
		if (mkdir(dirs[i], 0755) < 0 && errno != EEXIST) {
			perror(dirs[i]);
			abort();
		}
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	fz_write_file(FZ_SITE "/a/index.html", "<p>index</p>\n", 13);
	fz_write_file(FZ_SITE "/a/a.txt", big, 100);
	fz_write_file(FZ_SITE "/a/big.bin", big, sizeof(big));
	fz_write_file(FZ_SITE "/a/empty", "", 0);
	fz_write_file(FZ_SITE "/a/sub/index.html", "sub\n", 4);
	fz_write_file(FZ_SITE "/a/c/x.css", "b{}\n", 4);
	fz_write_file(FZ_SITE "/a/.hidden", "no\n", 3);
	fz_write_file(FZ_SITE "/a/.well-known/t", "tok\n", 4);
	fz_write_file(FZ_SITE "/b/index.html", "b\n", 2);
}

static const char fz_conf[] =
    "workers = 1\n"
    "error_log = \"\"\n"
    "access_log = \"\"\n"
    "log_level = \"error\"\n"
    "max_request_head = 4096\n"
    "max_uri = 1024\n"
    "max_headers = 20\n"
    "keepalive_requests = 50\n"
    "http2_max_streams = 16\n"
    "server \"a.test\" {\n"
    "  aliases = { \"www.a.test\" }\n"
    "  listen = { \"127.0.0.1:9 default\" }\n"
    "  root = \"" FZ_SITE "/a\"\n"
    "  location \"/c/\" {\n"
    "    cache_control = \"max-age=60\"\n"
    "    expires = 60\n"
    "  }\n"
    "}\n"
    "server \"b.test\" {\n"
    "  listen = { \"127.0.0.1:9\" }\n"
    "  root = \"" FZ_SITE "/b\"\n"
    "}\n";

static void fz_init(void)
{
	if (fz_ready)
		return;
	signal(SIGPIPE, SIG_IGN);
	fz_site();
	fz_write_file(FZ_SITE "/fuzz.conf", fz_conf, sizeof(fz_conf) - 1);
	if (tls_init() < 0 ||
	    (fz_cfg = config_load(FZ_SITE "/fuzz.conf")) == NULL ||
	    log_configure(fz_cfg) < 0) {
		fprintf(stderr, "fuzz: config failed\n");
		abort();
	}
	config_serving();
	conn_protocols(&h1_proto, &h2_proto); /* as main does */
	fz_w.base = event_base_new();
	fz_w.cfg = fz_cfg;
	TAILQ_INIT(&fz_w.conns);
	fz_ready = 1;
}

/* The server end of the current connection, for fuzz_wrap.c. */
extern int fz_fd;

/* ---- one connection ---- */

static void fz_drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/*
 * Feed data to a new connection and run it to its close. h2: start an
 * HTTP/2 session on it; ktls: pretend kTLS TX (http2.c's other writer).
 */
static void fz_run_conn(const uint8_t *data, size_t size, int h2, int ktls)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons(40000),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct conn *c;
	int sv[2], stuck = 0;
	size_t off = 0;

	fz_init();
	if (size > FZ_MAX_INPUT)
		size = FZ_MAX_INPUT;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	        sv) < 0)
		abort();
	while (off < size) {
		ssize_t n = write(sv[1], data + off, size - off);
		if (n <= 0)
			abort(); /* 64 KiB fit in the socket buffer */
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	fz_fd = sv[0];

	conn_accept(&fz_w, &fz_cfg->listens[0], sv[0], (struct sockaddr *)&sin,
	    sizeof(sin));
	c = TAILQ_LAST(&fz_w.conns, conn_list);
	if (c != NULL && h2) {
		c->mode.ktls_tx = ktls ? 1 : 0;
		c->proto = &h2_proto; /* as ALPN would choose */
		if (h2_start(c) < 0)
			conn_close(c);
	}
	/* the peer end is always readable (EOF) or writable (drained): a
	 * healthy connection ends within a few turns */
	while (fz_w.nconns > 0) {
		event_base_loop(fz_w.base, EVLOOP_NONBLOCK);
		fz_drain(sv[1]);
		if (++stuck > 20000) {
			fprintf(stderr,
			    "fuzz: connection neither closed nor progressed "
			    "after 20000 turns (state %d)\n",
			    TAILQ_FIRST(&fz_w.conns)->state);
			abort();
		}
	}
	fz_fd = -1;
	close(sv[1]);
}

#endif
