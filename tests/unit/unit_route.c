/*
 * unit_route.c: route_split_origin, the fast split of an origin-form
 * target, against http_parser_parse_url, which it stands in for: on the
 * targets it takes, the same path and query (same bytes, same NULL
 * query), and a table of the targets it must leave to http_parser.
 */
#include "unit.h"

#include <http_parser.h>

static struct span field(
    const char *buf, const struct http_parser_url *u, int f)
{
	struct span s = { NULL, 0 };

	if (u->field_set & (1 << f)) {
		s.p = buf + u->field_data[f].off;
		s.n = u->field_data[f].len;
	}
	return s;
}

/* Does http_parser split t as route_split_origin did (path, query)? */
static const char *agrees(struct span t, struct span path, struct span query)
{
	struct http_parser_url u;

	http_parser_url_init(&u);
	if (http_parser_parse_url(t.p, t.n, 0, &u) != 0)
		return "http_parser refuses it";
	if (u.field_set & (1 << UF_HOST))
		return "http_parser finds a host";
	struct span up = field(t.p, &u, UF_PATH), uq = field(t.p, &u, UF_QUERY);
	if (up.p != path.p || up.n != path.n)
		return "another path";
	if (uq.p != query.p || uq.n != query.n)
		return "another query";
	return NULL;
}

static void split_table(void)
{
	static const struct {
		const char *t, *path, *query; /* NULL path: not taken */
	} cases[] = {
		{ "/", "/", NULL },
		{ "/a/b.txt", "/a/b.txt", NULL },
		{ "/a?", "/a", NULL },
		{ "/a?x=1", "/a", "x=1" },
		{ "/a??b", "/a", "?b" },
		{ "/a?x?y", "/a", "x?y" },
		{ "/%41/..", "/%41/..", NULL },
		{ "/a#f", NULL, NULL },
		{ "/a b", NULL, NULL },
		{ "/a\tb", NULL, NULL },
		{ "/\x80", NULL, NULL },
		{ "http://h/a", NULL, NULL },
		{ "*", NULL, NULL },
		{ "", NULL, NULL },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		struct span t = { cases[i].t, strlen(cases[i].t) }, p, q;
		char esc[64] = "", name[96];
		int took;
		unit_escape(esc, sizeof(esc), t.p, t.n, 0);
		snprintf(name, sizeof(name), "split_origin[%s]", esc);
		took = route_split_origin(t, &p, &q);
		if (cases[i].path == NULL) {
			CHECK_INT(tname("%s->not_taken", name), took, 0);
			continue;
		}
		CHECK_INT(tname("%s->taken", name), took, 1);
		if (!took)
			continue;
		CHECK_STR(tname("%s->path", name), tname("%.*s", (int)p.n, p.p),
		    cases[i].path);
		CHECK_STR(tname("%s->query", name),
		    q.p ? tname("%.*s", (int)q.n, q.p) : "(none)",
		    cases[i].query ? cases[i].query : "(none)");
		CHECK_STR(
		    tname("%s->as_http_parser", name), agrees(t, p, q), NULL);
	}
}

static void split_random(void)
{
	static const char alpha[] = "/a?#%.  \t\x7f\x80\xff:@!$&'()*+,;=~-_b1";
	char buf[16];
	long taken = 0;

	srand(1);
	for (long it = 0; it < 300000; it++) {
		size_t n = 1 + (size_t)rand() % 8;
		struct span t = { buf, n }, p, q;
		const char *why;
		buf[0] = '/';
		for (size_t i = 1; i < n; i++)
			buf[i] = alpha[(size_t)rand() % (sizeof(alpha) - 1)];
		if (!route_split_origin(t, &p, &q))
			continue;
		taken++;
		if ((why = agrees(t, p, q)) != NULL) {
			char esc[64] = "";
			unit_escape(esc, sizeof(esc), buf, n, 0);
			FAIL(tname("split_origin[random:%s]", esc), why);
			return;
		}
	}
	CHECK(tname("split_origin[random:300000]as_http_parser(%ld taken)",
	          taken),
	    taken > 0);
}

/* Every "/" + one or two bytes, and one byte put anywhere in a few
 * targets: whatever the split takes, http_parser splits the same. */
static void split_exhaustive(void)
{
	static const char *const templ[] = { "/ab", "/a?b", "/a?", "/a?b?c",
		"/a#b", "/%41" };
	char buf[16], esc[64];
	size_t len = 0;
	long n = 0, taken = 0;
	const char *why = NULL;

	for (int a = 0; a < 256 && why == NULL; a++)
		for (int b = -1; b < 256 && why == NULL; b++) {
			struct span t = { buf, b < 0 ? 2 : 3 }, p, q;
			buf[0] = '/';
			buf[1] = (char)a;
			buf[2] = (char)b;
			len = t.n;
			n++;
			if (route_split_origin(t, &p, &q) && ++taken)
				why = agrees(t, p, q);
		}
	for (size_t k = 0; k < NELEM(templ) && why == NULL; k++)
		for (size_t at = 0; at < strlen(templ[k]) && why == NULL; at++)
			for (int ch = 0; ch < 256 && why == NULL; ch++) {
				struct span t = { buf, strlen(templ[k]) }, p, q;
				memcpy(buf, templ[k], t.n);
				buf[at] = (char)ch;
				len = t.n;
				n++;
				if (route_split_origin(t, &p, &q) && ++taken)
					why = agrees(t, p, q);
			}
	if (why != NULL) {
		esc[0] = '\0';
		unit_escape(esc, sizeof(esc), buf, len, 0);
		FAIL(tname("split_origin[exhaustive:%s]", esc), why);
		return;
	}
	CHECK(tname("split_origin[exhaustive:%ld]as_http_parser(%ld_taken)", n,
	          taken),
	    taken > 0);
}

int main(void)
{
	split_table();
	split_random();
	split_exhaustive();
	return unit_done();
}
