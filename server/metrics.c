/*
 * metrics.c: the counters. Each worker counts into its own struct metrics
 * (no sharing on the request path); stats.c's page sums every worker's.
 * A leaf called with plain values (a worker's counters, the connection's
 * mode, the request): it calls nothing in server/ but date.c.
 * Also the `allow` test of client networks (the page's, and the client
 * limits' exemptions).
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <netinet/in.h>

/* Upper bounds of the response time buckets, in microseconds. */
const int64_t metrics_bucket_us[METRICS_BUCKETS] = { 1000, 5000, 10000, 25000,
	50000, 100000, 250000, 500000, 1000000, 5000000 };

void metrics_handshake(struct metrics *m, const struct conn_mode *mode, int ok,
    int tls13, int resumed)
{
	if (!ok) {
		METRIC_ADD(m, hs_failed, 1);
		return;
	}
	if (tls13)
		METRIC_ADD(m, hs_ok[1], 1);
	else
		METRIC_ADD(m, hs_ok[0], 1);
	if (resumed)
		METRIC_ADD(m, hs_resumed, 1);
	if (mode->ktls_tx)
		METRIC_ADD(m, ktls_tx, 1);
	if (mode->ktls_rx)
		METRIC_ADD(m, ktls_rx, 1);
	if (mode->why != WHY_NONE)
		METRIC_ADD(m, fallback[mode->why], 1);
}

void metrics_request(
    struct metrics *m, const struct conn_mode *mode, const struct request *r)
{
	int64_t us = date_mono_us() - r->start_us;
	int b = 0;

	METRIC_ADD(m, requests, 1);
	/* counted with requests, so that one less the other is exact */
	if (r->loc != NULL && r->loc->health &&
	    (r->status == 200 || r->status == 503))
		METRIC_ADD(m, health[r->status == 503], 1);
	METRIC_ADD(m,
	    status[r->status >= 100 && r->status < 600 ? r->status / 100 : 0],
	    1);
	if (!mode->tls)
		METRIC_ADD(m, bytes_plain, r->sent);
	else if (mode->ktls_tx)
		METRIC_ADD(m, bytes_ktls, r->sent);
	else
		METRIC_ADD(m, bytes_user, r->sent);
	while (b < METRICS_BUCKETS && us > metrics_bucket_us[b])
		b++;
	if (b < METRICS_BUCKETS) /* past the last: only in the count */
		METRIC_ADD(m, dur_bucket[b], 1);
	METRIC_ADD(m, dur_sum_us, (uint64_t)(us > 0 ? us : 0));
}

int metrics_allowed(const struct location *l, const struct sockaddr *sa)
{
	const unsigned char *a;
	int family = sa->sa_family;

	if (l->nallow == 0)
		return 1;
	if (family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) { /* ::ffff:a.b.c.d is IPv4 */
			family = AF_INET;
			a += 12;
		}
	} else
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)
		        ->sin_addr;
	for (int i = 0; i < l->nallow; i++) {
		const struct cidr *n = &l->allow[i];
		int bits = n->bits, k = 0;
		if (n->family != family)
			continue;
		for (; bits >= 8; bits -= 8, k++)
			if (a[k] != n->addr[k])
				break;
		if (bits >= 8)
			continue;
		if (bits == 0 ||
		    ((a[k] ^ n->addr[k]) & (0xff << (8 - bits)) & 0xff) == 0)
			return 1;
	}
	return 0;
}
