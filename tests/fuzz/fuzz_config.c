/*
 * fuzz_config: config_load() on a file holding the input: the
 * comment blanker, libconfuse, every validator (listen specs, numbers,
 * protocols, roots) and the build of vhosts, locations and TLS contexts.
 * Paths under /tmp/kttpd-fuzz-site exist (roots, a certificate and key),
 * so seeds can reach the TLS setup.
 */
#include "fuzz_conn.h"

static char fz_conf_path[64];

static void cfg_init(void)
{
	char cmd[512];
	struct stat st;

	fz_init(); /* site, tls_init, logging to nowhere */
	if (stat(FZ_SITE "/cert.pem", &st) != 0) {
		snprintf(cmd, sizeof(cmd),
		    "openssl req -x509 -newkey ec -pkeyopt "
		    "ec_paramgen_curve:prime256v1 -nodes -days 3650 "
		    "-subj /CN=a.test -keyout %s/key.pem -out %s/cert.pem "
		    ">/dev/null 2>&1",
		    FZ_SITE, FZ_SITE);
		if (system(cmd) != 0)
			abort();
	}
	snprintf(fz_conf_path, sizeof(fz_conf_path),
	    FZ_SITE "/input-%d.conf", (int)getpid());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg;

	if (fz_conf_path[0] == '\0')
		cfg_init();
	if (size > 16384 || memmem(data, size, "/dev", 4) ||
	    memmem(data, size, "/proc", 5) || memmem(data, size, "/sys", 4))
		return 0; /* a config may name /dev/zero as a certificate; the
		           * admin is trusted with that, the fuzzer is not */
	fz_write_file(fz_conf_path, data, size);
	if ((cfg = config_load(fz_conf_path)) != NULL) {
		/* what the server does next with a config: walk it */
		for (int i = 0; i < cfg->nlistens; i++)
			for (int v = 0; v < cfg->listens[i].nvhosts; v++)
				(void)vhost_location(
				    cfg->listens[i].vhosts[v], "/x/y");
		config_unref(cfg);
	}
	return 0;
}
