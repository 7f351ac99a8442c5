/*
 * unit_date.c: date_format (IMF-fixdate) and date_parse (IMF-fixdate,
 * RFC 850, asctime; nothing else, and nothing after).
 */
#include "unit.h"

#define SAMPLE 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */

static void format_table(void)
{
	static const struct {
		time_t t;
		const char *want;
	} cases[] = {
		{ SAMPLE, "Sun, 06 Nov 1994 08:49:37 GMT" },
		{ 0, "Thu, 01 Jan 1970 00:00:00 GMT" },
		{ 951782400, "Tue, 29 Feb 2000 00:00:00 GMT" },
		{ 2147483647, "Tue, 19 Jan 2038 03:14:07 GMT" },
		{ 2147483648LL, "Tue, 19 Jan 2038 03:14:08 GMT" },
		{ 4102444799LL, "Thu, 31 Dec 2099 23:59:59 GMT" },
	};
	char out[64];

	for (size_t i = 0; i < NELEM(cases); i++) {
		size_t n = date_format(cases[i].t, out, sizeof(out));
		CHECK_STR(tname("date_format[%lld]->%s", (long long)cases[i].t,
		              cases[i].want),
		    n == strlen(out) ? out : "(length mismatch)",
		    cases[i].want);
	}
}

/* 29 bytes and a NUL: a smaller buffer gives 0, never a cut date. */
static void format_sizes(void)
{
	char out[64];

	CHECK_INT(
	    "date_format[outsz=30]->29", date_format(SAMPLE, out, 30), 29);
	CHECK_INT("date_format[outsz=29]->0", date_format(SAMPLE, out, 29), 0);
	CHECK_INT("date_format[outsz=1]->0", date_format(SAMPLE, out, 1), 0);
}

static void parse_table(void)
{
	static const struct {
		const char *s;
		long long want; /* -1: refused */
	} cases[] = {
		/* the three forms a recipient must accept */
		{ "Sun, 06 Nov 1994 08:49:37 GMT", SAMPLE },
		{ "Sunday, 06-Nov-94 08:49:37 GMT", SAMPLE },
		{ "Sun Nov  6 08:49:37 1994", SAMPLE },
		{ "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
		{ "Tue, 29 Feb 2000 00:00:00 GMT", 951782400 },
		{ "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648LL },
		{ "Thu, 31 Dec 2099 23:59:59 GMT", 4102444799LL },
		{ "Thursday, 01-Jan-70 00:00:00 GMT", 0 },
		{ "Tue Feb 29 00:00:00 2000", 951782400 },
		/* junk */
		{ "", -1 },
		{ "garbage", -1 },
		{ "784111777", -1 },
		{ "Sun, 06 Nov 1994", -1 },
		{ "Sun, 06 Nov 1994 08:49:37", -1 },
		{ "06 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 PST", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 +0000", -1 },
		{ "Sun, 32 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 00 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 06 Foo 1994 08:49:37 GMT", -1 },
		{ "Sun, 06 Nov 1994 24:49:37 GMT", -1 },
		{ "Sun, 06 Nov 1994 08:60:37 GMT", -1 },
		{ "Sun, 06 Nov 1994 08:49 GMT", -1 },
		{ "Xyz, 06 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 06-Nov-1994 08:49:37 GMT", -1 },
		{ "Sun Nov  6 08:49:37", -1 },
		{ "Sun Nov  6 1994", -1 },
		/* trailing garbage */
		{ "Sun, 06 Nov 1994 08:49:37 GMT ", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 GMTx", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT, x", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT; length=123", -1 },
		{ "Sunday, 06-Nov-94 08:49:37 GMT junk", -1 },
		{ "Sun Nov  6 08:49:37 1994 GMT", -1 },
		{ "Sun Nov  6 08:49:37 1994x", -1 },
		/* 64 bytes and more never fit */
		{ "Sun, 06 Nov 1994 08:49:37 GMT                               "
		  "   ",
		    -1 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		time_t t = 12345;
		int r = date_parse(cases[i].s, strlen(cases[i].s), &t);
		char in[200] = "";

		unit_escape(in, sizeof(in), cases[i].s, strlen(cases[i].s), 0);
		CHECK_INT(tname("date_parse[%s]->%lld", in, cases[i].want),
		    r == 0 ? (long long)t : -1, cases[i].want);
	}
}

/* The span is (s, len): bytes past len are not read, bytes within it are. */
static void parse_spans(void)
{
	static const char fix[] = "Sun, 06 Nov 1994 08:49:37 GMT";
	char buf[64];
	time_t t;
	int r;

	t = 0;
	r = date_parse("Sun, 06 Nov 1994 08:49:37 GMTjunk", 29, &t);
	CHECK_INT("date_parse[fixdate+junk(len=29)]->784111777",
	    r == 0 ? (long long)t : -1, SAMPLE);
	r = date_parse(fix, 28, &t);
	CHECK_INT("date_parse[fixdate(len=28)]->-1", r, -1);
	r = date_parse(fix, 0, &t);
	CHECK_INT("date_parse[fixdate(len=0)]->-1", r, -1);

	/* a NUL inside the span is garbage, not the end of the value */
	memcpy(buf, fix, 29);
	memcpy(buf + 29, "\0junk", 5);
	r = date_parse(buf, 34, &t);
	CHECK_INT("date_parse[fixdate\\x00junk(len=34)]->-1", r, -1);
}

/*
 * A two-digit year outside the RFC 850 form (RFC 822 style, still sent by
 * old software) is either refused or read as 19xx: never as the year 94.
 */
static void parse_short_years(void)
{
	static const char *const cases[] = {
		"Sun, 06 Nov 94 08:49:37 GMT",
		"Sunday, 06 Nov 94 08:49:37 GMT",
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		time_t t = 12345;
		int r = date_parse(cases[i], strlen(cases[i]), &t);
		char why[120];

		snprintf(why, sizeof(why), "got %lld, want -1 or %d",
		    r == 0 ? (long long)t : -1LL, SAMPLE);
		if (r != 0 || t == SAMPLE)
			CHECK(
			    tname("date_parse[%s]->-1_or_%d", cases[i], SAMPLE),
			    1);
		else
			FAIL(
			    tname("date_parse[%s]->-1_or_%d", cases[i], SAMPLE),
			    why);
	}
}

/* date_parse(date_format(t)) == t over a spread of times. */
static void roundtrip(void)
{
	char out[64], why[160] = "";
	int n = 0;

	for (long long t = 0; t < 4102444800LL && !why[0];
	     t += 86400LL * 37 + 3671) {
		time_t back;
		date_format((time_t)t, out, sizeof(out));
		if (date_parse(out, strlen(out), &back) != 0 || back != t)
			snprintf(why, sizeof(why), "%lld -> %s -> %lld", t, out,
			    (long long)back);
		n++;
	}
	if (why[0])
		FAIL("date_roundtrip[1970..2099]", why);
	else
		CHECK("date_roundtrip[1970..2099]", n > 1000);
}

int main(void)
{
	format_table();
	format_sizes();
	parse_table();
	parse_spans();
	parse_short_years();
	roundtrip();
	return unit_done();
}
