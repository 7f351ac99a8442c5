/*
 * unit.h: a tiny test harness for the unit_*.c programs.
 *
 * Every check prints exactly one line on stdout, which tests/run.py reads:
 *
 *	ok NAME
 *	not ok NAME: why (got ..., want ...)
 *	skip NAME: why
 *
 * NAME is one word: a space is written as '_' and other bytes outside
 * '!'..'~' as \xHH, so a test named after a hostile input stays on one
 * line and keeps its meaning. A name used twice is itself a failure.
 * unit_done() returns main's status: 1 when anything failed.
 *
 *	CHECK(name, cond)
 *	CHECK_INT(name, got, want)
 *	CHECK_STR(name, got, want)	(NULL is allowed on either side)
 *	SKIP(name, why)
 *	FAIL(name, why)			(for checks that build their own why)
 *
 * tname(fmt, ...) formats a name (or any short string) into one of a few
 * rotating static buffers.
 */
#ifndef KTTPD_UNIT_H
#define KTTPD_UNIT_H

#define _GNU_SOURCE
#include "kttpd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNIT_NAME_MAX 512

static struct {
	int pass, fail, skip;
	char **names;
	size_t nnames, cap;
} unit;

/* Append s to out (size outsz) with bytes outside ' '..'~' as \xHH, and
 * a space as '_' unless keep_space. Always NUL-terminates. */
static inline void unit_escape(
    char *out, size_t outsz, const char *s, size_t len, int keep_space)
{
	size_t o = strlen(out);

	for (size_t i = 0; i < len && o + 5 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c > ' ' && c < 0x7f) || (c == ' ' && keep_space))
			out[o++] = (char)c;
		else if (c == ' ')
			out[o++] = '_';
		else
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static inline const char *tname(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline const char *tname(const char *fmt, ...)
{
	static char buf[4][UNIT_NAME_MAX];
	static int next;
	char *b = buf[next++ & 3];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, UNIT_NAME_MAX, fmt, ap);
	va_end(ap);
	return b;
}

/* The name as printed; a second use of a name is reported, not hidden. */
static inline int unit_name(char *out, size_t outsz, const char *name)
{
	out[0] = '\0';
	unit_escape(
	    out, outsz, name ? name : "(null)", name ? strlen(name) : 6, 0);
	if (out[0] == '\0')
		snprintf(out, outsz, "(empty)");
	for (size_t i = 0; i < unit.nnames; i++)
		if (strcmp(unit.names[i], out) == 0)
			return -1;
	if (unit.nnames == unit.cap) {
		size_t cap = unit.cap ? unit.cap * 2 : 64;
		char **n = realloc(unit.names, cap * sizeof(*n));
		if (n == NULL)
			return 0;
		unit.names = n;
		unit.cap = cap;
	}
	if ((unit.names[unit.nnames] = strdup(out)) != NULL)
		unit.nnames++;
	return 0;
}

static inline void unit_report(
    const char *word, const char *name, const char *why)
{
	char n[UNIT_NAME_MAX * 4 + 16], w[2048] = "";

	if (unit_name(n, sizeof(n), name) < 0) {
		printf("not ok %s: duplicate test name\n", n);
		unit.fail++;
		fflush(stdout);
		return;
	}
	if (strcmp(word, "ok") == 0)
		unit.pass++;
	else if (strcmp(word, "skip") == 0)
		unit.skip++;
	else
		unit.fail++;
	if (why == NULL) {
		printf("%s %s\n", word, n);
	} else {
		unit_escape(w, sizeof(w), why, strlen(why), 1);
		printf("%s %s: %s\n", word, n, w);
	}
	fflush(stdout);
}

static inline int unit_check(const char *name, int ok, const char *expr)
{
	char why[600];

	snprintf(why, sizeof(why), "expected %s", expr);
	unit_report(ok ? "ok" : "not ok", name, ok ? NULL : why);
	return ok;
}

static inline int unit_check_int(
    const char *name, long long got, long long want)
{
	char why[128];

	snprintf(why, sizeof(why), "got %lld, want %lld", got, want);
	unit_report(
	    got == want ? "ok" : "not ok", name, got == want ? NULL : why);
	return got == want;
}

/* Quoted, escaped, or (null). */
static inline void unit_quote(char *out, size_t outsz, const char *s)
{
	if (s == NULL) {
		snprintf(out, outsz, "(null)");
		return;
	}
	snprintf(out, outsz, "\"");
	unit_escape(out, outsz - 1, s, strlen(s), 1);
	strcat(out, "\"");
}

static inline int unit_check_str(
    const char *name, const char *got, const char *want)
{
	char g[700], w[700], why[1500];
	int ok = (got == NULL || want == NULL) ? got == want
	                                       : strcmp(got, want) == 0;

	unit_quote(g, sizeof(g), got);
	unit_quote(w, sizeof(w), want);
	snprintf(why, sizeof(why), "got %s, want %s", g, w);
	unit_report(ok ? "ok" : "not ok", name, ok ? NULL : why);
	return ok;
}

#define CHECK(name, cond) unit_check((name), !!(cond), #cond)
#define CHECK_INT(name, got, want)                                             \
	unit_check_int((name), (long long)(got), (long long)(want))
#define CHECK_STR(name, got, want) unit_check_str((name), (got), (want))
#define SKIP(name, why)            unit_report("skip", (name), (why))
#define FAIL(name, why)            unit_report("not ok", (name), (why))

/* main's return value; a summary goes to stderr, out of the runner's way. */
static inline int unit_done(void)
{
	fprintf(stderr, "# %d passed, %d failed, %d skipped\n", unit.pass,
	    unit.fail, unit.skip);
	for (size_t i = 0; i < unit.nnames; i++)
		free(unit.names[i]);
	free(unit.names);
	return unit.fail > 0 ? 1 : 0;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#endif
