/*
 * ulp_probe: checks sys_tls_placement() (sys/linux_ulp.c) on real sockets.
 *
 *   ulp_probe               plain TCP over loopback (IPv4, IPv6): the
 *                           kernel finds the socket, and it has no ULP
 *   ulp_probe --ktls [--compare-ss]
 *                           needs a kernel with the tls ULP (the kTLS VM):
 *                           installs TLS 1.2 AES-GCM-128 keys on a loopback
 *                           pair and expects tx=sw on one end, rx=sw on the
 *                           other; --compare-ss also checks `ss -tieHn`
 *                           prints the same rxconf/txconf words
 *   ulp_probe --bench N     cost per call, N calls, of the netlink query
 *                           and of sys_tls_placement()
 *
 * Prints "PASS name", "FAIL name: why" or "SKIP name: why", one line per
 * case; exits 1 if any case failed. It includes the .c file to reach the
 * netlink query itself, which sys_tls_placement() skips on a socket with
 * no ULP.
 */
#include "../../sys/linux_ulp.c"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static int failed;

static void result(const char *name, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void result(const char *name, int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s %s", ok ? "PASS" : "FAIL", name);
	if (!ok) {
		printf(": ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		failed = 1;
	}
	printf("\n");
}

/* A connected loopback pair: p[0] the client, p[1] the accepted end. */
static int tcp_pair(int family, int p[2])
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in)
	                                  : sizeof(struct sockaddr_in6);
	int l = socket(family, SOCK_STREAM, 0);

	p[0] = p[1] = -1;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(
		    INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) < 0 ||
	    listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &len) < 0)
		goto fail;
	p[0] = socket(family, SOCK_STREAM, 0);
	if (p[0] < 0 || connect(p[0], (struct sockaddr *)&ss, len) < 0)
		goto fail;
	p[1] = accept(l, NULL, NULL);
	if (p[1] < 0)
		goto fail;
	close(l);
	return 0;
fail:
	if (l >= 0)
		close(l);
	if (p[0] >= 0)
		close(p[0]);
	return -1;
}

static void plain_cases(int family, const char *fam)
{
	struct sys_tls_placement pl;
	char name[64];
	int p[2], have;

	snprintf(name, sizeof(name), "ulp-plain-%s", fam);
	if (tcp_pair(family, p) < 0) {
		printf("SKIP %s: no %s loopback: %s\n", name, fam,
		    strerror(errno));
		return;
	}
	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "ulp-none-%s-%s", fam,
		    i ? "server" : "client");
		errno = 0;
		int r = sys_tls_placement(p[i], &pl);
		result(name, r == -1 && errno == ENOPROTOOPT,
		    "got %d errno %s, want -1 ENOPROTOOPT (no ULP)", r,
		    strerror(errno));
		snprintf(name, sizeof(name), "diag-finds-%s-%s", fam,
		    i ? "server" : "client");
		r = diag_query(p[i], &pl, &have);
		result(name, r == 0 && !have && pl.tx == SYS_TLS_NONE,
		    "diag_query %d (%s) have=%d", r, r ? strerror(errno) : "",
		    have);
	}
	/* the lookup is exact: a wrong cookie or tuple finds nothing */
	struct diag_req req;
	memset(&req, 0, sizeof(req));
	fill_id(p[1], &req.r);
	req.r.id.idiag_cookie[0] ^= 1; /* kernel: cookie mismatch -> ENOENT */
	errno = 0;
	snprintf(name, sizeof(name), "diag-stale-cookie-%s", fam);
	int r = diag_send(&req, &pl, &have);
	result(name, r == -1 && errno == ENOENT, "got %d (%s), want ENOENT", r,
	    strerror(errno));
	memset(&req, 0, sizeof(req));
	fill_id(p[1], &req.r);
	req.r.id.idiag_dport = 0;
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	errno = 0;
	snprintf(name, sizeof(name), "diag-no-such-socket-%s", fam);
	r = diag_send(&req, &pl, &have);
	result(name, r == -1 && errno == ENOENT, "got %d (%s), want ENOENT", r,
	    strerror(errno));
	close(p[0]);
	close(p[1]);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int bench(long n)
{
	struct sys_tls_placement pl;
	int p[2], have;
	double t0, t1, t2;

	if (tcp_pair(AF_INET, p) < 0) {
		perror("tcp pair");
		return 1;
	}
	(void)diag_query(p[1], &pl, &have); /* loads tcp_diag if modular */
	t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (diag_query(p[1], &pl, &have) < 0) {
			perror("diag_query");
			return 1;
		}
	t1 = now_ns();
	for (long i = 0; i < n; i++)
		(void)sys_tls_placement(p[1], &pl);
	t2 = now_ns();
	printf("netlink query (getsockname, getpeername, SO_COOKIE, sendto, "
	       "recv): %.0f ns/call over %ld calls\n",
	    (t1 - t0) / (double)n, n);
	printf("sys_tls_placement on a socket without ULP (TCP_ULP getsockopt "
	       "only): %.0f ns/call\n",
	    (t2 - t1) / (double)n);
	t2 = now_ns();
	struct diag_req req;
	for (long i = 0; i < n; i++)
		(void)fill_id(p[1], &req.r);
	printf("  of the query, the socket's own id (getsockname, getpeername, "
	       "SO_COOKIE): %.0f ns/call\n",
	    (now_ns() - t2) / (double)n);
	return 0;
}

/* --ktls: TLS 1.2 AES-GCM-128 with a zero key: only placement matters. */
static int install(int fd, int dir)
{
	struct tls12_crypto_info_aes_gcm_128 ci;

	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_2_VERSION;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	return setsockopt(fd, SOL_TLS, dir, &ci, sizeof(ci));
}

/* Does `ss -tieHn` show "rxconf: RX txconf: TX" for the socket whose local
 * port is that of fd? */
static int ss_agrees(
    int fd, const struct sys_tls_placement *pl, char *why, size_t whylen)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	char cmd[128], line[4096], want[64];
	FILE *f;
	int found = 0;

	getsockname(fd, (struct sockaddr *)&a, &al);
	snprintf(cmd, sizeof(cmd), "ss -tieHn 'sport = :%u' 2>&1",
	    (unsigned)ntohs(a.sin_port));
	snprintf(want, sizeof(want), "rxconf: %s txconf: %s",
	    sys_tls_conf_name(pl->rx), sys_tls_conf_name(pl->tx));
	if ((f = popen(cmd, "r")) == NULL) {
		snprintf(why, whylen, "popen ss: %s", strerror(errno));
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, want) != NULL)
			found = 1;
	pclose(f);
	snprintf(why, whylen, "`%s` does not show \"%s\"", cmd, want);
	return found;
}

static int ktls_cases(int compare_ss)
{
	struct sys_tls_placement pl;
	int p[2];
	char why[256];

	if (tcp_pair(AF_INET, p) < 0) {
		printf("FAIL ktls-pair: %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < 2; i++)
		if (setsockopt(p[i], IPPROTO_TCP, TCP_ULP, "tls", 3) < 0) {
			printf(
			    "SKIP ktls: setsockopt(TCP_ULP, tls): %s (kernel "
			    "without CONFIG_TLS, or tls.ko not loaded)\n",
			    strerror(errno));
			return 0;
		}
	/* ULP on, no keys yet: both directions none */
	int r = sys_tls_placement(p[0], &pl);
	result("ktls-ulp-no-keys",
	    r == 0 && pl.tx == SYS_TLS_NONE && pl.rx == SYS_TLS_NONE,
	    "r=%d (%s) tx=%s rx=%s", r, r ? strerror(errno) : "",
	    sys_tls_conf_name(pl.tx), sys_tls_conf_name(pl.rx));
	if (install(p[0], TLS_TX) < 0 || install(p[1], TLS_RX) < 0) {
		printf("FAIL ktls-keys: setsockopt(SOL_TLS): %s\n",
		    strerror(errno));
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		const char *name = i ? "ktls-rx-placement"
		                     : "ktls-tx-placement";
		r = sys_tls_placement(p[i], &pl);
		/* loopback cannot offload: software is the only right answer */
		int ok = r == 0 && pl.version == TLS_1_2_VERSION &&
		    pl.cipher == TLS_CIPHER_AES_GCM_128 &&
		    pl.tx == (i ? SYS_TLS_NONE : SYS_TLS_SW) &&
		    pl.rx == (i ? SYS_TLS_SW : SYS_TLS_NONE);
		result(name, ok, "r=%d (%s) version=%#x cipher=%u tx=%s rx=%s",
		    r, r ? strerror(errno) : "", pl.version, pl.cipher,
		    sys_tls_conf_name(pl.tx), sys_tls_conf_name(pl.rx));
		if (r == 0)
			printf("# fd %d: tcp-ulp-tls version: %d.%d cipher: %u "
			       "rxconf: %s txconf: %s%s\n",
			    p[i], TLS_VERSION_MAJOR(pl.version) - 2,
			    TLS_VERSION_MINOR(pl.version) - 1, pl.cipher,
			    sys_tls_conf_name(pl.rx), sys_tls_conf_name(pl.tx),
			    pl.zc_tx ? " zc_ro_tx" : "");
		if (r == 0 && compare_ss)
			result(i ? "ktls-ss-rx" : "ktls-ss-tx",
			    ss_agrees(p[i], &pl, why, sizeof(why)), "%s", why);
	}
	close(p[0]);
	close(p[1]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--bench") == 0)
		return bench(atol(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "--ktls") == 0) {
		if (ktls_cases(
		        argc == 3 && strcmp(argv[2], "--compare-ss") == 0))
			return 1;
		return failed;
	}
	if (argc != 1) {
		fprintf(stderr,
		    "usage: %s [--ktls [--compare-ss] | --bench N]\n", argv[0]);
		return 2;
	}
	plain_cases(AF_INET, "ipv4");
	plain_cases(AF_INET6, "ipv6");
	return failed;
}
