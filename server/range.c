/*
 * range.c: the Range request header (RFC 9110 section 14), one range.
 * A header we cannot use is ignored (RANGE_NONE: send the whole file),
 * as the RFC allows; a well-formed range outside the file is 416.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

/* Digits at *p into *v; saturates instead of overflowing. */
static int digits(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (*p < end && isdigit((unsigned char)**p)) {
		unsigned d = (unsigned)(**p - '0');
		*v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
		(*p)++;
	}
	return *p > s;
}

static void skip_ows(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

/* One range-spec at *p, up to a comma or the end. */
static enum range_result spec(const char **pp, const char *end, uint64_t size,
    uint64_t *first, uint64_t *last)
{
	const char *p = *pp;
	uint64_t a, b;
	int has_a, has_b;

	skip_ows(&p, end);
	has_a = digits(&p, end, &a);
	if (p >= end || *p != '-')
		return RANGE_NONE;
	p++;
	has_b = digits(&p, end, &b);
	skip_ows(&p, end);
	*pp = p;
	if ((p != end && *p != ',') || (!has_a && !has_b) ||
	    (has_a && has_b && b < a))
		return RANGE_NONE; /* junk: the whole header is ignored */
	if (!has_a) {              /* suffix: the last b bytes */
		if (b == 0 || size == 0)
			return RANGE_UNSATISFIABLE;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return RANGE_OK;
	}
	if (a >= size)
		return RANGE_UNSATISFIABLE;
	*first = a;
	*last = !has_b || b >= size ? size - 1 : b;
	return RANGE_OK;
}

static const char *unit(const char *hdr, size_t len)
{
	const char *p = hdr, *end = hdr + len;

	skip_ows(&p, end);
	if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
		return NULL;
	return p + 6;
}

enum range_result range_parse(
    const char *hdr, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
	const char *p = unit(hdr, len), *end = hdr + len;
	enum range_result r;

	if (p == NULL)
		return RANGE_NONE;
	r = spec(&p, end, size, first, last);
	return p == end ? r : RANGE_NONE; /* several ranges: whole file */
}

static int by_first(const void *a, const void *b)
{
	const struct brange *x = a, *y = b;

	return (x->first > y->first) - (x->first < y->first);
}

/*
 * A set of ranges: sorted, and overlapping or nearly adjacent ones merged
 * (a part header costs about 80 bytes), so that a client cannot make us
 * send a byte twice or many tiny parts. More than max ranges in the header
 * is ignored (whole file), as nginx's max_ranges does. Returns the number
 * of ranges in out, 0 to ignore the header, or -1 when none is
 * satisfiable (416).
 */
int range_parse_set(
    const char *hdr, size_t len, uint64_t size, struct brange *out, int max)
{
	const char *p = unit(hdr, len), *end = hdr + len;
	int n = 0, specs = 0;

	if (p == NULL)
		return 0;
	for (;;) {
		uint64_t first, last;
		enum range_result r = spec(&p, end, size, &first, &last);

		if (r == RANGE_NONE || ++specs > max)
			return 0;
		if (r == RANGE_OK) {
			out[n].first = first;
			out[n++].last = last;
		}
		if (p == end)
			break;
		p++; /* the comma */
	}
	if (n == 0)
		return -1;
	qsort(out, (size_t)n, sizeof(*out), by_first);
	int k = 0;
	for (int i = 1; i < n; i++) {
		if (out[i].first <= out[k].last + 80) {
			if (out[i].last > out[k].last)
				out[k].last = out[i].last;
		} else
			out[++k] = out[i];
	}
	return k + 1;
}
