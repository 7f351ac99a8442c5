/*
 * request.c: the protocol-independent half of a request: method, the
 * target split into host, path and query, the server it is for (421 when
 * it names another server than the TLS session's), the path decoded and
 * canonicalized, then the file handler. Also the reason phrases and the
 * small HTML bodies of error responses.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <http_parser.h>
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

static struct span url_field(
    const struct request *r, const struct http_parser_url *u, int f)
{
	struct span s = { NULL, 0 };

	if (u->field_set & (1 << f)) {
		s.p = r->target.p + u->field_data[f].off;
		s.n = u->field_data[f].len;
	}
	return s;
}

void req_dispatch(struct conn *c, struct request *r)
{
	struct http_parser_url u;
	struct span host = r->host, path, query;
	char *buf = NULL;
	int st;

	r->vh = c->vh;
	r->w = c->w;
	if ((r->status = cl_request(c, r)) != 0)
		return; /* per-client limits: clientlimit.c */
	if (r->method == M_OTHER) {
		r->status = 405;
		return;
	}
	http_parser_url_init(&u);
	if (r->target.n == 0 ||
	    http_parser_parse_url(r->target.p, r->target.n, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH))) {
		r->status = 400;
		return;
	}
	if (u.field_set & (1 << UF_HOST)) /* absolute-form wins over Host */
		host = url_field(r, &u, UF_HOST);
	path = url_field(r, &u, UF_PATH);
	query = url_field(r, &u, UF_QUERY);

	if (host.p != NULL) {
		struct vhost *vh = config_vhost_by_name(c->la, host.p, host.n);
		if (vh != NULL && vh != c->vh && c->mode.tls) {
			r->status = 421; /* not the server this session is for
			                  */
			return;
		}
		if (vh != NULL)
			r->vh = vh;
	}
	if ((buf = malloc(path.n + 2)) == NULL) {
		r->status = 500;
		return;
	}
	st = path_decode(path.p, path.n, buf, path.n + 2);
	if (st != 0)
		r->status = st;
	else if (r->loc = config_location(r->vh, buf),
	    redirect_apply(c, r, host, path, query, buf))
		; /* return / https_redirect: before allow, as nginx */
	else if (path_hidden(buf))
		r->status = 403; /* the location's error_page applies */
	else if (!metrics_allowed(r->loc, (struct sockaddr *)&c->peer_ss))
		r->status = 403;
	else if (r->loc->metrics)
		metrics_serve(c, r);
	else if (r->loc->health)
		health_serve(c, r);
	else
		file_serve(r, buf, query);
	free(buf);
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
