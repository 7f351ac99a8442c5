/*
 * unit_mime.c: mime_load (a mime.types file over the built-in table) and
 * mime_type (the extension of the last path segment, any case).
 */
#include "unit.h"

#include <unistd.h>

#define DEF "application/octet-stream"

struct lookup {
	const char *path, *want;
};

static void check_table(const char *table, const struct mime *m,
    const struct lookup *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		CHECK_STR(tname("mime_type[%s,%s]->%s", table, cases[i].path,
		              cases[i].want),
		    mime_type(m, cases[i].path), cases[i].want);
}

/* A temporary file holding text; its path in path (PATH_MAX). */
static int write_temp(char *path, size_t pathsz, const char *text)
{
	int fd;
	FILE *f;

	snprintf(path, pathsz, "/tmp/kttpd-unit-mime-XXXXXX");
	if ((fd = mkstemp(path)) < 0)
		return -1;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(path);
		return -1;
	}
	fputs(text, f);
	if (fclose(f) != 0) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* Missing, empty or NULL path: the built-in table alone. */
static void builtins(void)
{
	static const struct lookup cases[] = {
		{ "/index.html", "text/html" },
		{ "/a/b/page.htm", "text/html" },
		{ "/INDEX.HTML", "text/html" },
		{ "/Index.Html", "text/html" },
		{ "/app.JS", "text/javascript" },
		{ "/style.css", "text/css" },
		{ "/data.json", "application/json" },
		{ "/img.png", "image/png" },
		{ "/img.jpeg", "image/jpeg" },
		{ "/font.woff2", "font/woff2" },
		{ "/archive.tar.gz", "application/gzip" },
		{ "/archive.tar", "application/x-tar" },
		{ "/a.b.c/x.png", "image/png" },
		{ "/a.b/c.css", "text/css" },
		{ "/README", DEF },
		{ "/a", DEF },
		{ "/", DEF },
		{ "", DEF },
		{ "/.profile", DEF }, /* a dotfile: "profile" is no known type
		                       */
		{ "/dir/.hidden", DEF },
		{ "/a.b/c", DEF }, /* the dot is in a directory name */
		{ "/a.html/", DEF },
		{ "/a.html/c", DEF },
		{ "/file.", DEF },
		{ "/file.unknownext", DEF },
		{ "/file.htmlx", DEF },
		{ "/file.htm l", DEF },
		{ "noslash.css", "text/css" },
	};
	struct mime *m;

	m = mime_load("/nonexistent/kttpd-unit/mime.types");
	if (!CHECK("mime_load[missing_file]->builtins", m != NULL))
		return;
	check_table("missing", m, cases, NELEM(cases));
	mime_free(m);

	m = mime_load(NULL);
	if (CHECK("mime_load[NULL]->builtins", m != NULL))
		CHECK_STR("mime_type[NULL_path_table,/a.css]->text/css",
		    mime_type(m, "/a.css"), "text/css");
	mime_free(m);
	m = mime_load("");
	if (CHECK("mime_load[empty_path]->builtins", m != NULL))
		CHECK_STR("mime_type[empty_path_table,/a.css]->text/css",
		    mime_type(m, "/a.css"), "text/css");
	mime_free(m);
	CHECK_STR("mime_type[no_table,/a.html]->" DEF,
	    mime_type(NULL, "/a.html"), DEF);
	mime_free(NULL); /* a no-op, as free(NULL) */
}

/* A file: comments, several extensions a line, overrides, odd spacing. */
static void from_file(void)
{
	static const char text[] = "# kttpd unit test: text/x-commented cmt\n"
	                           "#text/x-commented hidden1\n"
	                           "\n"
	                           "text/x-kttpd   ktt KTU kttv\n"
	                           "application/x-override html\n"
	                           "text/x-only-type\n"
	                           "  text/x-indented\tind\n"
	                           "image/x-tabbed\tit1\t\tit2   \n"
	                           "application/x-crlf crlf\r\n"
	                           "text/x-first dup\n"
	                           "text/x-second DUP\n"
	                           "video/x-last-line last";
	static const struct lookup cases[] = {
		{ "/a.ktt", "text/x-kttpd" },
		{ "/a.KTT", "text/x-kttpd" },
		{ "/a.ktu", "text/x-kttpd" }, /* written upper case */
		{ "/a.Ktu", "text/x-kttpd" },
		{ "/a.kttv", "text/x-kttpd" },
		{ "/index.html", "application/x-override" }, /* file wins */
		{ "/INDEX.HTML", "application/x-override" },
		{ "/index.htm", "text/html" }, /* built-in kept */
		{ "/s.css", "text/css" },
		{ "/a.cmt", DEF }, /* comment lines add nothing */
		{ "/a.hidden1", DEF },
		{ "/a.ind", "text/x-indented" },
		{ "/a.it1", "image/x-tabbed" },
		{ "/a.it2", "image/x-tabbed" },
		{ "/a.crlf", "application/x-crlf" },
		{ "/a.dup", "text/x-second" },      /* later lines win */
		{ "/a.last", "video/x-last-line" }, /* no final newline */
		{ "/a.only-type", DEF },
		{ "/a.b/c", DEF },
		{ "/a", DEF },
		{ "/a.nope", DEF },
	};
	char path[64];
	struct mime *m;

	if (write_temp(path, sizeof(path), text) < 0) {
		SKIP("mime_load[file]", "cannot write a temporary file");
		return;
	}
	m = mime_load(path);
	unlink(path);
	if (!CHECK("mime_load[file]->table", m != NULL))
		return;
	check_table("file", m, cases, NELEM(cases));
	mime_free(m);
}

/* Enough entries to grow the hash several times; nothing gets lost. */
static void many(void)
{
	enum { N = 3000 };
	char path[64], *text = malloc(N * 48), why[128] = "";
	size_t n = 0;
	struct mime *m;

	if (text == NULL) {
		SKIP("mime_load[3000_types]", "malloc failed");
		return;
	}
	for (int i = 0; i < N; i++)
		n += (size_t)sprintf(
		    text + n, "type/n%d ext%d E%dx\n", i, i, i);
	if (write_temp(path, sizeof(path), text) < 0) {
		free(text);
		SKIP("mime_load[3000_types]", "cannot write a temporary file");
		return;
	}
	free(text);
	m = mime_load(path);
	unlink(path);
	if (!CHECK("mime_load[3000_types]->table", m != NULL))
		return;
	for (int i = 0; i < N && !why[0]; i++) {
		char p[32], want[32];
		const char *got;
		snprintf(want, sizeof(want), "type/n%d", i);
		snprintf(p, sizeof(p), "/f.ext%d", i);
		if (strcmp(got = mime_type(m, p), want) != 0)
			snprintf(why, sizeof(why), "%s: got %s, want %s", p,
			    got, want);
		snprintf(p, sizeof(p), "/f.e%dX", i);
		if (!why[0] && strcmp(got = mime_type(m, p), want) != 0)
			snprintf(why, sizeof(why), "%s: got %s, want %s", p,
			    got, want);
	}
	if (why[0])
		FAIL("mime_type[3000_types]all_found", why);
	else
		CHECK("mime_type[3000_types]all_found", 1);
	CHECK_STR("mime_type[3000_types,/a.html]->text/html",
	    mime_type(m, "/a.html"), "text/html");
	CHECK_STR("mime_type[3000_types,/a.ext3000]->" DEF,
	    mime_type(m, "/a.ext3000"), DEF);
	mime_free(m);
}

/* The system's file, when there is one, on top of the built-ins. */
static void system_file(void)
{
	struct mime *m;

	if (access("/etc/mime.types", R_OK) != 0) {
		SKIP("mime_load[/etc/mime.types]", "no /etc/mime.types");
		return;
	}
	m = mime_load("/etc/mime.types");
	if (!CHECK("mime_load[/etc/mime.types]->table", m != NULL))
		return;
	CHECK_STR("mime_type[/etc/mime.types,/a.html]->text/html",
	    mime_type(m, "/a.html"), "text/html");
	CHECK_STR("mime_type[/etc/mime.types,/a.png]->image/png",
	    mime_type(m, "/a.png"), "image/png");
	mime_free(m);
}

int main(void)
{
	builtins();
	from_file();
	many();
	system_file();
	return unit_done();
}
