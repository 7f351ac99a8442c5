/*
 * headers.c: add_header, response headers the operator adds per server
 * and location, with nginx's rules: added to 200, 201, 204, 206, 301,
 * 302, 303, 304, 307 and 308 only, unless marked "always" (then to every
 * response, errors included: HSTS is the usual case); a location that
 * lists none inherits the server's list, one that lists any has only its
 * own.
 *
 * Each entry is checked when the config is read (a token name, a value
 * without control bytes, not a header the server owns, the count and the
 * total size bounded), and each set keeps its HTTP/1 lines ready-made, so
 * a response costs one memcpy (HTTP/2: a pointer per header).
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <ctype.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct add_header {
	char *name, *lname; /* as written; lowercased for HTTP/2 */
	char *value;
	int always;
};

struct headers {
	struct add_header h[KT_ADD_HEADERS_MAX];
	int n;
	char *h1[2]; /* "Name: value\r\n" lines: [0] always only, [1] all */
	size_t h1_len[2];
};

/* Framing, hop-by-hop and what the server computes for each response. */
static const char *const owned[] = { "content-length", "transfer-encoding",
	"connection", "keep-alive", "proxy-connection", "upgrade", "te",
	"trailer", "http2-settings", "host", "date", "server", "content-type",
	"content-encoding", "content-range", "location", "etag",
	"last-modified", "accept-ranges", NULL };

static int tchar(unsigned char ch)
{
	return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

/*
 * "Name: value [always]" -> its parts (in buf, which is modified).
 * NULL, or why it is refused.
 */
static const char *split(char *buf, char **name, char **value, int *always)
{
	char *colon = strchr(buf, ':'), *end;

	if (colon == NULL || colon == buf)
		return "want \"Name: value\" or \"Name: value always\"";
	*colon = '\0';
	for (char *p = buf; *p; p++)
		if (!tchar((unsigned char)*p))
			return "the name is not a token (RFC 9110 field name)";
	for (const char *const *o = owned; *o; o++)
		if (strcasecmp(buf, *o) == 0)
			return "the server sets this header itself";
	*name = buf;
	for (char *p = colon + 1; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return "the value holds a control byte (CR, LF, ...)";
	*value = colon + 1 + strspn(colon + 1, " \t");
	end = *value + strlen(*value);
	while (end > *value && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	*always = 0;
	if (end - *value >= 6 && strcmp(end - 6, "always") == 0 &&
	    (end - *value == 6 || end[-7] == ' ' || end[-7] == '\t')) {
		*always = 1;
		end -= 6;
		while (end > *value && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
	}
	if (**value == '\0')
		return "the value is empty";
	return NULL;
}

int headers_check(const char *const *list, int n, char *err, size_t errlen)
{
	size_t total = 0;

	if (n > KT_ADD_HEADERS_MAX) {
		snprintf(err, errlen, "add_header: %d entries, at most %d", n,
		    KT_ADD_HEADERS_MAX);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *buf = strdup(list[i]), *name, *value;
		const char *why;
		int always;

		if (buf == NULL) {
			snprintf(err, errlen, "add_header: out of memory");
			return -1;
		}
		why = split(buf, &name, &value, &always);
		if (why == NULL)
			total += strlen(name) + strlen(value) + 4;
		free(buf);
		if (why != NULL) {
			snprintf(err, errlen, "add_header \"%.200s\": %s",
			    list[i], why);
			return -1;
		}
	}
	if (total > KT_ADD_HEADERS_BYTES) {
		snprintf(err, errlen,
		    "add_header: %zu bytes of headers, at most %d", total,
		    KT_ADD_HEADERS_BYTES);
		return -1;
	}
	return 0;
}

struct headers *headers_new(const char *const *list, int n)
{
	struct headers *s;
	char err[256];

	if (n == 0 || headers_check(list, n, err, sizeof(err)) < 0)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	for (int i = 0; i < n; i++) {
		struct add_header *h = &s->h[s->n++];
		char *buf = strdup(list[i]), *name, *value;
		if (buf == NULL)
			goto fail;
		split(buf, &name, &value, &h->always);
		h->name = strdup(name);
		h->lname = strdup(name);
		h->value = strdup(value);
		free(buf);
		if (h->name == NULL || h->lname == NULL || h->value == NULL)
			goto fail;
		for (char *p = h->lname; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	for (int all = 0; all < 2; all++) {
		size_t len = 0;
		FILE *f = open_memstream(&s->h1[all], &len);
		if (f == NULL)
			goto fail;
		for (int i = 0; i < s->n; i++)
			if (all || s->h[i].always)
				fprintf(f, "%s: %s\r\n", s->h[i].name,
				    s->h[i].value);
		if (fclose(f) != 0)
			goto fail;
		s->h1_len[all] = len;
	}
	return s;
fail:
	headers_free(s);
	return NULL;
}

void headers_free(struct headers *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < s->n; i++) {
		free(s->h[i].name);
		free(s->h[i].lname);
		free(s->h[i].value);
	}
	free(s->h1[0]);
	free(s->h1[1]);
	free(s);
}

/* nginx's list: the statuses that get every header, not only "always". */
static int all_apply(int status)
{
	switch (status) {
	case 200:
	case 201:
	case 204:
	case 206:
	case 301:
	case 302:
	case 303:
	case 304:
	case 307:
	case 308: return 1;
	default: return 0;
	}
}

/* The set for this response: its location's, else the server's "/". */
static const struct headers *set_for(
    const struct conn *c, const struct request *r)
{
	const struct vhost *vh = r->vh ? r->vh : c->vh;

	if (r->loc != NULL)
		return r->loc->headers;
	return vh && vh->nlocs > 0 ? vh->locs[vh->nlocs - 1].headers : NULL;
}

size_t headers_h1(const struct conn *c, const struct request *r, char *out,
    size_t cap, size_t n)
{
	const struct headers *s = set_for(c, r);
	int all = all_apply(r->status);

	if (s == NULL || s->h1_len[all] == 0)
		return n;
	if (n + s->h1_len[all] >= cap)
		return cap; /* the caller sees the head as too large */
	memcpy(out + n, s->h1[all], s->h1_len[all]);
	return n + s->h1_len[all];
}

size_t headers_h2(const struct conn *c, const struct request *r, void *nva)
{
	const struct headers *s = set_for(c, r);
	nghttp2_nv *nv = nva;
	int all = all_apply(r->status);
	size_t k = 0;

	for (int i = 0; s != NULL && i < s->n; i++) {
		if (!all && !s->h[i].always)
			continue;
		nv[k].name = (uint8_t *)s->h[i].lname;
		nv[k].namelen = strlen(s->h[i].lname);
		nv[k].value = (uint8_t *)s->h[i].value;
		nv[k].valuelen = strlen(s->h[i].value);
		nv[k].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME |
		    NGHTTP2_NV_FLAG_NO_COPY_VALUE;
		k++;
	}
	return k;
}
