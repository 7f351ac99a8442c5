/*
 * unit_path.c: path_decode against a hostile list, and path_hidden.
 * Each case names the expected outcome: the canonical path, or "400".
 */
#include "unit.h"

/* Runs path_decode with the buffer size request.c gives it (len + 2). */
static const char *decode(const char *uri, size_t len, char *out, size_t outsz)
{
	int st = path_decode(uri, len, out, outsz);

	if (st != 0)
		return tname("%d", st);
	return out;
}

/* One case; the name is made from the input unless one is given. */
static void check_decode_as(
    const char *name, const char *uri, size_t len, const char *want)
{
	char *out = malloc(len + 2);
	char in[256] = "";

	if (name == NULL) {
		/* the whole string, and len when it differs from strlen */
		unit_escape(in, sizeof(in), uri,
		    len > strlen(uri) ? len : strlen(uri), 0);
		if (len != strlen(uri))
			snprintf(in + strlen(in), sizeof(in) - strlen(in),
			    "(len=%zu)", len);
		name = tname("path_decode[%s]->%s", in, want);
	}
	CHECK_STR(name, out ? decode(uri, len, out, len + 2) : "malloc", want);
	free(out);
}

static void check_decode(const char *uri, size_t len, const char *want)
{
	check_decode_as(NULL, uri, len, want);
}

static void decode_table(void)
{
	static const struct {
		const char *uri, *want;
	} cases[] = {
		/* climbing out of the root, plain and encoded */
		{ "/../etc/passwd", "400" },
		{ "/%2e%2e/", "400" },
		{ "/%2e%2e%2fetc", "400" },
		{ "/%2E%2E%2Fetc", "400" },
		{ "/..%2f..%2f", "400" },
		{ "/a/b/../../..", "400" },
		{ "/a/../..", "400" },
		{ "/..", "400" },
		{ "/a/%2e%2e/%2e%2e", "400" },
		/* bad escapes */
		{ "/%00", "400" },
		{ "/a%00b", "400" },
		{ "/%zz", "400" },
		{ "/%g0", "400" },
		{ "/%0g", "400" },
		{ "/%2", "400" },
		{ "/%", "400" },
		{ "/a%", "400" },
		{ "/%%41", "400" },
		/* not origin-form */
		{ "%2f", "400" },
		{ "", "400" },
		{ "a/b", "400" },
		{ "%2fetc/passwd", "400" },
		/* control bytes, encoded and raw */
		{ "/%0a", "400" },
		{ "/a%0d%0aSet-Cookie:x", "400" },
		{ "/%09", "400" },
		{ "/%1f", "400" },
		{ "/%7f", "400" },
		{ "/a\tb", "400" },
		{ "/a\x7f", "400" },
		{ "/a\x01", "400" },
		/* UTF-8: strict */
		{ "/%c0%ae%c0%ae/", "400" },   /* overlong "." */
		{ "/%c0%af", "400" },          /* overlong "/" */
		{ "/%e0%80%af", "400" },       /* 3-byte overlong "/" */
		{ "/%f0%80%80%af", "400" },    /* 4-byte overlong "/" */
		{ "/%ed%a0%80", "400" },       /* U+D800 surrogate */
		{ "/%ed%bf%bf", "400" },       /* U+DFFF surrogate */
		{ "/%f4%90%80%80", "400" },    /* U+110000 */
		{ "/%f8%88%80%80%80", "400" }, /* 5-byte form */
		{ "/%ff", "400" },
		{ "/%80", "400" },    /* lone continuation */
		{ "/%c3", "400" },    /* truncated */
		{ "/%e2%82", "400" }, /* truncated */
		{ "/%c3%28", "400" }, /* bad continuation */
		{ "/\xc3", "400" },   /* raw, truncated */
		{ "/caf%c3%a9", "/caf\xc3\xa9" },
		{ "/caf\xc3\xa9", "/caf\xc3\xa9" },
		{ "/%e2%82%ac", "/\xe2\x82\xac" },        /* U+20AC */
		{ "/%ef%bf%bf", "/\xef\xbf\xbf" },        /* U+FFFF */
		{ "/%f4%8f%bf%bf", "/\xf4\x8f\xbf\xbf" }, /* U+10FFFF */
		{ "/%ed%9f%bf", "/\xed\x9f\xbf" },        /* U+D7FF */
		/* canonical forms */
		{ "/", "/" },
		{ "//", "/" },
		{ "/.", "/" },
		{ "/./", "/" },
		{ "//a//b", "/a/b" },
		{ "//a//b//", "/a/b/" },
		{ "/./a/./b", "/a/b" },
		{ "/a/.", "/a/" },
		{ "/a/..", "/" },
		{ "/a/b/..", "/a/" },
		{ "/a/b/../", "/a/" },
		{ "/a/b/../c", "/a/c" },
		{ "/a/./../b", "/b" },
		{ "/a/", "/a/" },
		{ "/a/b/%2e%2e", "/a/" },
		{ "/a/%2e/b", "/a/b" },
		{ "/a%2fb", "/a/b" }, /* an encoded slash is a slash */
		{ "/a%2Fb%2F", "/a/b/" },
		{ "/%252e%252e/", "/%2e%2e/" }, /* decoded once only */
		{ "/%2541", "/%41" },
		{ "/a\\..\\b", "/a\\..\\b" }, /* backslash is a plain byte */
		{ "/a%5c..%5cb", "/a\\..\\b" },
		{ "/...", "/..." }, /* three dots is a name */
		{ "/..a", "/..a" },
		{ "/a..", "/a.." },
		{ "/.a/b", "/.a/b" }, /* hidden is path_hidden's business */
		{ "/%41%42c", "/ABc" },
		{ "/a%20b", "/a b" },
		{ "/a+b", "/a+b" },
		{ "/a?b", "/a?b" },
		{ "/%3f", "/?" },
		{ "/~user/", "/~user/" },
	};

	for (size_t i = 0; i < NELEM(cases); i++)
		check_decode(cases[i].uri, strlen(cases[i].uri), cases[i].want);
	/* raw NUL inside the span: the length counts, not the terminator */
	check_decode("/a\0b", 4, "400");
	check_decode("/\0", 2, "400");
	/* only len bytes are read: the rest of the string is ignored */
	check_decode("/a/b/../../..", 7, "/a/");
}

/* The buffer must hold len + 2 bytes; one less is refused, never overrun. */
static void decode_sizes(void)
{
	char out[16];
	int st;

	memset(out, 'X', sizeof(out));
	st = path_decode("/abc", 4, out, 6);
	CHECK_STR(
	    "path_decode[/abc]outsz=len+2->/abc", st ? "400" : out, "/abc");
	memset(out, 'X', sizeof(out));
	st = path_decode("/abc", 4, out, 5);
	CHECK_INT("path_decode[/abc]outsz=len+1->400", st, 400);
	CHECK_INT("path_decode[/abc]outsz=len+1_untouched", out[0], 'X');
	CHECK_INT("path_decode[/abc]outsz=0->400",
	    path_decode("/abc", 4, NULL, 0), 400);
	memset(out, 'X', sizeof(out));
	st = path_decode("/a/.", 4, out, 6);
	CHECK_STR("path_decode[/a/.]outsz=len+2->/a/", st ? "400" : out, "/a/");
	CHECK_INT("path_decode[/a/.]outsz=len+2_no_overrun", out[6], 'X');
}

/* Long paths: many segments, a long name, and deep ".." that stays in. */
static void decode_long(void)
{
	enum { DEPTH = 2000 };
	char *in = malloc(DEPTH * 6 + 64), *want = malloc(DEPTH * 6 + 64);
	size_t n = 0, w = 0;

	if (in == NULL || want == NULL) {
		SKIP("path_decode[long]", "malloc failed");
		free(in);
		free(want);
		return;
	}
	/* "/d/d/d/.../d/" */
	for (int i = 0; i < DEPTH; i++)
		n += (size_t)sprintf(in + n, "/d");
	in[n++] = '/';
	in[n] = '\0';
	check_decode_as("path_decode[long:(/d)*2000/]->same", in, n, in);

	/* 2000 segments down, 2000 ".." up: the root */
	n = 0;
	for (int i = 0; i < DEPTH; i++)
		n += (size_t)sprintf(in + n, "/d");
	for (int i = 0; i < DEPTH; i++)
		n += (size_t)sprintf(in + n, "/..");
	check_decode_as("path_decode[long:(/d)*2000(/..)*2000]->/", in, n, "/");
	/* ... and one more: out */
	n += (size_t)sprintf(in + n, "/..");
	check_decode_as(
	    "path_decode[long:(/d)*2000(/..)*2001]->400", in, n, "400");

	/* one 8000-byte segment of escapes decodes to 2666 bytes */
	n = 0;
	in[n++] = '/';
	want[w++] = '/';
	while (n + 3 <= DEPTH * 4) {
		n += (size_t)sprintf(in + n, "%%41");
		want[w++] = 'A';
	}
	in[n] = '\0';
	want[w] = '\0';
	check_decode_as("path_decode[long:/(%41)*2666]->/A*2666", in, n, want);

	/* "//////..." collapses to one slash */
	memset(in, '/', DEPTH * 4);
	check_decode_as("path_decode[long:/*8000]->/", in, DEPTH * 4, "/");
	free(in);
	free(want);
}

/*
 * Random short inputs over an alphabet of the interesting bytes: a decoded
 * path is canonical and fits in len + 1 bytes; the byte after the buffer is
 * never written.
 */
static void decode_random(void)
{
	static const char alpha[] = "/./%2e%2f%2E%00%c0%ae..//a";
	uint64_t x = 88172645463325252ULL;
	char in[40], out[48], why[200] = "";
	int n400 = 0, n0 = 0;

	for (int iter = 0; iter < 200000 && why[0] == '\0'; iter++) {
		size_t len = 1, olen;
		in[0] = '/';
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		for (size_t k = 1 + x % 30; len < k; len++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			in[len] = alpha[x % (sizeof(alpha) - 1)];
		}
		memset(out, '#', sizeof(out));
		if (path_decode(in, len, out, len + 2) != 0) {
			n400++;
			if (out[len + 2] != '#')
				snprintf(why, sizeof(why), "wrote past outsz");
			continue;
		}
		n0++;
		olen = strlen(out);
		if (out[0] != '/' || strstr(out, "//") || strstr(out, "/./") ||
		    strstr(out, "/../") ||
		    (olen >= 2 && strcmp(out + olen - 2, "/.") == 0) ||
		    (olen >= 3 && strcmp(out + olen - 3, "/..") == 0))
			snprintf(why, sizeof(why), "not canonical: ");
		else if (olen > len + 1 || out[len + 2] != '#')
			snprintf(why, sizeof(why), "wrote past outsz: ");
		else
			continue;
		unit_escape(why, sizeof(why), in, len, 0);
		strcat(why, " -> ");
		unit_escape(why, sizeof(why), out, olen, 0);
	}
	if (why[0] != '\0')
		FAIL("path_decode[random:200000]canonical", why);
	else if (n0 == 0 || n400 == 0)
		FAIL("path_decode[random:200000]canonical",
		    tname("no mix: %d ok, %d refused", n0, n400));
	else
		CHECK("path_decode[random:200000]canonical", 1);
}

static void hidden_table(void)
{
	static const struct {
		const char *path;
		int want;
	} cases[] = {
		{ "/.git/config", 1 }, { "/.git", 1 }, { "/.env", 1 },
		{ "/a/.b", 1 }, { "/a/.b/c", 1 }, { "/a/b/.htaccess", 1 },
		{ "/a.b/c", 0 }, { "/a/b.c", 0 }, { "/", 0 },
		{ "/index.html", 0 }, { "/a./b", 0 }, { "/.well-known/", 0 },
		{ "/.well-known/acme-challenge/x", 0 },
		{ "/.well-known/security.txt", 0 },
		{ "/.well-known/.hidden", 1 },
		{ "/.well-known/a/.git/config", 1 },
		{ "/a/.well-known/x", 1 }, /* only at the top */
		{ "/.well-knownx/y", 1 }, { "/.Well-Known/x", 1 }, /* case
		                                                      matters */
	};

	for (size_t i = 0; i < NELEM(cases); i++)
		CHECK_INT(
		    tname("path_hidden[%s]->%d", cases[i].path, cases[i].want),
		    path_hidden(cases[i].path) != 0, cases[i].want);
}

int main(void)
{
	decode_table();
	decode_sizes();
	decode_long();
	decode_random();
	hidden_table();
	return unit_done();
}
