/*
 * path.c: turn a request path into a canonical path under the root.
 * Pure functions: no I/O, unit-tested against a hostile list.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <string.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t len;
		unsigned cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			len = 2, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			len = 3, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			len = 4, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/*
 * Is uri (starting with '/') already canonical, as most are: printable
 * ASCII but space (valid UTF-8), no escape, and no slash followed by a
 * slash or a dot (no empty, "." or ".." segment)? Then both passes
 * below would give it back unchanged, its trailing slash included.
 */
static int plain(const char *uri, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)uri[i];
		if (c <= 0x20 || c >= 0x7f || c == '%')
			return 0;
		if (c == '/' && i + 1 < len &&
		    (uri[i + 1] == '/' || uri[i + 1] == '.'))
			return 0;
	}
	return 1;
}

/*
 * Decode percent escapes exactly once, then resolve ".", ".." and empty
 * segments. Returns 0 with a NUL-terminated path starting with '/' in out,
 * or 400 for anything malformed: a bad or NUL escape, a control byte,
 * invalid UTF-8, or ".." climbing above the root. A trailing slash is kept
 * because it means "directory".
 */
int path_decode(const char *uri, size_t len, char *out, size_t outsz)
{
	size_t o = 0, seg;
	int trailing;

	if (len == 0 || uri[0] != '/' || outsz < len + 2)
		return 400;
	if (plain(uri, len)) { /* issue 13: its own canonical form */
		memcpy(out, uri, len);
		out[len] = '\0';
		return 0;
	}
	/* pass 1: decode into out */
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)uri[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return 400;
			hi = hexval((unsigned char)uri[i + 1]);
			lo = hexval((unsigned char)uri[i + 2]);
			if (hi < 0 || lo < 0)
				return 400;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return 400;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (!utf8_valid((const unsigned char *)out, o))
		return 400;

	/* a path naming a directory (ending in /, . or ..) keeps its slash */
	seg = o;
	while (seg > 0 && out[seg - 1] != '/')
		seg--;
	trailing = seg == o || strcmp(out + seg, ".") == 0 ||
	    strcmp(out + seg, "..") == 0;

	/* pass 2: canonicalize in place; the write head never passes the read
	 */
	size_t r = 0, w = 0;
	while (r < o) {
		while (r < o && out[r] == '/')
			r++;
		seg = r;
		while (r < o && out[r] != '/')
			r++;
		size_t n = r - seg;
		if (n == 0 || (n == 1 && out[seg] == '.'))
			continue;
		if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
			if (w == 0)
				return 400;
			while (out[w - 1] != '/')
				w--;
			w--; /* and the slash before the segment */
			continue;
		}
		out[w++] = '/';
		memmove(out + w, out + seg, n);
		w += n;
	}
	if (w == 0 || trailing)
		out[w++] = '/';
	out[w] = '\0';
	return 0;
}

/* A segment starting with '.' is hidden, except under /.well-known/. */
int path_hidden(const char *path)
{
	/* issue 13: one pass of our own, no strncmp unless it starts "/." */
	if (path[0] == '/' && path[1] == '.' &&
	    strncmp(path, "/.well-known/", 13) == 0)
		path += 12;
	for (; *path; path++)
		if (path[0] == '/' && path[1] == '.')
			return 1;
	return 0;
}
