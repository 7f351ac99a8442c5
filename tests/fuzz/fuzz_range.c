/*
 * fuzz_range: range_parse() (one range) and range_parse_set() (a set, for
 * multipart/byteranges). Input: 8 bytes of file size (little endian; an
 * odd first byte folds it below 100000), then the header value.
 * Checks: an OK range lies inside the file with first <= last; a set has
 * 1..max members, sorted, disjoint, more than 80 bytes apart, each inside
 * the file; NONE/0 and UNSATISFIABLE/-1 are the only other answers.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXR 8

static void fail(const char *why)
{
	fprintf(stderr, "range invariant broken: %s\n", why);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t fsize = 0, first = 0xdead, last = 0xbeef;
	struct brange set[MAXR + 1];
	enum range_result r;
	char *hdr;
	int n;

	if (size < 8)
		return 0;
	memcpy(&fsize, data, 8);
	if (data[0] & 1)
		fsize %= 100000; /* mostly small files, sometimes huge */
	fsize &= INT64_MAX; /* st_size is an off_t */
	data += 8;
	size -= 8;
	/* an exact-size copy: ASan sees any read past the header */
	hdr = malloc(size ? size : 1);
	memcpy(hdr, data, size);

	r = range_parse(hdr, size, fsize, &first, &last);
	if (r == RANGE_OK) {
		if (fsize == 0 || first > last || last >= fsize)
			fail("single range outside the file");
	} else if (r != RANGE_NONE && r != RANGE_UNSATISFIABLE)
		fail("single range: unknown result");

	memset(set, 0xa5, sizeof(set));
	n = range_parse_set(hdr, size, fsize, set, MAXR);
	if (n < -1 || n > MAXR)
		fail("set: count out of bounds");
	for (int i = 0; i < n; i++) {
		if (set[i].first > set[i].last || set[i].last >= fsize)
			fail("set: range outside the file");
		if (i > 0 && set[i].first <= set[i - 1].last)
			fail("set: ranges overlap or are unsorted");
		if (i > 0 && set[i].first - set[i - 1].last <= 80)
			fail("set: near-adjacent ranges not merged");
	}
	/* one range: both parsers agree */
	if (n == 1 && r == RANGE_OK &&
	    (set[0].first != first || set[0].last != last))
		fail("set of one disagrees with range_parse");
	free(hdr);
	return 0;
}
