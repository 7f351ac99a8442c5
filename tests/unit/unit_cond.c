/*
 * unit_cond.c: entity-tag lists, If-None-Match / If-Modified-Since and
 * If-Range, on a request filled the way file_serve fills it.
 */
#include "unit.h"

#define MTIME 784111777         /* Sun, 06 Nov 1994 08:49:37 GMT */
#define ETAG  "\"2ebc57a1-1f\"" /* as file.c makes them: strong */

static void etag_table(void)
{
	static const struct {
		const char *list, *etag;
		int weak, want;
	} cases[] = {
		/* strong comparison (If-Range) */
		{ "\"abc\"", "\"abc\"", 0, 1 },
		{ "W/\"abc\"", "\"abc\"", 0, 0 },
		{ "\"abd\"", "\"abc\"", 0, 0 },
		{ "\"abcd\"", "\"abc\"", 0, 0 },
		{ "\"ab\"", "\"abc\"", 0, 0 },
		{ "\"ABC\"", "\"abc\"", 0, 0 },
		{ "\"x\", \"abc\"", "\"abc\"", 0, 1 },
		{ "\"x\", W/\"abc\"", "\"abc\"", 0, 0 },
		{ "W/\"abc\", \"abc\"", "\"abc\"", 0, 1 },
		{ "*", "\"abc\"", 0, 1 },
		/* weak comparison (If-None-Match) */
		{ "\"abc\"", "\"abc\"", 1, 1 },
		{ "W/\"abc\"", "\"abc\"", 1, 1 },
		{ "W/\"abd\"", "\"abc\"", 1, 0 },
		{ "\"x\",W/\"abc\"", "\"abc\"", 1, 1 },
		{ "\"x\" , \"y\" ,\t\"abc\"", "\"abc\"", 1, 1 },
		{ "\"x\", \"y\"", "\"abc\"", 1, 0 },
		{ ",, \"abc\" ,,", "\"abc\"", 1, 1 },
		{ "*", "\"abc\"", 1, 1 },
		{ "\"\"", "\"\"", 1, 1 },
		{ "\"a,b\"", "\"a,b\"", 1, 1 }, /* a comma inside a tag */
		{ "\"a,b\"", "\"a\"", 1, 0 },
		{ "\"a\", \"b\"", "\"a,b\"", 1, 0 },
		/* the file's own tag shape */
		{ ETAG, ETAG, 0, 1 },
		{ "W/" ETAG, ETAG, 1, 1 },
		{ "\"2ebc57a1-1e\"", ETAG, 1, 0 },
		/* malformed lists match nothing */
		{ "", "\"abc\"", 1, 0 },
		{ " ", "\"abc\"", 1, 0 },
		{ ",,,", "\"abc\"", 1, 0 },
		{ "abc", "\"abc\"", 1, 0 },
		{ "\"abc", "\"abc\"", 1, 0 },
		{ "abc\"", "\"abc\"", 1, 0 },
		{ "W/", "\"abc\"", 1, 0 },
		{ "W/abc", "\"abc\"", 1, 0 },
		{ "w/\"abc\"", "\"abc\"", 1, 0 },
		{ "W/ \"abc\"", "\"abc\"", 1, 0 },
		{ "W\"abc\"", "\"abc\"", 1, 0 },
		{ "junk, \"abc\"", "\"abc\"", 1, 0 },
		{ "'abc'", "\"abc\"", 1, 0 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		char l[160] = "", e[80] = "";
		unit_escape(
		    l, sizeof(l), cases[i].list, strlen(cases[i].list), 0);
		unit_escape(
		    e, sizeof(e), cases[i].etag, strlen(cases[i].etag), 0);
		CHECK_INT(tname("cond_etag_match[%s~%s,%s]->%d", l, e,
		              cases[i].weak ? "weak" : "strong", cases[i].want),
		    cond_etag_match(cases[i].list, strlen(cases[i].list),
		        cases[i].etag, cases[i].weak) != 0,
		    cases[i].want);
	}
}

/* Only len bytes of the list are read. */
static void etag_spans(void)
{
	CHECK_INT("cond_etag_match[\"abc\"(len=4)]->0",
	    cond_etag_match("\"abc\"", 4, "\"abc\"", 1), 0);
	CHECK_INT("cond_etag_match[\"x\",\"abc\"(len=3)]->0",
	    cond_etag_match("\"x\",\"abc\"", 3, "\"abc\"", 1), 0);
	CHECK_INT("cond_etag_match[\"abc\"junk(len=5)]->1",
	    cond_etag_match("\"abc\"junk", 5, "\"abc\"", 0), 1);
	CHECK_INT("cond_etag_match[W/\"abc\"(len=2)]->0",
	    cond_etag_match("W/\"abc\"", 2, "\"abc\"", 1), 0);
}

static struct span sp(const char *s)
{
	return (struct span){ s, s ? strlen(s) : 0 };
}

/* A zeroed request with the file's validators, as file_serve sets them. */
static struct request req(const char *inm, const char *ims, const char *ifr)
{
	struct request r;

	memset(&r, 0, sizeof(r));
	r.fd = -1;
	r.mtime = MTIME;
	snprintf(r.etag, sizeof(r.etag), "%s", ETAG);
	r.if_none_match = sp(inm);
	r.if_modified_since = sp(ims);
	r.if_range = sp(ifr);
	return r;
}

static void not_modified_table(void)
{
	static const struct {
		const char *name, *inm, *ims;
		int want;
	} cases[] = {
		{ "no_validators", NULL, NULL, 0 },
		{ "INM_match", ETAG, NULL, 1 },
		{ "INM_weak_match", "W/" ETAG, NULL, 1 },
		{ "INM_in_list", "\"a\", " ETAG ", \"b\"", NULL, 1 },
		{ "INM_star", "*", NULL, 1 },
		{ "INM_mismatch", "\"other\"", NULL, 0 },
		{ "INM_mismatch+IMS_equal(INM_wins)", "\"other\"",
		    "Sun, 06 Nov 1994 08:49:37 GMT", 0 },
		{ "INM_mismatch+IMS_newer(INM_wins)", "\"other\"",
		    "Sun, 06 Nov 1994 08:49:38 GMT", 0 },
		{ "INM_match+IMS_older(INM_wins)", ETAG,
		    "Sun, 06 Nov 1994 08:49:36 GMT", 1 },
		{ "INM_malformed+IMS_equal(INM_wins)", "junk",
		    "Sun, 06 Nov 1994 08:49:37 GMT", 0 },
		{ "IMS_equal", NULL, "Sun, 06 Nov 1994 08:49:37 GMT", 1 },
		{ "IMS_equal_rfc850", NULL, "Sunday, 06-Nov-94 08:49:37 GMT",
		    1 },
		{ "IMS_equal_asctime", NULL, "Sun Nov  6 08:49:37 1994", 1 },
		{ "IMS_newer_by_1s", NULL, "Sun, 06 Nov 1994 08:49:38 GMT", 1 },
		{ "IMS_older_by_1s", NULL, "Sun, 06 Nov 1994 08:49:36 GMT", 0 },
		{ "IMS_epoch", NULL, "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
		{ "IMS_garbage", NULL, "yesterday", 0 },
		{ "IMS_empty", NULL, "", 0 },
		{ "IMS_trailing_garbage", NULL,
		    "Sun, 06 Nov 1994 08:49:37 GMT; length=31", 0 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		struct request r = req(cases[i].inm, cases[i].ims, NULL);
		CHECK_INT(tname("cond_not_modified[%s]->%d", cases[i].name,
		              cases[i].want),
		    cond_not_modified(&r) != 0, cases[i].want);
	}
}

static void if_range_table(void)
{
	static const struct {
		const char *name, *ifr;
		int want;
	} cases[] = {
		{ "absent", NULL, 1 },
		{ "etag_strong_match", ETAG, 1 },
		{ "etag_weak_never", "W/" ETAG, 0 },
		{ "etag_mismatch", "\"other\"", 0 },
		{ "etag_prefix", "\"2ebc57a1-1\"", 0 },
		{ "etag_unquoted", "2ebc57a1-1f", 0 },
		{ "star", "*", 0 },
		{ "empty", "", 0 },
		{ "date_exact", "Sun, 06 Nov 1994 08:49:37 GMT", 1 },
		{ "date_exact_rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", 1 },
		{ "date_exact_asctime", "Sun Nov  6 08:49:37 1994", 1 },
		{ "date_minus_1s", "Sun, 06 Nov 1994 08:49:36 GMT", 0 },
		{ "date_plus_1s", "Sun, 06 Nov 1994 08:49:38 GMT", 0 },
		{ "date_garbage", "Sun, 06 Nov 1994", 0 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		struct request r = req(NULL, NULL, cases[i].ifr);
		CHECK_INT(tname("cond_if_range[%s]->%d", cases[i].name,
		              cases[i].want),
		    cond_if_range(&r) != 0, cases[i].want);
	}
}

/* The validators are read from the request, not from a fixed file. */
static void changed_file(void)
{
	struct request r = req(ETAG, NULL, "Sun, 06 Nov 1994 08:49:37 GMT");

	snprintf(r.etag, sizeof(r.etag), "\"2ebc57a2-20\"");
	r.mtime = MTIME + 1;
	CHECK_INT("cond_not_modified[INM_old_etag_after_change]->0",
	    cond_not_modified(&r), 0);
	CHECK_INT("cond_if_range[date_before_change]->0", cond_if_range(&r), 0);
	r.if_range = sp(ETAG);
	CHECK_INT(
	    "cond_if_range[old_etag_after_change]->0", cond_if_range(&r), 0);
}

int main(void)
{
	etag_table();
	etag_spans();
	not_modified_table();
	if_range_table();
	changed_file();
	return unit_done();
}
