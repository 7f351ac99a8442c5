/*
 * cond.c: conditional requests (RFC 9110 section 13): If-None-Match,
 * If-Modified-Since and If-Range against a file's ETag and mtime.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <string.h>

/*
 * Does any entity-tag in the comma-separated list match etag? A weak
 * comparison ignores "W/" on either side; a strong one never matches a
 * weak tag. "*" matches any current representation.
 */
int cond_etag_match(const char *list, size_t len, const char *etag, int weak)
{
	const char *p = list, *end = list + len;
	size_t elen = strlen(etag);

	while (p < end) {
		int is_weak = 0;
		const char *tag;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p == end)
			break;
		if (*p == '*')
			return 1;
		if (end - p > 2 && p[0] == 'W' && p[1] == '/') {
			is_weak = 1;
			p += 2;
		}
		if (*p != '"')
			return 0; /* malformed list: no match */
		tag = p++;
		while (p < end && *p != '"')
			p++;
		if (p == end)
			return 0;
		p++;
		if ((weak || !is_weak) && (size_t)(p - tag) == elen &&
		    memcmp(tag, etag, elen) == 0)
			return 1;
	}
	return 0;
}

/* 1 when a GET or HEAD may be answered 304 Not Modified. */
int cond_not_modified(struct request *r)
{
	time_t since;

	if (r->if_none_match.p != NULL)
		return cond_etag_match(
		    r->if_none_match.p, r->if_none_match.n, r->etag, 1);
	if (r->if_modified_since.p != NULL &&
	    date_parse(
	        r->if_modified_since.p, r->if_modified_since.n, &since) == 0)
		return r->mtime <= since;
	return 0;
}

/* 1 when the Range header may be used: no If-Range, or it still holds. */
int cond_if_range(struct request *r)
{
	const struct span *v = &r->if_range;
	time_t t;

	if (v->p == NULL)
		return 1;
	if (v->n > 0 && (v->p[0] == '"' || v->p[0] == 'W'))
		return cond_etag_match(v->p, v->n, r->etag, 0);
	return date_parse(v->p, v->n, &t) == 0 && t == r->mtime;
}
