/*
 * range.c: the Range request header (RFC 9110 section 14), one range.
 * A header we cannot use is ignored (RANGE_NONE: send the whole file),
 * as the RFC allows; a well-formed range outside the file is 416.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <ctype.h>
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

enum range_result range_parse(
    const char *hdr, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
	const char *p = hdr, *end = hdr + len;
	uint64_t a, b;
	int has_a, has_b;

	skip_ows(&p, end);
	if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
		return RANGE_NONE;
	p += 6;
	skip_ows(&p, end);
	has_a = digits(&p, end, &a);
	if (p >= end || *p != '-')
		return RANGE_NONE;
	p++;
	has_b = digits(&p, end, &b);
	skip_ows(&p, end);
	if (p != end || (!has_a && !has_b))
		return RANGE_NONE; /* several ranges, or junk: whole file */
	if (has_a && has_b && b < a)
		return RANGE_NONE;

	if (!has_a) { /* suffix: the last b bytes */
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
