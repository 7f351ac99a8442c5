/*
 * route.c: the router, protocol-independent: method, the target split
 * into host, path and query, the server it is for (421 when it names
 * another server than the TLS session's), the path decoded and
 * canonicalized, then the handler: return / https_redirect (redirect.c),
 * the metrics page (stats.c), health (health.c) or a file (file.c). The
 * protocols call it; the handlers build their response with request.c.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

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

/* The bytes route_split_origin takes (printable ASCII but '#') */
#define IN_PATH  1 /* in the path */
#define IN_QUERY 2 /* in the query: those and '?' */
static const unsigned char origin_byte[256] = {
	['!' ... '"'] = IN_PATH | IN_QUERY,
	['$' ... '>'] = IN_PATH | IN_QUERY,
	['?'] = IN_QUERY,
	['@' ... '~'] = IN_PATH | IN_QUERY,
};

/*
 * The common target, origin-form ("/path[?query]") in printable ASCII
 * without a fragment, split as http_parser_parse_url splits it: the path
 * ends at the first '?', the query is all that follows it, when anything
 * does. 0: anything else, for http_parser (issue 13: ~260 instructions a
 * request there).
 */
int route_split_origin(struct span t, struct span *path, struct span *query)
{
	const unsigned char *b = (const unsigned char *)t.p;
	size_t i = 1, q;

	if (t.n == 0 || t.p[0] != '/')
		return 0;
	/* a table lookup a byte, no tests (~6 instructions a byte, not 12) */
	while (i < t.n && (origin_byte[b[i]] & IN_PATH))
		i++;
	q = i;
	if (i < t.n && b[i] == '?') {
		i++;
		while (i < t.n && (origin_byte[b[i]] & IN_QUERY))
			i++;
	}
	if (i < t.n)
		return 0; /* a byte outside the table: http_parser's */
	path->p = t.p;
	path->n = q;
	query->p = q + 1 < t.n ? t.p + q + 1 : NULL;
	query->n = q + 1 < t.n ? t.n - q - 1 : 0;
	return 1;
}

_Static_assert(sizeof(((struct conn *)0)->host) < 256, "host_n holds it");

/* vhost_by_name for this connection's listener, remembering the last
 * name's answer (its server or NULL): the same bytes, the same answer. */
static struct vhost *host_vhost(struct conn *c, struct span host)
{
	struct vhost *vh;

	if (host.n != 0 && host.n == c->host_n &&
	    memcmp(host.p, c->host, host.n) == 0)
		return c->host_vh;
	vh = vhost_by_name(c->la, host.p, host.n);
	if (host.n != 0 && host.n <= sizeof(c->host)) {
		memcpy(c->host, host.p, host.n);
		c->host_n = (unsigned char)host.n;
		c->host_vh = vh;
	}
	return vh;
}

void route_request(struct conn *c, struct request *r)
{
	struct http_parser_url u;
	struct span host = r->host, path, query;
	char sbuf[256]; /* issue 13: most paths decode here, no malloc */
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
	if (!route_split_origin(r->target, &path, &query)) {
		/* http_parser_url holds offsets and lengths in 16 bits: a
		 * longer target would come back with its path cut short (the
		 * length modulo 65536), naming another file (max_uri may be
		 * up to 1 MiB, and HTTP/2 checks only the header list) */
		if (r->target.n > UINT16_MAX) {
			r->status = 414;
			return;
		}
		http_parser_url_init(&u);
		if (r->target.n == 0 ||
		    http_parser_parse_url(r->target.p, r->target.n, 0, &u) !=
		        0 ||
		    !(u.field_set & (1 << UF_PATH))) {
			r->status = 400;
			return;
		}
		if (u.field_set & (1 << UF_HOST)) /* absolute-form wins */
			host = url_field(r, &u, UF_HOST);
		path = url_field(r, &u, UF_PATH);
		query = url_field(r, &u, UF_QUERY);
	}

	if (host.p != NULL) {
		struct vhost *vh = host_vhost(c, host);
		if (vh != NULL && vh != c->vh && c->mode.tls) {
			r->status = 421; /* not the server this session is for
			                  */
			return;
		}
		if (vh != NULL)
			r->vh = vh;
	}
	if (path.n + 2 <= sizeof(sbuf))
		buf = sbuf;
	else if ((buf = malloc(path.n + 2)) == NULL) {
		r->status = 500;
		return;
	}
	st = path_decode(path.p, path.n, buf, path.n + 2);
	if (st != 0)
		r->status = st;
	else if (r->loc = vhost_location(r->vh, buf),
	    redirect_apply(c, r, host, path, query, buf))
		; /* return / https_redirect: before allow, as nginx */
	else if (path_hidden(buf))
		r->status = 403; /* the location's error_page applies */
	else if (!metrics_allowed(r->loc, (struct sockaddr *)&c->peer_ss))
		r->status = 403;
	else if (r->loc->metrics)
		stats_serve(c, r);
	else if (r->loc->health)
		health_serve(c, r);
	else
		file_serve(r, buf, query);
	if (buf != sbuf)
		free(buf);
}
