/*
 * date.c: HTTP dates (RFC 9110 section 5.6.7). We send IMF-fixdate and
 * accept the two obsolete forms too, as recipients must.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <stdio.h>
#include <string.h>

static const char wday[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
	"Sat" };
static const char month[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* For durations: monotonic, unlike the event loop's cached wall time. */
int64_t date_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * A response formats a file's mtime (Last-Modified) every time; a worker
 * mostly serves the same few files, so the last result is kept per
 * thread and the next request for that file copies it.
 */
size_t date_format(time_t t, char *out, size_t outsz)
{
	static __thread time_t last_t = -1;
	static __thread char last[40];
	static __thread size_t last_n;
	struct tm tm;
	int n;

	if (t != last_t) {
		gmtime_r(&t, &tm);
		n = snprintf(last, sizeof(last),
		    "%s, %02d %s %04d %02d:%02d:%02d GMT", wday[tm.tm_wday],
		    tm.tm_mday, month[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		if (n < 0 || (size_t)n >= sizeof(last))
			return 0;
		last_t = t;
		last_n = (size_t)n;
	}
	if (last_n >= outsz)
		return 0;
	memcpy(out, last, last_n + 1);
	return last_n;
}

/* v in base 10 or 16 at p, no leading zeros; returns the end. */
char *date_u64(char *p, uint64_t v, unsigned base)
{
	char tmp[20];
	int n = 0;

	if (base == 16) /* constant divisors: shifts and multiplies, not */
		do {    /* a 64-bit div per digit (issue 13: per request) */
			tmp[n++] = "0123456789abcdef"[v & 15];
			v >>= 4;
		} while (v);
	else
		do {
			tmp[n++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
	while (n)
		*p++ = tmp[--n];
	*p = '\0';
	return p;
}

int date_parse(const char *s, size_t len, time_t *out)
{
	static const struct {
		const char *fmt;
		size_t len; /* exact length; 0: any */
	} forms[] = {
		{ "%a, %d %b %Y %H:%M:%S GMT", 29 }, /* IMF-fixdate */
		{ "%A, %d-%b-%y %H:%M:%S GMT", 0 },  /* RFC 850 */
		{ "%a %b %e %H:%M:%S %Y", 24 },      /* asctime */
	};
	char buf[64];

	if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct tm tm;
		const char *end;

		if (forms[i].len != 0 && forms[i].len != len)
			continue;
		memset(&tm, 0, sizeof(tm));
		end = strptime(buf, forms[i].fmt, &tm);
		if (end != NULL && *end == '\0' && tm.tm_year >= 70) {
			*out = timegm(&tm);
			return 0;
		}
	}
	return -1;
}
