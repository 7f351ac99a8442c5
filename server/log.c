/*
 * log.c: the error log (levels) and the access log (combined or json).
 * Each line leaves in one write() to an O_APPEND descriptor, so worker
 * threads need no lock. Reopening (SIGUSR1, reload) opens the new file and
 * dup2()s it over the old descriptor number: writers never see a gap.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const level_name[] = { "error", "warn", "info", "debug" };

static struct {
	atomic_int level;
	int err_fd; /* 2 for stderr */
	int acc_fd; /* -1 for none */
	char err_path[512], acc_path[512];
} lg = { .level = KT_LOG_INFO, .err_fd = 2, .acc_fd = -1 };

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Point *fd at path ("" = none, "stderr"), keeping the fd number. */
static int reopen(int *fd, char *cur, size_t cursz, const char *path)
{
	int nfd;

	if (path == NULL || *path == '\0') {
		if (*fd > 2)
			close(*fd);
		*fd = -1;
		goto done;
	}
	if (strcmp(path, "stderr") == 0) {
		if (*fd > 2)
			close(*fd);
		*fd = 2;
		goto done;
	}
	if ((nfd = open_log(path)) < 0) {
		log_error("cannot open log %s: %s", path, strerror(errno));
		return -1;
	}
	if (*fd > 2) {
		dup2(nfd, *fd);
		close(nfd);
	} else
		*fd = nfd;
done:
	snprintf(cur, cursz, "%s", path ? path : "");
	return 0;
}

int log_configure(struct config *cfg)
{
	atomic_store(&lg.level, cfg->log_level);
	if (reopen(&lg.err_fd, lg.err_path, sizeof(lg.err_path),
	        cfg->error_log) < 0)
		return -1;
	return reopen(
	    &lg.acc_fd, lg.acc_path, sizeof(lg.acc_path), cfg->access_log);
}

void log_reopen(void)
{
	char e[512], a[512];

	memcpy(e, lg.err_path, sizeof(e));
	memcpy(a, lg.acc_path, sizeof(a));
	reopen(&lg.err_fd, lg.err_path, sizeof(lg.err_path), e);
	reopen(&lg.acc_fd, lg.acc_path, sizeof(lg.acc_path), a);
}

/* 1 when this occurrence should be logged; *suppressed: those since. */
int log_limited(struct log_limit *l, long *suppressed)
{
	struct timespec ts;
	long long last;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	last = atomic_load(&l->last_s);
	atomic_fetch_add(&l->count, 1);
	if (ts.tv_sec == last ||
	    !atomic_compare_exchange_strong(&l->last_s, &last, ts.tv_sec))
		return 0;
	*suppressed = atomic_exchange(&l->count, 0) - 1;
	return 1;
}

void log_msg(int level, const char *fmt, ...)
{
	char buf[1024];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	int r;

	if (level > atomic_load(&lg.level) || lg.err_fd < 0)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y/%m/%d %H:%M:%S", &tm);
	n += (size_t)snprintf(
	    buf + n, sizeof(buf) - n, " [%s] ", level_name[level]);
	va_start(ap, fmt);
	r = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = r < 0 ? n : n + (size_t)r;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(lg.err_fd, buf, n);
}

/* A line being built; appends clamp at the end instead of overflowing. */
struct line {
	char buf[4096];
	size_t n;
};

static void put(struct line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct line *l, const char *fmt, ...)
{
	size_t room = sizeof(l->buf) - 1 - l->n; /* one byte kept for \n */
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(l->buf + l->n, room + 1, fmt, ap);
	va_end(ap);
	if (r > 0)
		l->n += (size_t)r < room ? (size_t)r : room;
}

/* Append a request field, escaped for a quoted log field. */
static void put_esc(struct line *l, struct span s, int json)
{
	if (s.p == NULL || s.n == 0) {
		if (!json)
			put(l, "-");
		return;
	}
	for (size_t i = 0; i < s.n && l->n + 8 < sizeof(l->buf); i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (json && c >= 0x80)
			l->buf[l->n++] = (char)c; /* decoded paths are UTF-8 */
		else if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f)
			put(l, json ? "\\u%04x" : "\\x%02x", c);
		else
			l->buf[l->n++] = (char)c;
	}
}

/*
 * Access lines gather in the worker's buffer and leave in one write when
 * it fills, once a second (worker.c's timer), and when the worker stops:
 * nothing is lost on reload or shutdown. Unbuffered when the size is 0.
 */
void log_flush(struct worker *w)
{
	if (w->logbuf_len > 0 && lg.acc_fd >= 0)
		(void)!write(lg.acc_fd, w->logbuf, w->logbuf_len);
	w->logbuf_len = 0;
}

static void log_append(struct worker *w, const char *line, size_t n)
{
	if (w->logbuf == NULL) {
		(void)!write(lg.acc_fd, line, n);
		return;
	}
	if (w->logbuf_len + n > w->logbuf_cap)
		log_flush(w);
	if (n > w->logbuf_cap) {
		(void)!write(lg.acc_fd, line, n);
		return;
	}
	memcpy(w->logbuf + w->logbuf_len, line, n);
	w->logbuf_len += n;
}

int log_access_on(void)
{
	return lg.acc_fd >= 0;
}

/* One access line, from plain values: request.c's req_log fills lc. */
void log_access(
    struct worker *w, const struct log_conn *lc, const struct request *r)
{
	struct line l = { .n = 0 };
	char tbuf[64];
	struct timeval tv;
	struct tm tm;
	const char *server = r->vh ? r->vh->name : "-";
	unsigned long long sent = r->sent > r->head_len ? r->sent - r->head_len
	                                                : 0; /* body bytes */
	double dur_ms;

	if (lg.acc_fd < 0)
		return;
	gettimeofday(&tv, NULL);
	dur_ms = (double)(date_mono_us() - r->start_us) / 1000.0;
	localtime_r(&tv.tv_sec, &tm);
	if (lc->json) {
		strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S%z", &tm);
		put(&l,
		    "{\"time\":\"%s\",\"client\":\"%s\",\"server\":\"%s\","
		    "\"method\":\"",
		    tbuf, lc->peer, server);
		put_esc(&l, r->method_str, 1);
		put(&l, "\",\"uri\":\"");
		put_esc(&l, r->target, 1);
		put(&l,
		    "\",\"protocol\":\"HTTP/%d.%d\",\"status\":%d,"
		    "\"bytes\":%llu,\"duration_ms\":%.3f,\"tls_version\":\"%"
		    "s\","
		    "\"tls_cipher\":\"%s\",\"ktls\":\"%s\",\"ktls_place\":\"%"
		    "s\","
		    "\"user_agent\":\"",
		    r->http_major, r->http_minor, r->status, sent, dur_ms,
		    lc->tls_version, lc->tls_cipher, lc->ktls, lc->place);
		put_esc(&l, r->user_agent, 1);
		put(&l, "\"}");
	} else {
		strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S %z", &tm);
		put(&l, "%s - - [%s] \"", lc->peer, tbuf);
		put_esc(&l, r->method_str, 0);
		put(&l, " ");
		put_esc(&l, r->target, 0);
		put(&l, " HTTP/%d.%d\" %d %llu \"", r->http_major,
		    r->http_minor, r->status, sent);
		put_esc(&l, r->referer, 0);
		put(&l, "\" \"");
		put_esc(&l, r->user_agent, 0);
		put(&l, "\" %s %.3f %s %s ktls=%s place=%s", server, dur_ms,
		    lc->tls_version, lc->tls_cipher, lc->ktls, lc->place);
	}
	l.buf[l.n++] = '\n';
	log_append(w, l.buf, l.n);
}
