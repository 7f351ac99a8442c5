/*
 * config.c: the config file (libconfuse) -> struct config.
 *
 * Checks that can point at a line run as libconfuse validators while the
 * file is parsed, so every error reads "FILE:LINE: problem". A config is
 * immutable once built; reload builds a new one and swaps it in, and each
 * connection keeps a reference to the generation it was accepted under.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <arpa/inet.h>
#include <confuse.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_CIPHERS                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_SUITES                                                         \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                       \
	"TLS_CHACHA20_POLY1305_SHA256"

static cfg_opt_t tls_opts[] = {
	CFG_STR("certificate", NULL, CFGF_NODEFAULT),
	CFG_STR("key", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("protocols", "{TLSv1.2,TLSv1.3}", CFGF_NONE),
	CFG_STR("ciphers", DEFAULT_CIPHERS, CFGF_NONE),
	CFG_STR("ciphersuites", DEFAULT_SUITES, CFGF_NONE),
	CFG_STR("ocsp_response", NULL, CFGF_NODEFAULT), /* issue 15 */
	CFG_END(),
};

/* Unset location options are taken from the server. */
static cfg_opt_t location_opts[] = {
	CFG_STR("root", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("index", NULL, CFGF_NODEFAULT),
	CFG_STR("cache_control", NULL, CFGF_NODEFAULT),
	CFG_INT("expires", 0, CFGF_NODEFAULT),
	CFG_BOOL("gzip", cfg_false, CFGF_NODEFAULT),
	CFG_BOOL("gzip_static", cfg_false, CFGF_NODEFAULT),
	CFG_BOOL("metrics", cfg_false, CFGF_NONE),
	CFG_BOOL("health", cfg_false, CFGF_NONE), /* health.c */
	CFG_STR_LIST("allow", NULL, CFGF_NODEFAULT),
	CFG_BOOL("autoindex", cfg_false, CFGF_NODEFAULT),
	CFG_STR_LIST("error_page", NULL, CFGF_NODEFAULT),
	/* issue 15: add_header (inherited only when a location has none)
	 * and return (a location's redirect) */
	CFG_STR_LIST("add_header", NULL, CFGF_NODEFAULT),
	CFG_STR("return", NULL, CFGF_NODEFAULT),
	CFG_END(),
};

static cfg_opt_t server_opts[] = {
	CFG_STR_LIST("aliases", "{}", CFGF_NONE),
	CFG_STR_LIST("listen", NULL, CFGF_NODEFAULT),
	CFG_SEC("tls", tls_opts, CFGF_NODEFAULT),
	CFG_STR("root", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("index", "{index.html}", CFGF_NONE),
	CFG_STR("cache_control", NULL, CFGF_NODEFAULT),
	CFG_INT("expires", 0, CFGF_NONE),
	CFG_BOOL("http2", cfg_true, CFGF_NONE),
	CFG_BOOL("gzip", cfg_false, CFGF_NONE),
	CFG_BOOL("gzip_static", cfg_false, CFGF_NONE),
	CFG_STR_LIST("allow", NULL, CFGF_NODEFAULT),
	CFG_BOOL("autoindex", cfg_false, CFGF_NONE),
	CFG_STR_LIST("error_page", NULL, CFGF_NODEFAULT),
	/* issue 15: add_header; plain HTTP redirected to https */
	CFG_STR_LIST("add_header", NULL, CFGF_NODEFAULT),
	CFG_BOOL("https_redirect", cfg_false, CFGF_NONE),
	CFG_SEC("location", location_opts,
	    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END(),
};

static cfg_opt_t root_opts[] = {
	CFG_INT("workers", 0, CFGF_NONE),
	CFG_STR("user", "", CFGF_NONE),
	CFG_STR("group", "", CFGF_NONE),
	CFG_STR("pid_file", "", CFGF_NONE),
	CFG_STR("error_log", "stderr", CFGF_NONE),
	CFG_STR("log_level", "info", CFGF_NONE),
	CFG_STR("access_log", "", CFGF_NONE),
	CFG_STR("access_log_format", "combined", CFGF_NONE),
	CFG_STR("mime_types", "/etc/mime.types", CFGF_NONE),
	CFG_BOOL("server_tokens", cfg_true, CFGF_NONE),
	CFG_BOOL("ktls", cfg_true, CFGF_NONE),
	CFG_BOOL("ktls_placement", cfg_true, CFGF_NONE),
	CFG_INT("max_connections", KT_DEF_MAX_CONNECTIONS, CFGF_NONE),
	CFG_INT("max_request_head", KT_DEF_MAX_REQUEST_HEAD, CFGF_NONE),
	CFG_INT("max_uri", KT_DEF_MAX_URI, CFGF_NONE),
	CFG_INT("max_headers", KT_DEF_MAX_HEADERS, CFGF_NONE),
	CFG_INT("keepalive_requests", KT_DEF_KEEPALIVE_REQUESTS, CFGF_NONE),
	CFG_INT("max_ranges", 16, CFGF_NONE),
	CFG_INT("open_file_cache", 0, CFGF_NONE),
	/* issue 13: open-file cache invalidation and small bodies */
	CFG_BOOL("open_file_cache_watch", cfg_true, CFGF_NONE),
	CFG_INT("open_file_cache_body", KT_DEF_OFC_BODY, CFGF_NONE),
	CFG_INT("open_file_cache_memory", KT_DEF_OFC_MEMORY, CFGF_NONE),
	CFG_INT("access_log_buffer", 0, CFGF_NONE),
	CFG_INT("aio_threads", KT_DEF_AIO_THREADS, CFGF_NONE),
	CFG_INT("aio_queue", KT_DEF_AIO_QUEUE, CFGF_NONE),
	CFG_INT("aio_chunk", KT_DEF_AIO_CHUNK, CFGF_NONE),
	CFG_INT("handshake_timeout", KT_DEF_HANDSHAKE_TIMEOUT, CFGF_NONE),
	CFG_INT("header_timeout", KT_DEF_HEADER_TIMEOUT, CFGF_NONE),
	CFG_INT("keepalive_timeout", KT_DEF_KEEPALIVE_TIMEOUT, CFGF_NONE),
	CFG_INT("send_timeout", KT_DEF_SEND_TIMEOUT, CFGF_NONE),
	CFG_INT("shutdown_timeout", KT_DEF_SHUTDOWN_TIMEOUT, CFGF_NONE),
	/* drain (health.c) */
	CFG_INT("drain_timeout", KT_DEF_DRAIN_TIMEOUT, CFGF_NONE),
	CFG_INT("drain_idle", KT_DEF_DRAIN_IDLE, CFGF_NONE),
	CFG_BOOL("session_tickets", cfg_true, CFGF_NONE),
	CFG_INT("session_cache", KT_DEF_SESSION_CACHE, CFGF_NONE),
	CFG_INT("session_timeout", KT_DEF_SESSION_TIMEOUT, CFGF_NONE),
	CFG_INT("http2_max_streams", KT_DEF_H2_MAX_STREAMS, CFGF_NONE),
	CFG_INT("http2_reset_burst", KT_DEF_H2_RESET_BURST, CFGF_NONE),
	CFG_INT("http2_reset_rate", KT_DEF_H2_RESET_RATE, CFGF_NONE),
	CFG_STR_LIST("gzip_types",
	    "{\"text/html\",\"text/css\",\"text/plain\",\"text/javascript\","
	    "\"application/javascript\",\"application/json\","
	    "\"application/xml\",\"image/svg+xml\",\"text/xml\"}",
	    CFGF_NONE),
	CFG_STR("gzip_cache", "", CFGF_NONE),
	CFG_INT("gzip_min_size", 256, CFGF_NONE),
	CFG_INT("gzip_max_size", 1 << 20, CFGF_NONE),
	CFG_INT("gzip_level", 6, CFGF_NONE),
	CFG_INT("gzip_cache_size", 256 << 20, CFGF_NONE),
	/* per-client limits (clientlimit.c) */
	CFG_INT("client_max_connections", 0, CFGF_NONE),
	CFG_INT("client_rate", 0, CFGF_NONE),
	CFG_INT("client_burst", 0, CFGF_NONE),
	CFG_INT("client_conn_status", KT_DEF_CLIENT_CONN_STATUS, CFGF_NONE),
	CFG_INT("client_rate_status", KT_DEF_CLIENT_RATE_STATUS, CFGF_NONE),
	CFG_INT("client_ipv4_prefix", 32, CFGF_NONE),
	CFG_INT("client_ipv6_prefix", 64, CFGF_NONE),
	CFG_INT("client_table_size", KT_DEF_CLIENT_TABLE_SIZE, CFGF_NONE),
	CFG_STR_LIST("client_limit_exempt", "{}", CFGF_NONE),
	/* session ticket keys (ticket.c) */
	CFG_INT("session_ticket_rotate", KT_DEF_TICKET_ROTATE, CFGF_NONE),
	CFG_STR("session_ticket_key_file", "", CFGF_NONE),
	CFG_SEC("server", server_opts,
	    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END(),
};

/* Numeric options and their allowed ranges. */
static const struct {
	const char *name;
	long min, max;
	size_t off;
} numbers[] = {
#define N(name, min, max)                                                      \
	{                                                                      \
#name, min, max, offsetof(struct config, name)                 \
	}
	N(max_connections, 1, 10000000),
	N(max_request_head, 256, 1 << 20),
	N(max_uri, 16, 1 << 20),
	N(max_headers, 1, 10000),
	N(keepalive_requests, 1, 100000000),
	N(max_ranges, 1, 1000),
	N(open_file_cache, 0, 1000000),
	N(open_file_cache_body, 0, 1 << 20),    /* issue 13 */
	N(open_file_cache_memory, 0, 1L << 30), /* issue 13 */
	N(access_log_buffer, 0, 16 << 20),
	N(aio_threads, 0, 64),
	N(aio_queue, 1, 4096), /* the worker pipes hold 8192 pointers */
	N(aio_chunk, 64 << 10, 64 << 20),
	N(handshake_timeout, 1, 3600),
	N(header_timeout, 1, 3600),
	N(keepalive_timeout, 0, 86400),
	N(send_timeout, 1, 86400),
	N(shutdown_timeout, 0, 86400),
	N(drain_timeout, 0, 86400), /* drain (health.c) */
	N(drain_idle, 0, 86400),
	N(session_cache, 0, 10000000),
	N(session_timeout, 1, 86400 * 7),
	N(http2_max_streams, 1, 10000),
	N(http2_reset_burst, 1, 1000000),
	N(http2_reset_rate, 1, 1000000),
	N(gzip_min_size, 0, 1L << 40),
	N(gzip_max_size, 0, 1L << 40),
	N(gzip_level, 1, 9),
	N(gzip_cache_size, 1 << 20, 1L << 50),
	/* per-client limits (clientlimit.c) */
	N(client_max_connections, 0, 1000000),
	N(client_rate, 0, 1000000),
	N(client_burst, 0, 1000000),
	N(client_conn_status, 400, 599), /* 444: close, answer nothing */
	N(client_rate_status, 400, 599),
	N(client_ipv4_prefix, 1, 32),
	N(client_ipv6_prefix, 1, 128),
	N(client_table_size, 1024, 1 << 24),
	/* session ticket keys (ticket.c) */
	N(session_ticket_rotate, 1, 86400 * 7),
#undef N
};

static int serving; /* errors go to the error log once we serve */

void config_serving(void)
{
	serving = 1;
}

static void errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512], where[512] = "";

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (cfg != NULL && cfg->filename != NULL)
		snprintf(
		    where, sizeof(where), "%s:%d: ", cfg->filename, cfg->line);
	if (serving)
		log_error("config: %s%s", where, msg);
	else
		fprintf(stderr, "kttpd: %s%s\n", where, msg);
}

/* ---- validators: run during the parse, so errors carry a line ---- */

static int v_workers(cfg_t *cfg, cfg_opt_t *opt)
{
	long v = cfg_opt_getnint(opt, 0);

	if (v < 0 || v > KT_MAX_WORKERS) {
		cfg_error(cfg, "workers must be 0 (one per CPU) to %d",
		    KT_MAX_WORKERS);
		return -1;
	}
	return 0;
}

static int v_number(cfg_t *cfg, cfg_opt_t *opt)
{
	long v = cfg_opt_getnint(opt, 0);

	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		if (strcmp(numbers[i].name, opt->name) != 0)
			continue;
		if (v < numbers[i].min || v > numbers[i].max) {
			cfg_error(cfg, "%s = %ld: must be %ld to %ld",
			    opt->name, v, numbers[i].min, numbers[i].max);
			return -1;
		}
	}
	return 0;
}

static int one_of(cfg_t *cfg, cfg_opt_t *opt, const char *const *words)
{
	const char *v = cfg_opt_getnstr(opt, 0);

	for (int i = 0; words[i]; i++)
		if (strcmp(v, words[i]) == 0)
			return i;
	cfg_error(
	    cfg, "%s = \"%s\": not one of the known values", opt->name, v);
	return -1;
}

static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const formats[] = { "combined", "json", NULL };

static int v_level(cfg_t *cfg, cfg_opt_t *opt)
{
	return one_of(cfg, opt, levels) < 0 ? -1 : 0;
}

static int v_format(cfg_t *cfg, cfg_opt_t *opt)
{
	return one_of(cfg, opt, formats) < 0 ? -1 : 0;
}

static int v_readable(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *path = cfg_opt_getnstr(opt, 0);

	if (access(path, R_OK) != 0) {
		cfg_error(
		    cfg, "%s \"%s\": %s", opt->name, path, strerror(errno));
		return -1;
	}
	return 0;
}

static int v_directory(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *path = cfg_opt_getnstr(opt, 0);
	struct stat st;

	if (stat(path, &st) != 0) {
		cfg_error(cfg, "root \"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		cfg_error(cfg, "root \"%s\": not a directory", path);
		return -1;
	}
	return 0;
}

static int parse_protocol(const char *s)
{
	if (strcmp(s, "TLSv1.2") == 0)
		return 0x0303;
	if (strcmp(s, "TLSv1.3") == 0)
		return 0x0304;
	return -1;
}

static int v_protocols(cfg_t *cfg, cfg_opt_t *opt)
{
	if (cfg_opt_size(opt) == 0) {
		cfg_error(cfg, "protocols: empty; want TLSv1.2 and/or TLSv1.3");
		return -1;
	}
	for (unsigned i = 0; i < cfg_opt_size(opt); i++) {
		if (parse_protocol(cfg_opt_getnstr(opt, i)) < 0) {
			cfg_error(cfg,
			    "protocols: \"%s\" is not TLSv1.2 or TLSv1.3",
			    cfg_opt_getnstr(opt, i));
			return -1;
		}
	}
	return 0;
}

/*
 * "address:port [tls] [proxy] [default]", address numeric: 1.2.3.4, [::1], * or
 * nothing (all IPv4 addresses).
 */
static int parse_listen(const char *spec, struct listen_addr *la,
    int *is_default, char *err, size_t errlen)
{
	char buf[128], host[INET6_ADDRSTRLEN], *save, *addr, *word, *port, *end;
	long p;

	memset(la, 0, sizeof(*la));
	*is_default = 0;
	if (strlen(spec) >= sizeof(buf))
		goto bad;
	strcpy(buf, spec);
	addr = strtok_r(buf, " \t", &save);
	if (addr == NULL)
		goto bad;
	while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strcmp(word, "tls") == 0)
			la->tls = 1;
		else if (strcmp(word, "proxy") == 0)
			la->proxy = 1;
		else if (strcmp(word, "default") == 0)
			*is_default = 1;
		else {
			snprintf(err, errlen,
			    "listen \"%s\": unknown flag \"%s\" (tls, proxy, "
			    "default)",
			    spec, word);
			return -1;
		}
	}
	port = strrchr(addr, ':');
	if (port == NULL || (addr[0] == '[' && port[-1] != ']')) {
		port = addr; /* port alone */
		addr = (char *)"*";
	} else
		*port++ = '\0';
	p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
		goto bad;
	if (addr[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&la->ss;
		size_t n = strlen(addr);
		if (n < 2 || addr[n - 1] != ']')
			goto bad;
		addr[n - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, addr + 1, &s6->sin6_addr) != 1)
			goto bad;
		la->sslen = sizeof(*s6);
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(la->key, sizeof(la->key), "[%s]:%ld/%s", host, p,
		    la->tls ? "tls" : "tcp");
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&la->ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		if (strcmp(addr, "*") == 0 || *addr == '\0')
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			goto bad;
		la->sslen = sizeof(*s4);
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(la->key, sizeof(la->key), "%s:%ld/%s", host, p,
		    la->tls ? "tls" : "tcp");
	}
	return 0;
bad:
	snprintf(err, errlen,
	    "listen \"%s\": want \"address:port [tls] [default]\" with a "
	    "numeric address",
	    spec);
	return -1;
}

static int v_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	struct listen_addr la;
	char err[256];
	int def;

	for (unsigned i = 0; i < cfg_opt_size(opt); i++) {
		if (parse_listen(cfg_opt_getnstr(opt, i), &la, &def, err,
		        sizeof(err)) < 0) {
			cfg_error(cfg, "%s", err);
			return -1;
		}
	}
	return 0;
}

/* The gzip cache folder: made if missing, and ours to write. */
static int gzip_cache_set; /* seen while parsing: servers may use gzip */

static int v_gzip_cache(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *dir = cfg_opt_getnstr(opt, 0);

	gzip_cache_set = *dir != '\0';
	if (!gzip_cache_set)
		return 0;
	if ((mkdir(dir, 0750) < 0 && errno != EEXIST) ||
	    access(dir, W_OK | X_OK) != 0) {
		cfg_error(cfg, "gzip_cache \"%s\": %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * session_ticket_key_file: nginx's format, KT_TICKET_KEY_LEN bytes a key
 * (`openssl rand 80`), several keys one after another; the first
 * encrypts. Read here, so a bad file is a FILE:LINE error and a reload
 * with one keeps the keys in use.
 */
static unsigned char *ticket_file_keys;
static int ticket_file_nkeys;

static void drop_file_keys(void)
{
	if (ticket_file_keys != NULL)
		OPENSSL_cleanse(ticket_file_keys,
		    (size_t)ticket_file_nkeys * KT_TICKET_KEY_LEN);
	free(ticket_file_keys);
	ticket_file_keys = NULL;
}

static int v_ticket_file(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *path = cfg_opt_getnstr(opt, 0);
	unsigned char buf[KT_TICKET_KEYS_MAX * KT_TICKET_KEY_LEN + 1];
	struct stat st;
	ssize_t n = 0, k;
	int fd;

	if (*path == '\0')
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		cfg_error(cfg, "session_ticket_key_file \"%s\": %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(buf))
		n = st.st_size; /* too large: say how large */
	else
		while ((size_t)n < sizeof(buf) &&
		    (k = read(fd, buf + n, sizeof(buf) - (size_t)n)) > 0)
			n += k;
	close(fd);
	if (n == 0 || n % KT_TICKET_KEY_LEN != 0 || (size_t)n >= sizeof(buf)) {
		cfg_error(cfg,
		    "session_ticket_key_file \"%s\": %zd bytes; want %d to "
		    "%d keys of %d bytes (openssl rand %d > FILE)",
		    path, n, 1, KT_TICKET_KEYS_MAX, KT_TICKET_KEY_LEN,
		    KT_TICKET_KEY_LEN);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	drop_file_keys();
	if ((ticket_file_keys = malloc((size_t)n)) == NULL) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	memcpy(ticket_file_keys, buf, (size_t)n);
	ticket_file_nkeys = (int)(n / KT_TICKET_KEY_LEN);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* gzip = true needs somewhere to keep what it makes. */
static int v_gzip(cfg_t *cfg, cfg_opt_t *opt)
{
	if (cfg_opt_getnbool(opt, 0) && !gzip_cache_set) {
		cfg_error(cfg,
		    "gzip = true needs gzip_cache (a folder), set "
		    "before the servers");
		return -1;
	}
	return 0;
}

/* "10.0.0.0/8", "::1", "192.0.2.7": an address and a prefix length. */
static int parse_cidr(const char *s, struct cidr *c, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long bits;

	memset(c, 0, sizeof(*c));
	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		c->bits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		c->bits = 128;
	} else
		goto bad;
	if (slash != NULL) {
		bits = strtol(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || bits < 0 ||
		    bits > c->bits)
			goto bad;
		c->bits = (int)bits;
	}
	return 0;
bad:
	snprintf(
	    err, errlen, "allow \"%s\": want an address or address/bits", s);
	return -1;
}

static int v_allow(cfg_t *cfg, cfg_opt_t *opt)
{
	struct cidr c;
	char err[256];

	for (unsigned i = 0; i < cfg_opt_size(opt); i++)
		if (parse_cidr(cfg_opt_getnstr(opt, i), &c, err, sizeof(err)) <
		    0) {
			cfg_error(cfg, "%s", err);
			return -1;
		}
	return 0;
}

/* error_page = { "404 /errors/404.html", ... } */
static int v_error_page(cfg_t *cfg, cfg_opt_t *opt)
{
	for (unsigned i = 0; i < cfg_opt_size(opt); i++) {
		const char *v = cfg_opt_getnstr(opt, i), *sp = strchr(v, ' ');
		int status = atoi(v);
		if (status < 400 || status > 599 || sp == NULL ||
		    sp[1] != '/') {
			cfg_error(cfg,
			    "error_page \"%s\": want \"STATUS /path\" with "
			    "a 4xx or 5xx status",
			    v);
			return -1;
		}
	}
	return 0;
}

/* issue 15: add_header = { "Name: value [always]", ... } */
static int v_add_header(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned n = cfg_opt_size(opt);
	const char *list[KT_ADD_HEADERS_MAX + 1];
	char err[320];

	for (unsigned i = 0; i < n && i <= KT_ADD_HEADERS_MAX; i++)
		list[i] = cfg_opt_getnstr(opt, i);
	if (headers_check(list, (int)n, err, sizeof(err)) < 0) {
		cfg_error(cfg, "%s", err);
		return -1;
	}
	return 0;
}

/* issue 15: return = "301 https://example.com$request_uri" */
static int v_return(cfg_t *cfg, cfg_opt_t *opt)
{
	char err[320];

	if (redirect_check(cfg_opt_getnstr(opt, 0), err, sizeof(err)) < 0) {
		cfg_error(cfg, "%s", err);
		return -1;
	}
	return 0;
}

static int v_location(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *loc = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	const char *prefix = cfg_title(loc);

	if (prefix == NULL || prefix[0] != '/') {
		cfg_error(cfg, "location \"%s\": the prefix must start with /",
		    prefix ? prefix : "");
		return -1;
	}
	return 0;
}

/* A tls section's settings; tp holds them, and is returned. */
static const struct tls_params *tls_params(cfg_t *tls, struct tls_params *tp)
{
	memset(tp, 0, sizeof(*tp));
	tp->cert = cfg_getstr(tls, "certificate");
	tp->key = cfg_getstr(tls, "key");
	tp->ciphers = cfg_getstr(tls, "ciphers");
	tp->suites = cfg_getstr(tls, "ciphersuites");
	tp->ocsp = cfg_size(tls, "ocsp_response")
	    ? cfg_getstr(tls, "ocsp_response")
	    : NULL; /* issue 15 */
	tp->min = 0x0304;
	tp->max = 0x0303;
	for (unsigned i = 0; i < cfg_size(tls, "protocols"); i++) {
		int v = parse_protocol(cfg_getnstr(tls, "protocols", i));
		tp->min = v < tp->min ? v : tp->min;
		tp->max = v > tp->max ? v : tp->max;
	}
	return tp;
}

static int v_tls(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *tls = cfg_opt_getnsec(opt, 0);
	struct tls_params tp;
	char err[256];
	void *ctx;

	if (cfg_size(tls, "certificate") == 0 || cfg_size(tls, "key") == 0) {
		cfg_error(cfg, "tls: certificate and key are both required");
		return -1;
	}
	if (cfg_size(tls, "protocols") == 0) { /* an empty list skips
		                                  v_protocols */
		cfg_error(cfg, "tls: protocols is empty");
		return -1;
	}
	tls_params(tls, &tp);
	if ((ctx = tls_ctx_new(&tp, err, sizeof(err))) == NULL) {
		cfg_error(cfg, "tls: %s", err);
		return -1;
	}
	tls_ctx_free(ctx);
	return 0;
}

/* Same address and port, with or without tls: key up to its "/". */
static int same_socket(const struct listen_addr *a, const struct listen_addr *b)
{
	size_t n = strcspn(a->key, "/");

	return strncmp(a->key, b->key, n) == 0 && b->key[n] == '/';
}

/* One address cannot be plain for one server and tls for another. */
static int listen_conflict(cfg_t *cfg, cfg_opt_t *opt, cfg_t *srv)
{
	struct listen_addr a, b;
	char err[256];
	int def;

	for (unsigned i = 0; i < cfg_size(srv, "listen"); i++) {
		parse_listen(
		    cfg_getnstr(srv, "listen", i), &a, &def, err, sizeof(err));
		for (unsigned s = 0; s < cfg_opt_size(opt); s++) {
			cfg_t *other = cfg_opt_getnsec(opt, s);
			for (unsigned k = 0; k < cfg_size(other, "listen");
			     k++) {
				parse_listen(cfg_getnstr(other, "listen", k),
				    &b, &def, err, sizeof(err));
				if (same_socket(&a, &b) &&
				    (a.tls != b.tls || a.proxy != b.proxy)) {
					cfg_error(cfg,
					    "listen \"%s\": the same address "
					    "has other flags (tls, proxy) for "
					    "server \"%s\"",
					    a.tls
					        ? cfg_getnstr(
					              other, "listen", k)
					        : cfg_getnstr(srv, "listen", i),
					    a.tls ? cfg_title(other)
					          : cfg_title(srv));
					return -1;
				}
			}
		}
	}
	return 0;
}

static int v_server(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *srv = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	const char *name = cfg_title(srv);
	struct listen_addr la;
	char err[256];
	int tls_listen = 0, def;

	if (cfg_size(srv, "listen") == 0) {
		cfg_error(cfg, "server \"%s\": no listen address", name);
		return -1;
	}
	if (cfg_size(srv, "root") == 0) {
		cfg_error(cfg, "server \"%s\": no root", name);
		return -1;
	}
	for (unsigned i = 0; i < cfg_size(srv, "listen"); i++)
		if (parse_listen(cfg_getnstr(srv, "listen", i), &la, &def, err,
		        sizeof(err)) == 0 &&
		    la.tls)
			tls_listen = 1;
	if (listen_conflict(cfg, opt, srv) < 0)
		return -1;
	if (tls_listen && cfg_size(srv, "tls") == 0) {
		cfg_error(cfg,
		    "server \"%s\": a tls listen address needs a "
		    "tls section",
		    name);
		return -1;
	}
	return 0;
}

/* ---- building the config ---- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int location_fill(
    struct location *l, const char *prefix, cfg_t *srv, cfg_t *loc)
{
	cfg_t *src;

	l->root_fd = -1;
	l->prefix = strdup(prefix);
	l->prefix_len = strlen(prefix);
	src = loc && cfg_size(loc, "root") ? loc : srv;
	l->root = strdup(cfg_getstr(src, "root"));
	if (l->prefix == NULL || l->root == NULL)
		return -1;
	l->root_fd = open(l->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (l->root_fd < 0) {
		log_error("root %s: %s", l->root, strerror(errno));
		return -1;
	}
	{ /* issue 13: the open-file cache keys files by the root's inode */
		struct stat st;
		if (fstat(l->root_fd, &st) < 0)
			return -1;
		l->root_dev = st.st_dev;
		l->root_ino = st.st_ino;
	}
	src = loc && cfg_size(loc, "index") ? loc : srv;
	for (unsigned i = 0; i < cfg_size(src, "index") && i < KT_MAX_INDEX;
	     i++)
		if ((l->index[l->nindex++] = strdup(
		         cfg_getnstr(src, "index", i))) == NULL)
			return -1;
	src = loc && cfg_size(loc, "cache_control") ? loc : srv;
	l->cache_control = dup_or_null(cfg_getstr(src, "cache_control"));
	src = loc && cfg_size(loc, "expires") ? loc : srv;
	l->expires = cfg_getint(src, "expires");
	src = loc && cfg_size(loc, "gzip") ? loc : srv;
	l->gzip = cfg_getbool(src, "gzip");
	src = loc && cfg_size(loc, "gzip_static") ? loc : srv;
	l->gzip_static = cfg_getbool(src, "gzip_static");
	l->metrics = loc ? cfg_getbool(loc, "metrics") : 0;
	l->health = loc ? cfg_getbool(loc, "health") : 0;
	src = loc && cfg_size(loc, "autoindex") ? loc : srv;
	l->autoindex = cfg_getbool(src, "autoindex");
	src = loc && cfg_size(loc, "error_page") ? loc : srv;
	if ((l->nerrpages = (int)cfg_size(src, "error_page")) > 0) {
		l->errpages = calloc(
		    (size_t)l->nerrpages, sizeof(*l->errpages));
		if (l->errpages == NULL)
			return -1;
		for (int i = 0; i < l->nerrpages; i++) {
			const char *v = cfg_getnstr(
			    src, "error_page", (unsigned)i);
			l->errpages[i].status = atoi(v);
			if ((l->errpages[i].path = strdup(
			         strchr(v, ' ') + 1)) == NULL)
				return -1;
		}
	}
	/* issue 15: a location with add_header lists has only its own */
	src = loc && cfg_size(loc, "add_header") ? loc : srv;
	if (cfg_size(src, "add_header") > 0) {
		const char *list[KT_ADD_HEADERS_MAX];
		unsigned n = cfg_size(src, "add_header");
		for (unsigned i = 0; i < n && i < KT_ADD_HEADERS_MAX; i++)
			list[i] = cfg_getnstr(src, "add_header", i);
		if ((l->headers = headers_new(list, (int)n)) == NULL)
			return -1;
	}
	if (loc && cfg_size(loc, "return") &&
	    (l->ret = redirect_new(cfg_getstr(loc, "return"))) == NULL)
		return -1;
	src = loc && cfg_size(loc, "allow") ? loc : srv;
	if ((l->nallow = (int)cfg_size(src, "allow")) > 0) {
		char err[256];
		if ((l->allow = calloc((size_t)l->nallow, sizeof(*l->allow))) ==
		    NULL)
			return -1;
		for (int i = 0; i < l->nallow; i++)
			parse_cidr(cfg_getnstr(src, "allow", (unsigned)i),
			    &l->allow[i], err, sizeof(err));
	}
	return 0;
}

static int by_prefix_len(const void *a, const void *b)
{
	const struct location *x = a, *y = b;

	return (int)y->prefix_len - (int)x->prefix_len;
}

/* issue 15: https_redirect goes to the server's first tls port (443
 * is left out of the URL; no tls listener here: 443, a balancer's) */
static struct redirect *https_redirect(cfg_t *srv)
{
	char spec[64], err[256];
	struct listen_addr la;
	int port = 443, def;

	for (unsigned i = 0; i < cfg_size(srv, "listen"); i++)
		if (parse_listen(cfg_getnstr(srv, "listen", i), &la, &def, err,
		        sizeof(err)) == 0 &&
		    la.tls) {
			port = ntohs(la.ss.ss_family == AF_INET6
			        ? ((struct sockaddr_in6 *)&la.ss)->sin6_port
			        : ((struct sockaddr_in *)&la.ss)->sin_port);
			break;
		}
	if (port == 443)
		snprintf(spec, sizeof(spec), "301 https://$host$request_uri");
	else
		snprintf(spec, sizeof(spec), "301 https://$host:%d$request_uri",
		    port);
	return redirect_new(spec);
}

static int vhost_build(struct config *cfg, struct vhost *vh, cfg_t *srv)
{
	struct tls_params tp;
	unsigned nloc = cfg_size(srv, "location");
	int have_root_loc = 0;

	vh->cfg = cfg;
	vh->http2 = cfg_getbool(srv, "http2");
	vh->name = strdup(cfg_title(srv));
	vh->naliases = (int)cfg_size(srv, "aliases");
	vh->aliases = calloc((size_t)vh->naliases + 1, sizeof(char *));
	vh->locs = calloc(nloc + 1, sizeof(*vh->locs));
	if (vh->name == NULL || vh->aliases == NULL || vh->locs == NULL)
		return -1;
	for (int i = 0; i < vh->naliases; i++)
		if ((vh->aliases[i] = strdup(
		         cfg_getnstr(srv, "aliases", (unsigned)i))) == NULL)
			return -1;
	for (unsigned i = 0; i < nloc; i++) {
		cfg_t *loc = cfg_getnsec(srv, "location", i);
		if (strcmp(cfg_title(loc), "/") == 0)
			have_root_loc = 1;
		if (location_fill(
		        &vh->locs[vh->nlocs++], cfg_title(loc), srv, loc) < 0)
			return -1;
	}
	if (!have_root_loc &&
	    location_fill(&vh->locs[vh->nlocs++], "/", srv, NULL) < 0)
		return -1;
	qsort(vh->locs, (size_t)vh->nlocs, sizeof(*vh->locs), by_prefix_len);
	if (cfg_getbool(srv, "https_redirect") &&
	    (vh->https_redirect = https_redirect(srv)) == NULL)
		return -1;
	if (cfg_size(srv, "tls") > 0)
		return tls_vhost_setup(
		    cfg, vh, tls_params(cfg_getsec(srv, "tls"), &tp));
	return 0;
}

/* Gather every server's listen addresses into one table, by address. */
static int listens_build(struct config *cfg, cfg_t *root)
{
	int nsrv = cfg->nvhosts, total = 0;

	for (int s = 0; s < nsrv; s++)
		total += (int)cfg_size(
		    cfg_getnsec(root, "server", (unsigned)s), "listen");
	cfg->listens = calloc((size_t)total, sizeof(*cfg->listens));
	if (cfg->listens == NULL)
		return -1;
	for (int s = 0; s < nsrv; s++) {
		cfg_t *srv = cfg_getnsec(root, "server", (unsigned)s);
		struct vhost *vh = &cfg->vhosts[s];
		for (unsigned i = 0; i < cfg_size(srv, "listen"); i++) {
			struct listen_addr tmp, *la = NULL;
			char err[256];
			int def;

			parse_listen(cfg_getnstr(srv, "listen", i), &tmp, &def,
			    err, sizeof(err));
			for (int k = 0; k < cfg->nlistens; k++)
				if (strcmp(cfg->listens[k].key, tmp.key) == 0)
					la = &cfg->listens[k];
			if (la == NULL) {
				la = &cfg->listens[cfg->nlistens++];
				*la = tmp;
				la->spec = strdup(
				    cfg_getnstr(srv, "listen", i));
				la->vhosts = calloc((size_t)nsrv, sizeof(vh));
				if (la->spec == NULL || la->vhosts == NULL)
					return -1;
			}
			if (def || la->def == NULL)
				la->def = vh;
			if (la->nvhosts > 0 &&
			    la->vhosts[la->nvhosts - 1] == vh)
				continue; /* named twice by one server */
			la->vhosts[la->nvhosts++] = vh;
		}
	}
	return 0;
}

static int globals_build(struct config *cfg, cfg_t *root)
{
	cfg->workers = (int)cfg_getint(root, "workers");
	if (cfg->workers == 0)
		cfg->workers = sys_ncpu();
	if (cfg->workers > KT_MAX_WORKERS)
		cfg->workers = KT_MAX_WORKERS;
	cfg->user = strdup(cfg_getstr(root, "user"));
	cfg->group = strdup(cfg_getstr(root, "group"));
	cfg->pid_file = strdup(cfg_getstr(root, "pid_file"));
	cfg->error_log = strdup(cfg_getstr(root, "error_log"));
	cfg->access_log = strdup(cfg_getstr(root, "access_log"));
	cfg->mime_types = strdup(cfg_getstr(root, "mime_types"));
	for (int i = 0; levels[i]; i++)
		if (strcmp(cfg_getstr(root, "log_level"), levels[i]) == 0)
			cfg->log_level = i;
	cfg->access_json = strcmp(cfg_getstr(root, "access_log_format"),
	                       "json") == 0;
	cfg->server_tokens = cfg_getbool(root, "server_tokens");
	cfg->ktls = cfg_getbool(root, "ktls");
	cfg->ktls_placement = cfg_getbool(root, "ktls_placement");
	cfg->session_tickets = cfg_getbool(root, "session_tickets");
	cfg->open_file_cache_watch = cfg_getbool(root, "open_file_cache_watch");
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
		*(long *)((char *)cfg + numbers[i].off) = cfg_getint(
		    root, numbers[i].name);
	if (cfg->user == NULL || cfg->group == NULL || cfg->pid_file == NULL ||
	    cfg->error_log == NULL || cfg->access_log == NULL ||
	    cfg->mime_types == NULL)
		return -1;
	cfg->ngzip_types = (int)cfg_size(root, "gzip_types");
	cfg->gzip_types = calloc((size_t)cfg->ngzip_types + 1, sizeof(char *));
	cfg->gzip_cache = strdup(cfg_getstr(root, "gzip_cache"));
	if (cfg->gzip_types == NULL || cfg->gzip_cache == NULL)
		return -1;
	for (int i = 0; i < cfg->ngzip_types; i++)
		if ((cfg->gzip_types[i] = strdup(
		         cfg_getnstr(root, "gzip_types", (unsigned)i))) == NULL)
			return -1;
	if ((cfg->nclient_exempt = (int)cfg_size(root, "client_limit_exempt")) >
	    0) {
		char err[256];
		cfg->client_exempt = calloc(
		    (size_t)cfg->nclient_exempt, sizeof(*cfg->client_exempt));
		if (cfg->client_exempt == NULL)
			return -1;
		for (int i = 0; i < cfg->nclient_exempt; i++)
			parse_cidr(cfg_getnstr(root, "client_limit_exempt",
			               (unsigned)i),
			    &cfg->client_exempt[i], err, sizeof(err));
	}
	cfg->session_ticket_key_file = strdup(
	    cfg_getstr(root, "session_ticket_key_file"));
	if (cfg->session_ticket_key_file == NULL)
		return -1;
	if (*cfg->session_ticket_key_file) { /* read by v_ticket_file */
		cfg->ticket_keys = ticket_file_keys;
		cfg->nticket_keys = ticket_file_nkeys;
		ticket_file_keys = NULL;
	}
	cfg->mime = mime_load(cfg->mime_types);
	return cfg->mime == NULL ? -1 : 0;
}

static void config_free(struct config *cfg)
{
	for (int i = 0; i < cfg->nvhosts; i++) {
		struct vhost *vh = &cfg->vhosts[i];
		for (int k = 0; k < vh->naliases; k++)
			free(vh->aliases[k]);
		for (int k = 0; k < vh->nlocs; k++) {
			struct location *l = &vh->locs[k];
			for (int x = 0; x < l->nindex; x++)
				free(l->index[x]);
			if (l->root_fd >= 0)
				close(l->root_fd);
			free(l->prefix);
			free(l->root);
			free(l->cache_control);
			free(l->allow);
			for (int x = 0; x < l->nerrpages; x++)
				free(l->errpages[x].path);
			free(l->errpages);
			headers_free(l->headers);
			redirect_free(l->ret);
		}
		redirect_free(vh->https_redirect);
		tls_ctx_free(vh->ssl_ctx);
		free(vh->tls_ciphers);
		free(vh->tls_suites);
		free(vh->aliases);
		free(vh->locs);
		free(vh->name);
	}
	for (int i = 0; i < cfg->nlistens; i++) {
		free(cfg->listens[i].spec);
		free(cfg->listens[i].vhosts);
	}
	free(cfg->listens);
	free(cfg->vhosts);
	mime_free(cfg->mime);
	for (int i = 0; i < cfg->ngzip_types; i++)
		free(cfg->gzip_types[i]);
	free(cfg->gzip_types);
	free(cfg->gzip_cache);
	free(cfg->session_ticket_key_file);
	free(cfg->client_exempt);
	if (cfg->ticket_keys != NULL)
		OPENSSL_cleanse(cfg->ticket_keys,
		    (size_t)cfg->nticket_keys * KT_TICKET_KEY_LEN);
	free(cfg->ticket_keys);
	free(cfg->path);
	free(cfg->user);
	free(cfg->group);
	free(cfg->pid_file);
	free(cfg->error_log);
	free(cfg->access_log);
	free(cfg->mime_types);
	free(cfg);
}

/*
 * libconfuse 3.3 counts a comment's line more than once, so every error
 * after a comment named the wrong line. Blank the comments out first
 * (keeping newlines and anything quoted) and parse the result.
 */
static void blank_comments(char *s)
{
	char quote = 0;

	for (; *s; s++) {
		if (quote) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == quote)
				quote = 0;
		} else if (*s == '"' || *s == '\'') {
			quote = *s;
		} else if (*s == '#' || (s[0] == '/' && s[1] == '/')) {
			for (; *s && *s != '\n'; s++)
				*s = ' ';
			if (*s == '\0')
				break;
		} else if (s[0] == '/' && s[1] == '*') {
			for (; *s && !(s[0] == '*' && s[1] == '/'); s++)
				if (*s != '\n')
					*s = ' ';
			if (*s == '\0')
				break;
			s[0] = s[1] = ' ';
			s++;
		}
	}
}

static int parse_file(cfg_t *root, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *in = fopen(path, "r"), *mem = NULL;
	int r = CFG_FILE_ERROR;

	if (in == NULL)
		return CFG_FILE_ERROR;
	mem = open_memstream(&buf, &len);
	if (mem == NULL)
		goto fail;
	for (int ch; (ch = getc(in)) != EOF;)
		putc(ch == '\0' ? ' ' : ch, mem);
	if (fclose(mem) != 0) {
		mem = NULL;
		goto fail;
	}
	mem = NULL;
	blank_comments(buf);
	if ((mem = fmemopen(buf, len, "r")) == NULL)
		goto fail;
	free(root->filename);
	root->filename = strdup(path);
	root->line = 1;
	r = cfg_parse_fp(root, mem);
fail:
	if (mem != NULL)
		fclose(mem);
	fclose(in);
	free(buf);
	return r;
}

struct config *config_load(const char *path)
{
	static const char *const number_opts[] = { "max_connections",
		"max_request_head", "max_uri", "max_headers",
		"keepalive_requests", "max_ranges", "open_file_cache",
		"open_file_cache_body", "open_file_cache_memory",
		"access_log_buffer", "aio_threads", "aio_queue", "aio_chunk",
		"handshake_timeout", "header_timeout", "keepalive_timeout",
		"send_timeout", "shutdown_timeout", "session_cache",
		"session_timeout", "http2_max_streams", "http2_reset_burst",
		"http2_reset_rate", "gzip_min_size", "gzip_max_size",
		"gzip_level", "gzip_cache_size", "drain_timeout", "drain_idle",
		"client_max_connections", "client_rate", "client_burst",
		"client_conn_status", "client_rate_status",
		"client_ipv4_prefix", "client_ipv6_prefix", "client_table_size",
		"session_ticket_rotate", NULL };
	struct config *cfg = NULL;
	cfg_t *root = cfg_init(root_opts, CFGF_NONE);
	int r;

	if (root == NULL)
		return NULL;
	cfg_set_error_function(root, errfunc);
	cfg_set_validate_func(root, "workers", v_workers);
	for (int i = 0; number_opts[i]; i++)
		cfg_set_validate_func(root, number_opts[i], v_number);
	cfg_set_validate_func(root, "log_level", v_level);
	cfg_set_validate_func(root, "access_log_format", v_format);
	cfg_set_validate_func(root, "server", v_server);
	cfg_set_validate_func(root, "server|listen", v_listen);
	cfg_set_validate_func(root, "server|root", v_directory);
	cfg_set_validate_func(root, "server|tls", v_tls);
	cfg_set_validate_func(root, "server|tls|certificate", v_readable);
	cfg_set_validate_func(root, "server|tls|key", v_readable);
	cfg_set_validate_func(root, "server|tls|ocsp_response", v_readable);
	cfg_set_validate_func(root, "server|tls|protocols", v_protocols);
	cfg_set_validate_func(root, "server|location", v_location);
	cfg_set_validate_func(root, "server|location|root", v_directory);
	cfg_set_validate_func(root, "gzip_cache", v_gzip_cache);
	cfg_set_validate_func(root, "server|allow", v_allow);
	cfg_set_validate_func(root, "server|error_page", v_error_page);
	cfg_set_validate_func(root, "server|location|error_page", v_error_page);
	cfg_set_validate_func(root, "server|location|allow", v_allow);
	cfg_set_validate_func(root, "server|gzip", v_gzip);
	cfg_set_validate_func(root, "server|location|gzip", v_gzip);
	/* issue 15 */
	cfg_set_validate_func(root, "server|add_header", v_add_header);
	cfg_set_validate_func(root, "server|location|add_header", v_add_header);
	cfg_set_validate_func(root, "server|location|return", v_return);
	cfg_set_validate_func(root, "session_ticket_key_file", v_ticket_file);
	cfg_set_validate_func(root, "client_limit_exempt", v_allow);

	gzip_cache_set = 0;
	drop_file_keys();
	r = parse_file(root, path);
	if (r == CFG_FILE_ERROR) {
		cfg_error(root, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (r != CFG_SUCCESS)
		goto fail;
	if (cfg_size(root, "server") == 0) {
		cfg_error(root, "no server section");
		goto fail;
	}

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		goto fail;
	atomic_init(&cfg->refs, 1);
	cfg->path = strdup(path);
	cfg->nvhosts = (int)cfg_size(root, "server");
	cfg->vhosts = calloc((size_t)cfg->nvhosts, sizeof(*cfg->vhosts));
	if (cfg->path == NULL || cfg->vhosts == NULL ||
	    globals_build(cfg, root) < 0)
		goto fail;
	for (int i = 0; i < cfg->nvhosts; i++)
		if (vhost_build(cfg, &cfg->vhosts[i],
		        cfg_getnsec(root, "server", (unsigned)i)) < 0) {
			cfg_error(root, "server \"%s\" failed",
			    cfg->vhosts[i].name ? cfg->vhosts[i].name : "?");
			goto fail;
		}
	if (listens_build(cfg, root) < 0)
		goto fail;
	cfg_free(root);
	return cfg;
fail:
	drop_file_keys();
	if (cfg != NULL)
		config_free(cfg);
	cfg_free(root);
	return NULL;
}

void config_ref(struct config *cfg)
{
	atomic_fetch_add(&cfg->refs, 1);
}

void config_unref(struct config *cfg)
{
	if (cfg != NULL && atomic_fetch_sub(&cfg->refs, 1) == 1)
		config_free(cfg);
}
