/*
 * main.c: command line, start-up (config, kTLS probe, listening sockets,
 * pid file, privilege drop, workers) and the signal loop: HUP reloads,
 * USR1 reopens logs, USR2 drains then stops (health.c), TERM and INT
 * stop gracefully, failing the health endpoint first.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <confuse.h>
#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void usage(void)
{
	fprintf(stderr,
	    "usage: kttpd [-t] [-v] [-c config]\n"
	    "  -c FILE  config file (default /etc/kttpd/kttpd.conf)\n"
	    "  -t       check the config and exit 0 (valid) or 1\n"
	    "  -v       print version and libraries, then exit\n");
}

static void version(void)
{
	unsigned long hp = http_parser_version();

	printf("kttpd %s\n", KTTPD_VERSION);
	printf("  OpenSSL %s (built with %s)\n",
	    OpenSSL_version(OPENSSL_VERSION_STRING), OPENSSL_VERSION_TEXT);
	printf("  libevent %s\n", event_get_version());
	printf("  http-parser %lu.%lu.%lu\n", (hp >> 16) & 255, (hp >> 8) & 255,
	    hp & 255);
	printf("  nghttp2 %s\n", nghttp2_version(0)->version_str);
	printf("  zlib %s\n", zlibVersion());
	printf("  libconfuse %s\n", confuse_version);
}

static int drop_privileges(struct config *cfg)
{
	struct passwd *pw = NULL;
	struct group *gr = NULL;

	if (geteuid() != 0 || (*cfg->user == '\0' && *cfg->group == '\0'))
		return 0;
	if (*cfg->user && (pw = getpwnam(cfg->user)) == NULL) {
		log_error("user %s: no such user", cfg->user);
		return -1;
	}
	if (*cfg->group && (gr = getgrnam(cfg->group)) == NULL) {
		log_error("group %s: no such group", cfg->group);
		return -1;
	}
	gid_t gid = gr ? gr->gr_gid : pw->pw_gid;
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 ||
	    (pw && setuid(pw->pw_uid) < 0)) {
		log_error("dropping privileges: %s", strerror(errno));
		return -1;
	}
	log_info("running as uid %d gid %d", (int)getuid(), (int)getgid());
	return 0;
}

static void write_pid(const char *path)
{
	FILE *f;

	if (*path == '\0')
		return;
	if ((f = fopen(path, "w")) == NULL) {
		log_error("pid file %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
}

static struct config *reload(struct config *cur)
{
	struct config *cfg = config_load(cur->path);

	if (cfg == NULL) {
		log_error("reload: cannot load %s (the error above says why); "
		          "still serving the previous config",
		    cur->path);
		return cur;
	}
	if (listeners_sync(cfg) < 0) {
		log_error("reload: cannot listen; still serving the previous "
		          "config");
		config_unref(cfg);
		return cur;
	}
	log_configure(cfg);
	if (ticket_configure(cfg) < 0)
		log_error("reload: ticket keys: out of memory; the old ones "
		          "stay");
	worker_reload_all(cfg);
	listeners_close_unused();
	log_info("reloaded %s", cfg->path);
	config_unref(cur);
	return cfg;
}

/* Signals arrive here only: every thread blocks them, main waits. */
static int signal_loop(struct config *cfg)
{
	const struct timespec tick = { 0, KT_DRAIN_TICK_MS * 1000000L };
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	for (;;) {
		/* draining: wake every tick to see whether the drain is over */
		if (health_failing())
			sig = sigtimedwait(&set, NULL, &tick);
		else if (sigwait(&set, &sig) != 0)
			continue;
		if (sig < 0 && health_drain_over(cfg))
			break;
		if (sig == SIGHUP)
			cfg = reload(cfg);
		else if (sig == SIGUSR1) {
			worker_flush_logs(); /* into the old file, then switch
			                      */
			log_reopen();
			log_info("logs reopened");
		} else if (sig == SIGUSR2 && !health_failing()) {
			log_info("draining: health checks fail now; serving "
			         "for up to %lds (idle %lds ends it sooner)",
			    cfg->drain_timeout, cfg->drain_idle);
			health_drain_begin();
		} else if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	health_fail(); /* the balancer sees 503 while responses finish */
	log_info("%s: stopping; in-flight responses get %lds",
	    sig < 0 ? "drain over" : strsignal(sig), cfg->shutdown_timeout);
	worker_stop_all();
	worker_join_all();
	if (*cfg->pid_file)
		unlink(cfg->pid_file);
	log_info("stopped");
	config_unref(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = "/etc/kttpd/kttpd.conf";
	int test = 0, opt;
	struct config *cfg;
	sigset_t set;

	while ((opt = getopt(argc, argv, "c:tvh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': test = 1; break;
		case 'v': version(); return 0;
		default: usage(); return opt == 'h' ? 0 : 2;
		}
	}
	sslmem_init();
	if (tls_init() < 0) {
		fprintf(stderr, "kttpd: OpenSSL initialisation failed\n");
		return 1;
	}
	if ((cfg = config_load(path)) == NULL)
		return 1;
	if (test) {
		printf("kttpd: %s: configuration ok\n", path);
		config_unref(cfg);
		return 0;
	}
	if (log_configure(cfg) < 0)
		return 1;
	config_serving();
	if (cl_start(cfg) < 0 || ticket_configure(cfg) < 0) {
		log_error("cannot set up the client table or ticket keys");
		return 1;
	}
	log_info("kttpd %s starting: %d workers, %d servers, %d addresses",
	    KTTPD_VERSION, cfg->workers, cfg->nvhosts, cfg->nlistens);
	tls_ktls_probe(cfg);
	if (listeners_sync(cfg) < 0)
		return 1;
	for (int i = 0; i < cfg->nlistens; i++)
		log_info("listening on %s", cfg->listens[i].spec);
	write_pid(cfg->pid_file);
	if (drop_privileges(cfg) < 0)
		return 1;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* workers inherit the mask */
	conn_protocols(&h1_proto, &h2_proto);   /* from the top: see conn.c */
	if (aio_start(cfg) < 0 || worker_start_all(cfg) < 0)
		return 1;
	return signal_loop(cfg);
}
