/*
 * request.c: the response, protocol-independent, as the handlers build it
 * once (status, a body in memory or a file range, its type) and either
 * protocol writes it: the body setters, the error bodies (custom
 * error_page or a small HTML page), the reason phrases, the release of
 * what a request holds, and its accounting line (metrics, access log).
 * Below the router (route.c) and the handlers, which call it; it calls
 * only leaves.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../sys/sys.h"

static char *memdup(const void *p, size_t n)
{
	char *d = malloc(n ? n : 1);

	if (d != NULL)
		memcpy(d, p, n);
	return d;
}

/* What a request holds; the struct itself may live inside another. */
void req_release(struct request *r)
{
	if (r->fce != NULL)
		fc_put(r->fce);
	else if (r->fd >= 0)
		close(r->fd);
	free(r->location);
	if (r->parts != NULL)
		free(r->parts[0].head); /* one block for every part head */
	free(r->parts);
	free(r->ctype_buf);
	free(r->mem);
}

void req_free(struct request *r)
{
	req_release(r);
	free(r);
}

/* Take mem (malloc'd, or NULL on failure) as the body. */
int req_set_body(struct request *r, char *mem, size_t len, const char *ctype)
{
	free(r->mem);
	r->mem = mem;
	r->mem_len = mem ? len : 0;
	r->mem_off = 0;
	r->clen = r->mem_len;
	r->ctype = ctype;
	return mem ? 0 : -1;
}

/*
 * The location's error_page for r's status, read into memory (a page
 * of at most KT_ERRPAGE_MAX bytes). 0 when there is one.
 */
static int custom_page(struct request *r)
{
	const struct location *l = r->loc;
	char *buf = NULL;
	ssize_t n;
	int fd;

	if (l == NULL && r->vh != NULL)
		l = &r->vh->locs[r->vh->nlocs - 1]; /* "/" */
	for (int i = 0; l != NULL && i < l->nerrpages; i++) {
		if (l->errpages[i].status != r->status)
			continue;
		fd = sys_open_beneath(l->root_fd, l->errpages[i].path,
		    O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 || (buf = malloc(KT_ERRPAGE_MAX)) == NULL ||
		    (n = read(fd, buf, KT_ERRPAGE_MAX)) < 0) {
			log_warn("error_page %s: %s", l->errpages[i].path,
			    strerror(errno));
			free(buf);
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		return req_set_body(r, buf, (size_t)n,
		    mime_type(r->vh->cfg->mime, l->errpages[i].path));
	}
	return -1;
}

/* After routing: every response but a file's or a 304 gets a body. */
void req_finish(struct request *r)
{
	char err[512];
	size_t n;

	if ((r->fd >= 0 && (r->status == 200 || r->status == 206)) ||
	    r->status == 304 || r->mem != NULL)
		return;
	if (r->status >= 400 && custom_page(r) == 0)
		return;
	n = req_error_body(r->status, err, sizeof(err));
	req_set_body(r, memdup(err, n), n, "text/html");
}

const char *req_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 421: return "Misdirected Request";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

size_t req_error_body(int status, char *out, size_t outsz)
{
	int n = snprintf(out, outsz,
	    "<html>\r\n<head><title>%d %s</title></head>\r\n"
	    "<body><h1>%d %s</h1></body>\r\n</html>\r\n",
	    status, req_reason(status), status, req_reason(status));

	return n < 0 ? 0 : (size_t)n < outsz ? (size_t)n : outsz - 1;
}

/* The response went out (or the connection went): count it, log it. */
static void log_line(struct conn *c, struct request *r)
{
	struct log_conn lc = { .json = c->cfg->access_json, .peer = c->peer };

	tls_describe(c, &lc);
	log_access(c->w, &lc, r);
}

void req_log(struct conn *c, struct request *r)
{
	metrics_request(&c->w->m, &c->mode, r);
	/* issue 13: without an access log, not even lc is built (and
	 * zeroed, ~160 bytes) */
	if (log_access_on())
		log_line(c, r);
}
