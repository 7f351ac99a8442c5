/*
 * redirect.c: `return = "301 TARGET"` in a location, and a server's
 * `https_redirect` (plain HTTP to https, ACME's challenge path left to
 * the files). TARGET is a template read once at config load; at request
 * time its variables are filled in:
 *
 *   $scheme        http or https
 *   $host          the request's host name, only when it names this
 *                  server (a name or alias): else the server's name, so
 *                  a forged Host never steers a redirect elsewhere
 *   $server_name   the server's name
 *   $request_uri   the target as sent: path and query, not decoded
 *   $uri           the path decoded and normalized (re-encoded here)
 *   $args, $query_string   the query, without "?"
 *   $is_args       "?" when the target had a query, else nothing
 *
 * A name is the longest run of letters, digits and '_' after the '$'
 * (libconfuse itself replaces "${NAME}" in a double-quoted string with
 * the environment's NAME, so braces are no use here). Bytes that may not
 * stand in a Location header are percent-encoded.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIRECT_MAX_PARTS  32
#define REDIRECT_MAX_TARGET 2048
#define ACME_PREFIX         "/.well-known/acme-challenge/"

enum var {
	V_TEXT,
	V_SCHEME,
	V_HOST,
	V_SERVER_NAME,
	V_REQUEST_URI,
	V_URI,
	V_ARGS,
	V_IS_ARGS
};

static const struct {
	const char *name;
	enum var v;
} vars[] = {
	{ "scheme", V_SCHEME },
	{ "host", V_HOST },
	{ "server_name", V_SERVER_NAME },
	{ "request_uri", V_REQUEST_URI },
	{ "uri", V_URI },
	{ "args", V_ARGS },
	{ "query_string", V_ARGS },
	{ "is_args", V_IS_ARGS },
};

struct redirect {
	int status;
	int nparts;
	struct {
		enum var v;
		char *text; /* V_TEXT */
	} part[REDIRECT_MAX_PARTS];
};

static int name_char(unsigned char ch)
{
	return isalnum(ch) || ch == '_';
}

/* Parse spec into out (may be NULL: check only). NULL or why not. */
static const char *parse(
    const char *spec, struct redirect *out, char *err, size_t errlen)
{
	const char *p, *t;
	char *end;
	long st = strtol(spec, &end, 10);
	int nparts = 0;

	if (end == spec || *end != ' ' ||
	    !(st == 301 || st == 302 || st == 303 || st == 307 || st == 308))
		return "want \"STATUS TARGET\" with STATUS 301, 302, 303, "
		       "307 or 308";
	t = end + strspn(end, " ");
	if (*t == '\0')
		return "no target";
	if (strlen(t) > REDIRECT_MAX_TARGET)
		return "the target is too long (2048 bytes at most)";
	for (p = t; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "the target holds a space, a control or a "
			       "non-ASCII byte (percent-encode it)";
	if (out != NULL)
		out->status = (int)st;
	for (p = t; *p;) {
		enum var v = V_TEXT;
		const char *from = p;
		size_t n;

		if (nparts == REDIRECT_MAX_PARTS)
			return "too many parts (32 at most)";
		if (*p == '$') {
			const char *name = p + 1;
			for (n = 0; name_char((unsigned char)name[n]); n++)
				;
			for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]);
			     i++)
				if (strlen(vars[i].name) == n &&
				    strncmp(vars[i].name, name, n) == 0)
					v = vars[i].v;
			if (v == V_TEXT) {
				snprintf(err, errlen,
				    "unknown variable \"$%.*s\" (known: "
				    "$scheme $host $server_name $request_uri "
				    "$uri $args $query_string $is_args)",
				    (int)n, name);
				return err;
			}
			p = name + n;
		} else
			p += strcspn(p, "$");
		if (out != NULL) {
			out->part[nparts].v = v;
			if (v == V_TEXT &&
			    (out->part[nparts].text = strndup(
			         from, (size_t)(p - from))) == NULL)
				return "out of memory";
		}
		nparts++;
		if (out != NULL)
			out->nparts = nparts;
	}
	return NULL;
}

int redirect_check(const char *spec, char *err, size_t errlen)
{
	char why[240];
	const char *e = parse(spec, NULL, why, sizeof(why));

	if (e == NULL)
		return 0;
	snprintf(err, errlen, "return \"%.200s\": %s", spec, e);
	return -1;
}

struct redirect *redirect_new(const char *spec)
{
	struct redirect *rd = calloc(1, sizeof(*rd));
	char why[240];

	if (rd != NULL && parse(spec, rd, why, sizeof(why)) != NULL) {
		redirect_free(rd);
		return NULL;
	}
	return rd;
}

void redirect_free(struct redirect *rd)
{
	if (rd == NULL)
		return;
	for (int i = 0; i < rd->nparts; i++)
		free(rd->part[i].text);
	free(rd);
}

/*
 * Append n bytes of s; raw: the bytes a client sent (only what cannot
 * stand in a header is encoded), else a decoded path (anything outside
 * the path characters, '%' included).
 */
static void put(FILE *f, const char *s, size_t n, int raw)
{
	static const char path_ok[] = "-._~!$&'()*+,;=:@/";

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		int ok = raw ? ch > 0x20 && ch < 0x7f
		             : isalnum(ch) || strchr(path_ok, ch) != NULL;
		if (ok && ch != '\0')
			fputc(ch, f);
		else
			fprintf(f, "%%%02X", ch);
	}
}

/* A host name as DNS has them (and [v6] literals), without the port. */
static size_t host_name(struct span h)
{
	size_t n = 0;

	if (h.n > 0 && h.p[0] == '[') {
		while (n < h.n && h.p[n] != ']')
			if (!isxdigit((unsigned char)h.p[n]) &&
			    strchr("[:.", h.p[n]) == NULL)
				return 0;
			else
				n++;
		return n < h.n ? n + 1 : 0;
	}
	while (n < h.n && h.p[n] != ':') {
		unsigned char ch = (unsigned char)h.p[n];
		if (!isalnum(ch) && ch != '-' && ch != '.')
			return 0;
		n++;
	}
	return n;
}

static void put_host(
    FILE *f, struct conn *c, struct request *r, struct span host)
{
	size_t n = host.p ? host_name(host) : 0;

	if (n == 0 || vhost_by_name(c->la, host.p, host.n) != r->vh) {
		fputs(r->vh->name, f);
		return;
	}
	for (size_t i = 0; i < n; i++)
		fputc(tolower((unsigned char)host.p[i]), f);
}

int redirect_apply(struct conn *c, struct request *r, struct span host,
    struct span path, struct span query, const char *decoded)
{
	const struct redirect *rd = r->loc ? r->loc->ret : NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	/* ACME's challenge and a balancer's plain health check stay */
	if (c->ssl == NULL && r->vh->https_redirect != NULL &&
	    strncmp(decoded, ACME_PREFIX, sizeof(ACME_PREFIX) - 1) != 0 &&
	    !(r->loc && r->loc->health))
		rd = r->vh->https_redirect;
	if (rd == NULL)
		return 0;
	if ((f = open_memstream(&out, &len)) == NULL) {
		r->status = 500;
		return 1;
	}
	for (int i = 0; i < rd->nparts; i++) {
		switch (rd->part[i].v) {
		case V_TEXT: fputs(rd->part[i].text, f); break;
		case V_SCHEME: fputs(c->ssl ? "https" : "http", f); break;
		case V_HOST: put_host(f, c, r, host); break;
		case V_SERVER_NAME: fputs(r->vh->name, f); break;
		case V_REQUEST_URI:
			put(f, path.p, path.n, 1);
			if (query.p != NULL) {
				fputc('?', f);
				put(f, query.p, query.n, 1);
			}
			break;
		case V_URI: put(f, decoded, strlen(decoded), 0); break;
		case V_ARGS:
			if (query.p != NULL)
				put(f, query.p, query.n, 1);
			break;
		case V_IS_ARGS:
			if (query.p != NULL)
				fputc('?', f);
			break;
		}
	}
	if (fclose(f) != 0) {
		free(out);
		r->status = 500;
		return 1;
	}
	free(r->location);
	r->location = out;
	r->status = rd->status;
	return 1;
}
