/*
 * fuzz_path: path_decode() then path_hidden(). Invariants of a decoded
 * path: starts with '/', NUL-terminated within the buffer, no NUL or
 * control byte inside, no empty ("//"), "." or ".." segment; decoding is
 * idempotent on its own output when that has no '%'; and path_hidden is
 * true exactly when a segment starts with '.' outside /.well-known/.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *why, const char *path)
{
	fprintf(stderr, "path invariant broken: %s: \"%s\"\n", why, path);
	abort();
}

static int has_segment(const char *p, const char *seg)
{
	size_t n = strlen(seg);

	for (const char *s = p; (s = strchr(s, '/')) != NULL; s++)
		if (strncmp(s + 1, seg, n) == 0 &&
		    (s[1 + n] == '/' || s[1 + n] == '\0'))
			return 1;
	return 0;
}

static int hidden_ref(const char *p)
{
	if (strncmp(p, "/.well-known/", 13) == 0)
		p += 12;
	for (const char *s = p; (s = strchr(s, '/')) != NULL; s++)
		if (s[1] == '.')
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *uri = malloc(size ? size : 1), *out, *again;
	size_t outsz = size + 2, n;
	int st;

	memcpy(uri, data, size);
	out = malloc(outsz);
	st = path_decode(uri, size, out, outsz);
	if (st != 0) {
		if (st != 400)
			fail("status not 0 or 400", "");
		goto done;
	}
	n = strnlen(out, outsz);
	if (n == outsz)
		fail("not NUL-terminated in its buffer", "");
	if (out[0] != '/')
		fail("does not start with /", out);
	if (strstr(out, "//"))
		fail("empty segment", out);
	if (has_segment(out, ".") || has_segment(out, ".."))
		fail("dot segment", out);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			fail("control byte", out);
	if ((path_hidden(out) != 0) != hidden_ref(out))
		fail("path_hidden disagrees with the reference", out);
	if (strchr(out, '%') == NULL) {
		again = malloc(n + 2);
		if (path_decode(out, n, again, n + 2) != 0 ||
		    strcmp(again, out) != 0)
			fail("not a fixed point", out);
		free(again);
	}
done:
	free(out);
	free(uri);
	return 0;
}
