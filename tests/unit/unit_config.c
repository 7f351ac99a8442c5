/*
 * unit_config.c: config_load on files written to a temporary directory.
 *
 * A valid file must come back with every field filled; each invalid one
 * must come back NULL with "FILE:LINE:" on stderr, LINE being the line
 * that carries the " #<" marker in the case's text (or one from " #[" to
 * " #]" for a check on a whole section); the markers are taken out before
 * the file is written. "@D@" in a text is the
 * temporary directory, which holds root/, root2/, a plain file and two
 * self-signed ECDSA certificates with their keys (c1/k1, c2/k2).
 */
#include "unit.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static int have_certs;

/* ---- files ---- */

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/*
 * text with every "@D@" replaced by the directory and the line markers
 * (" #<", " #[", " #]") taken out, so that the file holds no comment
 * unless a case writes one on purpose; malloc'd.
 */
static char *expand(const char *text)
{
	size_t n = strlen(text) * (strlen(dir) + 1) + 1, o = 0;
	char *out = malloc(n);

	if (out == NULL)
		return NULL;
	for (const char *p = text; *p;) {
		if (strncmp(p, "@D@", 3) == 0) {
			o += (size_t)sprintf(out + o, "%s", dir);
			p += 3;
		} else if (strncmp(p, " #<", 3) == 0 ||
		    strncmp(p, " #[", 3) == 0 || strncmp(p, " #]", 3) == 0)
			p += 3;
		else
			out[o++] = *p++;
	}
	out[o] = '\0';
	return out;
}

/* The 1-based line holding marker, or 0. */
static int line_of(const char *text, const char *marker)
{
	const char *m = strstr(text, marker);
	int line = 1;

	if (m == NULL)
		return 0;
	for (const char *p = text; p < m; p++)
		line += *p == '\n';
	return line;
}

/*
 * The lines an error may name: the one marked "#<", or those from "#["
 * to "#]" where the check belongs to a whole section and a fix may point
 * at its first line or its closing brace.
 */
static void marked_lines(const char *text, int *lo, int *hi)
{
	if ((*lo = *hi = line_of(text, "#<")) == 0) {
		*lo = line_of(text, "#[");
		*hi = line_of(text, "#]");
	}
}

/* Does err hold "path:N:" for some N in lo..hi? The first is in where. */
static int names_line(const char *err, const char *path, int lo, int hi,
    char *where, size_t wheresz)
{
	snprintf(where, wheresz, "%s:%d:", path, lo);
	for (int n = lo; n <= hi; n++) {
		char w[200];
		snprintf(w, sizeof(w), "%s:%d:", path, n);
		if (strstr(err, w) != NULL)
			return 1;
	}
	if (hi > lo)
		snprintf(where, wheresz, "%s:%d..%d:", path, lo, hi);
	return 0;
}

static int make_cert(const char *name)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:prime256v1 -nodes -subj /CN=%s -days 2 "
	    "-keyout %s/k%s.pem -out %s/c%s.pem >/dev/null 2>&1",
	    name, dir, name, dir, name);
	return system(cmd) == 0 ? 0 : -1;
}

static int setup(void)
{
	char p[128];

	snprintf(dir, sizeof(dir), "/tmp/kttpd-unit-config-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(p, sizeof(p), "%s/root", dir);
	if (mkdir(p, 0755) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/root2", dir);
	if (mkdir(p, 0755) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/afile", dir);
	if (write_file(p, "x\n") < 0)
		return -1;
	have_certs = make_cert("1") == 0 && make_cert("2") == 0;
	return 0;
}

static int remove_one(
    const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == 0 ? 0 : -1;
}

static void teardown(void)
{
	if (strncmp(dir, "/tmp/kttpd-unit-config-", 23) == 0)
		nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * config_load(path) with fd 2 sent to a file; what was written there
 * comes back in err (NUL-terminated, cut to errsz).
 */
static struct config *load(const char *path, char *err, size_t errsz)
{
	char errpath[128];
	struct config *cfg;
	int saved, fd;
	ssize_t n;

	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	err[0] = '\0';
	fflush(stderr);
	if ((fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    (saved = dup(2)) < 0) {
		if (fd >= 0)
			close(fd);
		return config_load(path);
	}
	dup2(fd, 2);
	cfg = config_load(path);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, err, errsz - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	return cfg;
}

/* Write the case's text to DIR/NAME.conf; the path goes to path. */
static int write_case(
    const char *name, const char *text, char *path, size_t pathsz)
{
	char *body = expand(text);
	int r;

	snprintf(path, pathsz, "%s/%s.conf", dir, name);
	if (body == NULL)
		return -1;
	r = write_file(path, body);
	free(body);
	return r;
}

/* ---- the valid configuration ---- */

static const char valid_text[] =
    "# kttpd unit test: everything set\n"
    "workers = 3\n"
    "log_level = \"debug\"\n"
    "access_log_format = \"json\"\n"
    "server_tokens = false\n"
    "handshake_timeout = 7\n"
    "header_timeout = 8\n"
    "keepalive_timeout = 9\n"
    "send_timeout = 11\n"
    "shutdown_timeout = 12\n"
    "max_uri = 1024\n"
    "session_cache = 0\n"
    "server \"a.test\" {\n"
    "\taliases = { \"www.a.test\", \"alt.test\" }\n"
    "\tlisten = { \"127.0.0.1:8443 tls\", \"[::1]:8443 tls\", \"8080\" }\n"
    "\ttls {\n"
    "\t\tcertificate = \"@D@/c1.pem\"\n"
    "\t\tkey = \"@D@/k1.pem\"\n"
    "\t\tprotocols = { \"TLSv1.3\" }\n"
    "\t}\n"
    "\troot = \"@D@/root\"\n"
    "\tindex = { \"index.html\", \"index.htm\" }\n"
    "\tlocation \"/s\" {\n"
    "\t}\n"
    "\tlocation \"/static/\" {\n"
    "\t\troot = \"@D@/root2\"\n"
    "\t\tcache_control = \"max-age=60\"\n"
    "\t}\n"
    "\tlocation \"/static/img/\" {\n"
    "\t\texpires = 3600\n"
    "\t\tindex = { \"default.htm\" }\n"
    "\t}\n"
    "}\n"
    "server \"b.test\" {\n"
    "\tlisten = { \"*:8080 default\", \"127.0.0.1:8443 tls\" }\n"
    "\ttls {\n"
    "\t\tcertificate = \"@D@/c2.pem\"\n"
    "\t\tkey = \"@D@/k2.pem\"\n"
    "\t}\n"
    "\troot = \"@D@/root2\"\n"
    "\tlocation \"/\" {\n"
    "\t\troot = \"@D@/root\"\n"
    "\t}\n"
    "}\n";

static struct listen_addr *listen_by_key(struct config *cfg, const char *key)
{
	for (int i = 0; i < cfg->nlistens; i++)
		if (strcmp(cfg->listens[i].key, key) == 0)
			return &cfg->listens[i];
	return NULL;
}

static const char *root_of(const char *sub)
{
	return tname("%s/%s", dir, sub);
}

static void valid_globals(struct config *cfg)
{
	CHECK_INT("config_valid:workers=3", cfg->workers, 3);
	CHECK_INT("config_valid:log_level=debug", cfg->log_level, KT_LOG_DEBUG);
	CHECK_INT("config_valid:access_json", cfg->access_json, 1);
	CHECK_INT("config_valid:server_tokens=false", cfg->server_tokens, 0);
	CHECK_INT("config_valid:handshake_timeout", cfg->handshake_timeout, 7);
	CHECK_INT("config_valid:header_timeout", cfg->header_timeout, 8);
	CHECK_INT("config_valid:keepalive_timeout", cfg->keepalive_timeout, 9);
	CHECK_INT("config_valid:send_timeout", cfg->send_timeout, 11);
	CHECK_INT("config_valid:shutdown_timeout", cfg->shutdown_timeout, 12);
	CHECK_INT("config_valid:max_uri", cfg->max_uri, 1024);
	CHECK_INT("config_valid:session_cache=0", cfg->session_cache, 0);
	CHECK_INT("config_valid:max_headers_default", cfg->max_headers,
	    KT_DEF_MAX_HEADERS);
	CHECK_INT("config_valid:session_timeout_default", cfg->session_timeout,
	    KT_DEF_SESSION_TIMEOUT);
	CHECK("config_valid:mime_table", cfg->mime != NULL);
	CHECK_STR("config_valid:mime_type(/a.css)",
	    cfg->mime ? mime_type(cfg->mime, "/a.css") : NULL, "text/css");
	CHECK_INT("config_valid:refs=1", atomic_load(&cfg->refs), 1);
}

static void valid_vhosts(struct config *cfg)
{
	struct vhost *a, *b;
	char order[128] = "";

	if (!CHECK_INT("config_valid:nvhosts", cfg->nvhosts, 2))
		return;
	a = &cfg->vhosts[0];
	b = &cfg->vhosts[1];
	CHECK_STR("config_valid:vhost0_name", a->name, "a.test");
	CHECK_STR("config_valid:vhost1_name", b->name, "b.test");
	if (CHECK_INT("config_valid:vhost0_naliases", a->naliases, 2)) {
		CHECK_STR(
		    "config_valid:vhost0_alias0", a->aliases[0], "www.a.test");
		CHECK_STR(
		    "config_valid:vhost0_alias1", a->aliases[1], "alt.test");
	}
	CHECK_INT("config_valid:vhost1_naliases", b->naliases, 0);
	CHECK("config_valid:vhost0_tls_ctx", a->ssl_ctx != NULL);
	CHECK("config_valid:vhost1_tls_ctx", b->ssl_ctx != NULL);
	CHECK("config_valid:vhost0_cfg", a->cfg == cfg);

	/* longest prefix first, "/" added last */
	for (int i = 0; i < a->nlocs; i++)
		snprintf(order + strlen(order), sizeof(order) - strlen(order),
		    "%s%s", i ? " " : "", a->locs[i].prefix);
	CHECK_STR("config_valid:vhost0_locations_longest_first", order,
	    "/static/img/ /static/ /s /");
	if (a->nlocs != 4)
		return;
	CHECK_STR("config_valid:loc/static/img/_root_from_server",
	    a->locs[0].root, root_of("root"));
	CHECK_INT(
	    "config_valid:loc/static/img/_expires", a->locs[0].expires, 3600);
	CHECK_INT("config_valid:loc/static/img/_nindex", a->locs[0].nindex, 1);
	CHECK_STR("config_valid:loc/static/img/_index0", a->locs[0].index[0],
	    "default.htm");
	CHECK_STR(
	    "config_valid:loc/static/_root", a->locs[1].root, root_of("root2"));
	CHECK_STR("config_valid:loc/static/_cache_control",
	    a->locs[1].cache_control, "max-age=60");
	CHECK_INT("config_valid:loc/static/_nindex_from_server",
	    a->locs[1].nindex, 2);
	CHECK_STR("config_valid:loc/_cache_control_unset",
	    a->locs[3].cache_control, NULL);
	CHECK_INT("config_valid:loc/_prefix_len", a->locs[3].prefix_len, 1);
	CHECK("config_valid:all_root_fds_open",
	    a->locs[0].root_fd >= 0 && a->locs[1].root_fd >= 0 &&
	        a->locs[2].root_fd >= 0 && a->locs[3].root_fd >= 0);

	/* b.test: its own "/" location, not a second one */
	if (CHECK_INT("config_valid:vhost1_nlocs", b->nlocs, 1))
		CHECK_STR("config_valid:vhost1_loc/_root", b->locs[0].root,
		    root_of("root"));

	CHECK_STR("config_valid:vhost_location(/static/img/x.png)",
	    vhost_location(a, "/static/img/x.png")->prefix, "/static/img/");
	CHECK_STR("config_valid:vhost_location(/static/x)",
	    vhost_location(a, "/static/x")->prefix, "/static/");
	CHECK_STR("config_valid:vhost_location(/static)",
	    vhost_location(a, "/static")->prefix, "/s");
	CHECK_STR("config_valid:vhost_location(/other)",
	    vhost_location(a, "/other")->prefix, "/");
}

static void valid_listens(struct config *cfg)
{
	struct listen_addr *tls4, *tls6, *plain;
	const char *keys;

	CHECK_INT("config_valid:nlistens", cfg->nlistens, 3);
	keys = cfg->nlistens == 3
	    ? tname("%s %s %s", cfg->listens[0].key, cfg->listens[1].key,
	          cfg->listens[2].key)
	    : "";
	CHECK_STR("config_valid:listen_keys", keys,
	    "127.0.0.1:8443/tls [::1]:8443/tls 0.0.0.0:8080/tcp");
	tls4 = listen_by_key(cfg, "127.0.0.1:8443/tls");
	tls6 = listen_by_key(cfg, "[::1]:8443/tls");
	plain = listen_by_key(cfg, "0.0.0.0:8080/tcp");
	if (tls4 != NULL) {
		CHECK_INT(
		    "config_valid:listen_127.0.0.1:8443_tls", tls4->tls, 1);
		CHECK_INT("config_valid:listen_127.0.0.1:8443_nvhosts",
		    tls4->nvhosts, 2);
		CHECK("config_valid:listen_127.0.0.1:8443_default_is_first",
		    tls4->def == &cfg->vhosts[0]);
		CHECK_INT("config_valid:listen_127.0.0.1:8443_family",
		    tls4->ss.ss_family, AF_INET);
		CHECK_STR("config_valid:vhost_by_name(WWW.A.TEST:8443)",
		    vhost_by_name(tls4, "WWW.A.TEST:8443", 15)
		        ? vhost_by_name(tls4, "WWW.A.TEST:8443", 15)->name
		        : NULL,
		    "a.test");
		CHECK("config_valid:vhost_by_name(b.test.)",
		    vhost_by_name(tls4, "b.test.", 7) == &cfg->vhosts[1]);
		CHECK("config_valid:vhost_by_name(c.test)->NULL",
		    vhost_by_name(tls4, "c.test", 6) == NULL);
		CHECK("config_valid:vhost_by_name(a.tes)->NULL",
		    vhost_by_name(tls4, "a.tes", 5) == NULL);
		CHECK("config_valid:vhost_by_name([::1]:8443)->NULL",
		    vhost_by_name(tls4, "[::1]:8443", 10) == NULL);
	}
	if (tls6 != NULL) {
		CHECK_INT("config_valid:listen_[::1]:8443_family",
		    tls6->ss.ss_family, AF_INET6);
		CHECK_INT(
		    "config_valid:listen_[::1]:8443_nvhosts", tls6->nvhosts, 1);
	}
	if (plain != NULL) {
		CHECK_INT("config_valid:listen_8080_tls", plain->tls, 0);
		CHECK_INT(
		    "config_valid:listen_8080_nvhosts", plain->nvhosts, 2);
		CHECK("config_valid:listen_8080_default_flag_wins",
		    plain->def == &cfg->vhosts[1]);
		CHECK_STR("config_valid:listen_8080_spec", plain->spec, "8080");
	}
}

static void valid(void)
{
	char path[128], err[4096];
	struct config *cfg;

	if (!have_certs) {
		SKIP("config_valid", "openssl could not make certificates");
		return;
	}
	if (write_case("valid", valid_text, path, sizeof(path)) < 0) {
		SKIP("config_valid", "cannot write the config file");
		return;
	}
	cfg = load(path, err, sizeof(err));
	if (cfg == NULL) {
		FAIL("config_valid:loads", tname("NULL; stderr: %.300s", err));
		return;
	}
	CHECK("config_valid:loads", 1);
	CHECK_STR("config_valid:path", cfg->path, path);
	valid_globals(cfg);
	valid_vhosts(cfg);
	valid_listens(cfg);
	config_ref(cfg);
	CHECK_INT("config_valid:config_ref->2", atomic_load(&cfg->refs), 2);
	config_unref(cfg);
	config_unref(cfg);
}

/* A minimal config: workers = 0 means one worker per CPU. */
static void minimal(void)
{
	static const char text[] = "server \"m\" {\n"
	                           "\tlisten = { \"127.0.0.1:8080\" }\n"
	                           "\troot = \"@D@/root\"\n"
	                           "}\n";
	char path[128], err[4096];
	struct config *cfg;

	if (write_case("minimal", text, path, sizeof(path)) < 0) {
		SKIP("config_minimal", "cannot write the config file");
		return;
	}
	cfg = load(path, err, sizeof(err));
	if (cfg == NULL) {
		FAIL(
		    "config_minimal:loads", tname("NULL; stderr: %.300s", err));
		return;
	}
	CHECK("config_minimal:loads", 1);
	CHECK("config_minimal:workers=ncpu", cfg->workers >= 1);
	CHECK_INT("config_minimal:log_level=info", cfg->log_level, KT_LOG_INFO);
	CHECK_INT("config_minimal:keepalive_timeout_default",
	    cfg->keepalive_timeout, KT_DEF_KEEPALIVE_TIMEOUT);
	CHECK("config_minimal:no_tls_ctx", cfg->vhosts[0].ssl_ctx == NULL);
	CHECK_INT("config_minimal:one_location", cfg->vhosts[0].nlocs, 1);
	CHECK_INT(
	    "config_minimal:default_index", cfg->vhosts[0].locs[0].nindex, 1);
	CHECK_STR("config_minimal:default_index0",
	    cfg->vhosts[0].locs[0].index[0], "index.html");
	config_unref(cfg);
	config_unref(NULL); /* a no-op */
}

/* ---- invalid configurations ---- */

#define SRV_OPEN   "server \"x\" {\n"
#define SRV_OPEN_R "server \"x\" { #[\n" /* a check on the whole server */
#define LISTEN     "\tlisten = { \"127.0.0.1:8080\" }\n"
#define LISTEN_TLS "\tlisten = { \"127.0.0.1:8443 tls\" }\n"
#define ROOT       "\troot = \"@D@/root\"\n"
#define TLS_OK                                                                 \
	"\ttls {\n"                                                            \
	"\t\tcertificate = \"@D@/c1.pem\"\n"                                   \
	"\t\tkey = \"@D@/k1.pem\"\n"                                           \
	"\t}\n"
#define PLAIN_SERVER SRV_OPEN LISTEN ROOT "}\n"

static const struct {
	const char *name;
	int tls; /* needs the certificates */
	const char *text;
	const char *msg; /* also expected on stderr, when set */
} invalid[] = {
	{ "unknown_option", 0, "workers = 2\nbogus = 1 #<\n" PLAIN_SERVER,
	    "bogus" },
	{ "workers=-1", 0, "\nworkers = -1 #<\n" PLAIN_SERVER, "workers" },
	/* comments take no lines of their own */
	{ "workers=-1_after_comments", 0,
	    "# one\n"
	    "// two\n"
	    "workers = 2 # three\n"
	    "/* four\n"
	    "   five */\n"
	    "workers = -1 #<\n" PLAIN_SERVER,
	    "workers" },
	{ "workers=257", 0, "workers = 257 #<\n" PLAIN_SERVER, "workers" },
	{ "workers=two", 0, "workers = \"two\" #<\n" PLAIN_SERVER, "workers" },
	{ "log_level=loud", 0, "log_level = \"loud\" #<\n" PLAIN_SERVER,
	    "loud" },
	{ "access_log_format=xml", 0,
	    "access_log_format = \"xml\" #<\n" PLAIN_SERVER, "xml" },
	{ "max_uri=5", 0, "max_uri = 5 #<\n" PLAIN_SERVER, "max_uri" },
	{ "keepalive_timeout=-1", 0, "keepalive_timeout = -1 #<\n" PLAIN_SERVER,
	    "keepalive_timeout" },
	{ "listen=nope", 0, SRV_OPEN "\tlisten = { \"nope\" } #<\n" ROOT "}\n",
	    "nope" },
	{ "listen_unknown_flag", 0,
	    SRV_OPEN "\tlisten = { \"127.0.0.1:8080 fast\" } #<\n" ROOT "}\n",
	    "fast" },
	{ "listen_port_0", 0,
	    SRV_OPEN "\tlisten = { \"127.0.0.1:0\" } #<\n" ROOT "}\n", NULL },
	{ "listen_port_65536", 0,
	    SRV_OPEN "\tlisten = { \"65536\" } #<\n" ROOT "}\n", NULL },
	{ "listen_hostname", 0,
	    SRV_OPEN "\tlisten = { \"localhost:8080\" } #<\n" ROOT "}\n",
	    NULL },
	{ "listen_ipv6_no_port", 0,
	    SRV_OPEN "\tlisten = { \"[::1]\" } #<\n" ROOT "}\n", NULL },
	{ "listen_bad_in_multiline_list", 0,
	    SRV_OPEN "\tlisten = {\n"
	             "\t\t\"127.0.0.1:8080\",\n"
	             "\t\t\"nope\", #<\n"
	             "\t\t\"127.0.0.1:8081\"\n"
	             "\t}\n" ROOT "}\n",
	    "nope" },
	{ "server_without_title", 0, "server { #<\n" LISTEN ROOT "}\n", NULL },
	{ "server_without_listen", 0, SRV_OPEN_R ROOT "} #]\n", "listen" },
	{ "server_without_root", 0, SRV_OPEN_R LISTEN "} #]\n", "root" },
	{ "root_missing", 0,
	    SRV_OPEN LISTEN "\troot = \"@D@/nonexistent\" #<\n}\n",
	    "No such file" },
	{ "root_is_a_file", 0, SRV_OPEN LISTEN "\troot = \"@D@/afile\" #<\n}\n",
	    NULL },
	{ "location_without_slash", 0,
	    SRV_OPEN LISTEN ROOT "\tlocation \"img\" { #[\n\t} #]\n}\n",
	    "img" },
	{ "location_root_missing", 0,
	    SRV_OPEN LISTEN ROOT
	    "\tlocation \"/img/\" {\n\t\troot = \"@D@/none\" #<\n\t}\n}\n",
	    "No such file" },
	{ "location_duplicate", 0,
	    SRV_OPEN LISTEN ROOT "\tlocation \"/a\" {\n\t}\n"
	                         "\tlocation \"/a\" { #<\n\t}\n}\n",
	    "/a" },
	{ "tls_listen_without_tls_section", 0,
	    SRV_OPEN_R LISTEN_TLS ROOT "} #]\n", "tls" },
	{ "tls_listen(tab)_without_tls_section", 0,
	    SRV_OPEN_R "\tlisten = { \"127.0.0.1:8443\ttls\" }\n" ROOT "} #]\n",
	    "tls" },
	{ "certificate_missing", 1,
	    SRV_OPEN LISTEN_TLS ROOT "\ttls {\n"
	                             "\t\tcertificate = \"@D@/none.pem\" #<\n"
	                             "\t\tkey = \"@D@/k1.pem\"\n"
	                             "\t}\n}\n",
	    "none.pem" },
	{ "key_missing", 1,
	    SRV_OPEN LISTEN_TLS ROOT "\ttls {\n"
	                             "\t\tcertificate = \"@D@/c1.pem\"\n"
	                             "\t\tkey = \"@D@/none.pem\" #<\n"
	                             "\t}\n}\n",
	    "none.pem" },
	{ "key_not_matching_certificate", 1,
	    SRV_OPEN LISTEN_TLS ROOT "\ttls { #[\n"
	                             "\t\tcertificate = \"@D@/c1.pem\"\n"
	                             "\t\tkey = \"@D@/k2.pem\"\n"
	                             "\t} #]\n}\n",
	    "k2.pem" },
	{ "tls_without_key", 1,
	    SRV_OPEN LISTEN_TLS ROOT "\ttls { #[\n"
	                             "\t\tcertificate = \"@D@/c1.pem\"\n"
	                             "\t} #]\n}\n",
	    "key" },
	{ "protocols=TLSv1.0", 1,
	    SRV_OPEN LISTEN_TLS ROOT "\ttls {\n"
	                             "\t\tcertificate = \"@D@/c1.pem\"\n"
	                             "\t\tkey = \"@D@/k1.pem\"\n"
	                             "\t\tprotocols = { \"TLSv1.0\" } #<\n"
	                             "\t}\n}\n",
	    "TLSv1.0" },
	{ "protocols=empty", 1,
	    SRV_OPEN LISTEN_TLS ROOT "\ttls { #[\n"
	                             "\t\tcertificate = \"@D@/c1.pem\"\n"
	                             "\t\tkey = \"@D@/k1.pem\"\n"
	                             "\t\tprotocols = { }\n"
	                             "\t} #]\n}\n",
	    NULL },
	{ "ciphers=NOPE", 1,
	    SRV_OPEN LISTEN_TLS ROOT "\ttls { #[\n"
	                             "\t\tcertificate = \"@D@/c1.pem\"\n"
	                             "\t\tkey = \"@D@/k1.pem\"\n"
	                             "\t\tciphers = \"NOPE\"\n"
	                             "\t} #]\n}\n",
	    "ciphers" },
	/* issue 15: add_header and return */
	{ "add_header_no_colon", 0,
	    SRV_OPEN LISTEN ROOT "\tadd_header = { \"X-A value\" } #<\n}\n",
	    "Name: value" },
	{ "add_header_bad_name", 0,
	    SRV_OPEN LISTEN ROOT "\tadd_header = { \"X A: v\" } #<\n}\n",
	    "token" },
	{ "add_header_crlf_value", 0,
	    SRV_OPEN LISTEN ROOT
	    "\tadd_header = { \"X-A: v\\r\\nSet-Cookie: x=1\" } #<\n}\n",
	    "control" },
	{ "add_header_content_length", 0,
	    SRV_OPEN LISTEN ROOT
	    "\tadd_header = { \"Content-Length: 5\" } #<\n}\n",
	    "sets this header itself" },
	{ "add_header_connection_in_location", 0,
	    SRV_OPEN LISTEN ROOT
	    "\tlocation \"/a/\" {\n"
	    "\t\tadd_header = { \"X-Ok: 1\", \"connection: close\" } #<\n"
	    "\t}\n}\n",
	    "sets this header itself" },
	{ "add_header_empty_value", 0,
	    SRV_OPEN LISTEN ROOT "\tadd_header = { \"X-A:  always\" } #<\n}\n",
	    "empty" },
	{ "add_header_too_many", 0,
	    SRV_OPEN LISTEN ROOT
	    "\tadd_header = {\n"
	    "\"H0: v\",\"H1: v\",\"H2: v\",\"H3: v\",\"H4: v\",\"H5: v\","
	    "\"H6: v\",\"H7: v\",\"H8: v\",\"H9: v\",\"H10: v\",\"H11: v\","
	    "\"H12: v\",\"H13: v\",\"H14: v\",\"H15: v\",\"H16: v\",\"H17: v\","
	    "\"H18: v\",\"H19: v\",\"H20: v\",\"H21: v\",\"H22: v\",\"H23: v\","
	    "\"H24: v\",\"H25: v\",\"H26: v\",\"H27: v\",\"H28: v\",\"H29: v\","
	    "\"H30: v\",\"H31: v\",\"H32: v\" } #<\n}\n",
	    "at most 32" },
	{ "return_bad_status", 0,
	    SRV_OPEN LISTEN ROOT "\tlocation \"/old/\" {\n"
	                         "\t\treturn = \"200 /new/\" #<\n\t}\n}\n",
	    "301, 302" },
	{ "return_unknown_variable", 0,
	    SRV_OPEN LISTEN ROOT
	    "\tlocation \"/old/\" {\n"
	    "\t\treturn = \"301 https://$hots$uri\" #<\n\t}\n}\n",
	    "$hots" },
	{ "return_space_in_target", 0,
	    SRV_OPEN LISTEN ROOT "\tlocation \"/old/\" {\n"
	                         "\t\treturn = \"302 /a b\" #<\n\t}\n}\n",
	    "space" },
	{ "return_no_target", 0,
	    SRV_OPEN LISTEN ROOT "\tlocation \"/old/\" {\n"
	                         "\t\treturn = \"301\" #<\n\t}\n}\n",
	    NULL },
	{ "same_address_plain_and_tls", 1,
	    "server \"a\" {\n" LISTEN ROOT "}\n"
	    "server \"b\" { #[\n"
	    "\tlisten = { \"127.0.0.1:8080 tls\" }\n" ROOT TLS_OK "} #]\n",
	    NULL },
};

static void check_invalid(size_t i)
{
	const char *name = tname("config_load[%s]->NULL@line", invalid[i].name);
	char path[128], err[4096], where[200];
	struct config *cfg;
	int lo, hi;

	marked_lines(invalid[i].text, &lo, &hi);

	if (invalid[i].tls && !have_certs) {
		SKIP(name, "openssl could not make certificates");
		return;
	}
	if (write_case(
	        tname("bad%zu", i), invalid[i].text, path, sizeof(path)) < 0) {
		SKIP(name, "cannot write the config file");
		return;
	}
	cfg = load(path, err, sizeof(err));
	if (cfg != NULL) {
		FAIL(name, "loaded; want NULL and an error");
		config_unref(cfg);
	} else if (!names_line(err, path, lo, hi, where, sizeof(where)))
		FAIL(name, tname("stderr \"%.300s\" lacks \"%s\"", err, where));
	else if (invalid[i].msg != NULL && strstr(err, invalid[i].msg) == NULL)
		FAIL(name,
		    tname(
		        "stderr \"%.300s\" lacks \"%s\"", err, invalid[i].msg));
	else
		CHECK(name, 1);
}

/* Errors that name no line: no server at all, no file at all. */
static void no_line(void)
{
	char path[128], err[4096];
	struct config *cfg;

	if (write_case("empty", "# nothing\n", path, sizeof(path)) == 0) {
		cfg = load(path, err, sizeof(err));
		CHECK("config_load[empty_file]->NULL", cfg == NULL);
		CHECK("config_load[empty_file]stderr_no_server_section",
		    strstr(err, path) && strstr(err, "no server section"));
		config_unref(cfg);
	}
	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	cfg = load(path, err, sizeof(err));
	CHECK("config_load[missing_file]->NULL", cfg == NULL);
	CHECK("config_load[missing_file]stderr_names_it",
	    strstr(err, path) && strstr(err, "No such file"));
	config_unref(cfg);
}

/* A directory that is not one: the message says so. */
static void root_file_message(void)
{
	char path[128], err[4096];
	struct config *cfg;

	if (write_case("rootfile",
	        SRV_OPEN LISTEN "\troot = \"@D@/afile\"\n}\n", path,
	        sizeof(path)) < 0)
		return;
	cfg = load(path, err, sizeof(err));
	if (cfg != NULL)
		FAIL("config_load[root_is_a_file]says_not_a_directory",
		    "loaded");
	else if (strstr(err, "not a directory") == NULL &&
	    strstr(err, "Not a directory") == NULL)
		FAIL("config_load[root_is_a_file]says_not_a_directory",
		    tname("stderr \"%.300s\"", err));
	else
		CHECK("config_load[root_is_a_file]says_not_a_directory", 1);
	config_unref(cfg);
}

/*
 * One address written twice in one server ("8080" and "*:8080" are both
 * 0.0.0.0:8080): refused, or kept once. Each listen_addr has room for
 * one entry per server, so counting the server twice writes past it.
 */
static void same_listen_twice(void)
{
	static const char text[] = SRV_OPEN
	    "\tlisten = { \"8080\", \"*:8080\" }\n" ROOT "}\n";
	static const char name[] =
	    "config_load[same_listen_twice]->NULL_or_once";
	char path[128], err[4096];
	struct config *cfg;
	struct listen_addr *la;

	if (write_case("twice", text, path, sizeof(path)) < 0)
		return;
	cfg = load(path, err, sizeof(err));
	if (cfg == NULL) {
		CHECK(name, 1);
		return;
	}
	la = listen_by_key(cfg, "0.0.0.0:8080/tcp");
	if (cfg->nlistens != 1 || la == NULL || la->nvhosts != 1)
		FAIL(name,
		    tname("nlistens %d, nvhosts %d; want 1 and 1",
		        cfg->nlistens, la ? la->nvhosts : -1));
	else
		CHECK(name, 1);
	config_unref(cfg);
}

/* A comment may follow any list element. */
static void comment_in_list(void)
{
	static const char text[] = SRV_OPEN "\tlisten = {\n"
	                                    "\t\t\"127.0.0.1:8080\", # public\n"
	                                    "\t\t\"127.0.0.1:8081\" # private\n"
	                                    "\t}\n" ROOT "}\n";
	static const char name[] = "config_load[comment_in_list]->loads";
	char path[128], err[4096];
	struct config *cfg;

	if (write_case("listcomment", text, path, sizeof(path)) < 0)
		return;
	cfg = load(path, err, sizeof(err));
	if (cfg == NULL)
		FAIL(name, tname("NULL; stderr: %.300s", err));
	else
		CHECK_INT(name, cfg->nlistens, 2);
	config_unref(cfg);
}

/* One IPv6 address spelled two ways is one listener, like IPv4's. */
static void ipv6_spellings(void)
{
	static const char text[] =
	    "server \"a\" {\n"
	    "\tlisten = { \"[::1]:8080\" }\n" ROOT "}\n"
	    "server \"b\" {\n"
	    "\tlisten = { \"[0:0:0:0:0:0:0:1]:8080\" }\n" ROOT "}\n";
	static const char name[] =
	    "config_load[ipv6_two_spellings]->one_listener";
	char path[128], err[4096];
	struct config *cfg;

	if (write_case("ipv6", text, path, sizeof(path)) < 0)
		return;
	cfg = load(path, err, sizeof(err));
	if (cfg == NULL) {
		FAIL(name, tname("NULL; stderr: %.300s", err));
		return;
	}
	if (cfg->nlistens != 1)
		FAIL(name,
		    tname("nlistens %d (keys %s, %s); want 1", cfg->nlistens,
		        cfg->listens[0].key,
		        cfg->nlistens > 1 ? cfg->listens[1].key : ""));
	else
		CHECK_INT(name, cfg->listens[0].nvhosts, 2);
	config_unref(cfg);
}

int main(void)
{
	if (tls_init() < 0 || setup() < 0) {
		SKIP("config", "tls_init or the temporary directory failed");
		teardown();
		return unit_done();
	}
	valid();
	minimal();
	for (size_t i = 0; i < NELEM(invalid); i++)
		check_invalid(i);
	no_line();
	root_file_message();
	same_listen_twice();
	ipv6_spellings();
	comment_in_list();
	teardown();
	return unit_done();
}
