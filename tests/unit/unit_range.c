/*
 * unit_range.c: range_parse. Each case names the expected outcome:
 * "NONE" (ignore the header, send the whole file), "416", or "FIRST-LAST".
 */
#include "unit.h"

static const char *render(enum range_result r, uint64_t first, uint64_t last)
{
	switch (r) {
	case RANGE_NONE: return "NONE";
	case RANGE_UNSATISFIABLE: return "416";
	case RANGE_OK:
		return tname("%llu-%llu", (unsigned long long)first,
		    (unsigned long long)last);
	}
	return tname("bad-result-%d", (int)r);
}

static void check_range(
    const char *hdr, size_t len, uint64_t size, const char *want)
{
	uint64_t first = 0xdead, last = 0xbeef;
	enum range_result r = range_parse(hdr, len, size, &first, &last);
	char in[160] = "";

	/* the whole string, and len when it stops short or runs past a NUL */
	unit_escape(
	    in, sizeof(in), hdr, len > strlen(hdr) ? len : strlen(hdr), 0);
	if (len != strlen(hdr))
		snprintf(
		    in + strlen(in), sizeof(in) - strlen(in), "(len=%zu)", len);
	CHECK_STR(tname("range_parse[%s,size=%llu]->%s", in,
	              (unsigned long long)size, want),
	    render(r, first, last), want);
}

static void range_table(void)
{
	static const struct {
		const char *hdr;
		uint64_t size;
		const char *want;
	} cases[] = {
		{ "bytes=0-0", 10000, "0-0" },
		{ "bytes=0-", 10000, "0-9999" },
		{ "bytes=-1", 10000, "9999-9999" },
		{ "bytes=-0", 10000, "416" },
		{ "bytes=9999-", 10000, "9999-9999" },
		{ "bytes=10000-", 10000, "416" },
		{ "bytes=10001-20000", 10000, "416" },
		{ "bytes=100-199", 10000, "100-199" },
		{ "bytes=9999-9999", 10000, "9999-9999" },
		{ "bytes=0-9999", 10000, "0-9999" },
		{ "bytes=0-10000", 10000, "0-9999" },
		{ "bytes=200-100", 10000, "NONE" },
		{ "bytes=0-99999999", 10000, "0-9999" },
		{ "bytes=-20000", 10000, "0-9999" },
		{ "bytes=-10000", 10000, "0-9999" },
		{ "bytes=-9999", 10000, "1-9999" },
		{ "bytes=0-1,5-6", 10000, "NONE" },
		{ "bytes=0-1, 5-6", 10000, "NONE" },
		{ "bytes=0-1,", 10000, "NONE" },
		{ "BYTES=1-2", 10000, "1-2" },
		{ "Bytes=1-2", 10000, "1-2" },
		{ "items=0-1", 10000, "NONE" },
		{ "bytes", 10000, "NONE" },
		{ "bytes=", 10000, "NONE" },
		{ "bytes=-", 10000, "NONE" },
		{ "bytes=--1", 10000, "NONE" },
		{ "bytes=1", 10000, "NONE" },
		{ "bytes=a-b", 10000, "NONE" },
		{ "bytes=+1-2", 10000, "NONE" },
		{ "bytes=1-+2", 10000, "NONE" },
		{ "bytes=0x10-", 10000, "NONE" },
		{ "bytes= 1-2 ", 10000, "1-2" },
		{ " bytes=1-2", 10000, "1-2" },
		{ "bytes=\t1-2\t", 10000, "1-2" },
		{ "bytes=1 -2", 10000, "NONE" },
		{ "bytes=1- 2", 10000, "NONE" },
		{ "bytes = 1-2", 10000, "NONE" },
		{ "bytes=1-2x", 10000, "NONE" },
		{ "bytes=1-2;", 10000, "NONE" },
		{ "", 10000, "NONE" },
		/* huge numbers saturate instead of wrapping */
		{ "bytes=99999999999999999999999-", 10000, "416" },
		{ "bytes=18446744073709551615-", 10000, "416" },
		{ "bytes=18446744073709551616-", 10000, "416" },
		{ "bytes=0-99999999999999999999999", 10000, "0-9999" },
		{ "bytes=-99999999999999999999999", 10000, "0-9999" },
		{ "bytes=00000000000000000000000000001-2", 10000, "1-2" },
		{ "bytes=1844674407370955161-", 10000, "416" },
		/* leading zeros are still decimal */
		{ "bytes=010-011", 10000, "10-11" },
		/* an empty file has no satisfiable range */
		{ "bytes=0-", 0, "416" },
		{ "bytes=0-0", 0, "416" },
		{ "bytes=-5", 0, "416" },
		{ "bytes=-0", 0, "416" },
		{ "bytes=5-1", 0, "NONE" },
		{ "bytes=0-1,2-3", 0, "NONE" },
		/* a one-byte file */
		{ "bytes=0-", 1, "0-0" },
		{ "bytes=-1", 1, "0-0" },
		{ "bytes=-2", 1, "0-0" },
		{ "bytes=1-", 1, "416" },
		/* sizes near the top of uint64_t */
		{ "bytes=-1", UINT64_MAX,
		    "18446744073709551614-18446744073709551614" },
		{ "bytes=18446744073709551614-", UINT64_MAX,
		    "18446744073709551614-18446744073709551614" },
		{ "bytes=0-", UINT64_MAX, "0-18446744073709551614" },
	};

	for (size_t i = 0; i < NELEM(cases); i++)
		check_range(cases[i].hdr, strlen(cases[i].hdr), cases[i].size,
		    cases[i].want);
	/* only len bytes are read: what follows is not part of the header */
	check_range("bytes=1-2,3-4", 9, 10000, "1-2");
	check_range("bytes=1-2x", 9, 10000, "1-2");
	check_range("bytes=1-2", 5, 10000, "NONE");
	check_range("bytes=1-2", 0, 10000, "NONE");
}

/* NONE and 416 leave first and last alone. */
static void range_outputs(void)
{
	uint64_t first = 7, last = 8;

	range_parse("bytes=x", 7, 100, &first, &last);
	CHECK("range_parse[bytes=x]leaves_first_last", first == 7 && last == 8);
	range_parse("bytes=100-", 10, 100, &first, &last);
	CHECK("range_parse[bytes=100-,size=100]leaves_first_last",
	    first == 7 && last == 8);
}

int main(void)
{
	range_table();
	range_outputs();
	return unit_done();
}
