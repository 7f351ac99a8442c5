/*
 * metrics.c: counters and the Prometheus text endpoint. Each worker
 * counts into its own struct metrics (no sharing on the request path); a
 * scrape sums every worker's and adds the kernel's kTLS counters.
 * The endpoint is a location with `metrics = true`, usually with an
 * `allow` list of client networks.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the response time buckets, in microseconds. */
static const int64_t bucket_us[METRICS_BUCKETS] = { 1000, 5000, 10000, 25000,
	50000, 100000, 250000, 500000, 1000000, 5000000 };

void metrics_handshake(struct conn *c, int ok)
{
	struct metrics *m = &c->w->m;

	if (!ok) {
		METRIC_ADD(m, hs_failed, 1);
		return;
	}
	if (SSL_version(c->ssl) == TLS1_3_VERSION)
		METRIC_ADD(m, hs_ok[1], 1);
	else
		METRIC_ADD(m, hs_ok[0], 1);
	if (SSL_session_reused(c->ssl))
		METRIC_ADD(m, hs_resumed, 1);
	if (c->mode.ktls_tx)
		METRIC_ADD(m, ktls_tx, 1);
	if (c->mode.ktls_rx)
		METRIC_ADD(m, ktls_rx, 1);
	if (c->mode.why != WHY_NONE)
		METRIC_ADD(m, fallback[c->mode.why], 1);
}

void metrics_request(struct conn *c, struct request *r)
{
	struct metrics *m = &c->w->m;
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
	if (!c->mode.tls)
		METRIC_ADD(m, bytes_plain, r->sent);
	else if (c->mode.ktls_tx)
		METRIC_ADD(m, bytes_ktls, r->sent);
	else
		METRIC_ADD(m, bytes_user, r->sent);
	while (b < METRICS_BUCKETS && us > bucket_us[b])
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

struct text {
	char *p;
	size_t n, cap;
	int failed;
};

static void out(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int k;

	for (;;) {
		if (t->failed)
			return;
		va_start(ap, fmt);
		k = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < t->cap - t->n) {
			t->n += (size_t)k;
			return;
		}
		char *np = realloc(t->p, t->cap * 2);
		if (np == NULL || k < 0) {
			free(np ? np : NULL);
			t->failed = 1;
			return;
		}
		t->p = np;
		t->cap *= 2;
	}
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void counter(
    struct text *t, const char *name, const char *help, uint64_t v)
{
	out(t, "# HELP kttpd_%s %s\n# TYPE kttpd_%s counter\nkttpd_%s %llu\n",
	    name, help, name, name, (unsigned long long)v);
}

/* Refusals by reason, the per-client table, the session ticket keys. */
static void limits_out(struct text *t, const struct metrics *m)
{
	struct ticket_stats ts;
	long used, size;

	cl_table_stats(&used, &size);
	ticket_stats(&ts);
	out(t,
	    "# HELP kttpd_rejected_total Connections or requests refused by "
	    "a limit, by reason.\n"
	    "# TYPE kttpd_rejected_total counter\n"
	    "kttpd_rejected_total{reason=\"max_connections\"} %llu\n"
	    "kttpd_rejected_total{reason=\"client_max_connections\"} "
	    "%llu\n"
	    "kttpd_rejected_total{reason=\"client_rate\"} %llu\n",
	    (unsigned long long)LOAD(m->rejected),
	    (unsigned long long)LOAD(m->cl_conn_rejected),
	    (unsigned long long)LOAD(m->cl_rate_rejected));
	out(t,
	    "# HELP kttpd_client_table_entries Per-client table slots in "
	    "use (at most its size).\n"
	    "# TYPE kttpd_client_table_entries gauge\n"
	    "kttpd_client_table_entries %ld\n"
	    "# HELP kttpd_client_table_size Per-client table slots "
	    "(client_table_size, rounded up to a power of two).\n"
	    "# TYPE kttpd_client_table_size gauge\n"
	    "kttpd_client_table_size %ld\n",
	    used, size);
	counter(t, "client_table_evictions_total",
	    "Slots taken over from the least recently seen idle client.",
	    LOAD(m->cl_evicted));
	counter(t, "client_table_full_total",
	    "Connections not limited: every slot they could use was pinned.",
	    LOAD(m->cl_table_full));
	out(t,
	    "# HELP kttpd_tls_ticket_keys Session ticket keys in use (the "
	    "first encrypts).\n"
	    "# TYPE kttpd_tls_ticket_keys gauge\n"
	    "kttpd_tls_ticket_keys %ld\n",
	    ts.keys);
	counter(t, "tls_ticket_key_rotations_total",
	    "Session ticket key rotations (session_ticket_rotate).",
	    ts.rotations);
	out(t,
	    "# HELP kttpd_tls_tickets_total Session tickets issued, and "
	    "offered tickets by the key that opened them.\n"
	    "# TYPE kttpd_tls_tickets_total counter\n"
	    "kttpd_tls_tickets_total{result=\"issued\"} %llu\n"
	    "kttpd_tls_tickets_total{result=\"current_key\"} %llu\n"
	    "kttpd_tls_tickets_total{result=\"older_key\"} %llu\n"
	    "kttpd_tls_tickets_total{result=\"unknown_key\"} %llu\n",
	    (unsigned long long)ts.issued, (unsigned long long)ts.resumed,
	    (unsigned long long)ts.renewed, (unsigned long long)ts.unknown);
}

void metrics_serve(struct conn *c, struct request *r)
{
	struct text t = { .cap = 8192 };
	struct metrics m;
	struct sys_tls_stat ts;
	static const char *const klass[] = { "other", "1xx", "2xx", "3xx",
		"4xx", "5xx" };
	uint64_t cum = 0;

	(void)c;
	if ((t.p = malloc(t.cap)) == NULL) {
		r->status = 500;
		return;
	}
	worker_metrics_sum(&m);
	out(&t,
	    "# HELP kttpd_connections_open Open client connections.\n"
	    "# TYPE kttpd_connections_open gauge\n"
	    "kttpd_connections_open %ld\n",
	    atomic_load(&conn_count));
	counter(&t, "connections_accepted_total", "Connections accepted.",
	    LOAD(m.accepted));
	counter(&t, "connections_rejected_total",
	    "Connections closed at accept: max_connections.", LOAD(m.rejected));
	out(&t,
	    "# HELP kttpd_connections_protocol_total Connections by "
	    "application protocol.\n"
	    "# TYPE kttpd_connections_protocol_total counter\n"
	    "kttpd_connections_protocol_total{protocol=\"http/1.1\"} %llu\n"
	    "kttpd_connections_protocol_total{protocol=\"h2\"} %llu\n",
	    (unsigned long long)LOAD(m.h1), (unsigned long long)LOAD(m.h2));
	out(&t,
	    "# HELP kttpd_handshakes_total TLS handshakes.\n"
	    "# TYPE kttpd_handshakes_total counter\n"
	    "kttpd_handshakes_total{result=\"ok\",version=\"TLSv1.2\"} %llu\n"
	    "kttpd_handshakes_total{result=\"ok\",version=\"TLSv1.3\"} %llu\n"
	    "kttpd_handshakes_total{result=\"failed\",version=\"\"} %llu\n",
	    (unsigned long long)LOAD(m.hs_ok[0]),
	    (unsigned long long)LOAD(m.hs_ok[1]),
	    (unsigned long long)LOAD(m.hs_failed));
	counter(&t, "handshakes_resumed_total", "Resumed TLS sessions.",
	    LOAD(m.hs_resumed));
	out(&t,
	    "# HELP kttpd_ktls_connections_total Connections whose "
	    "direction the kernel took.\n"
	    "# TYPE kttpd_ktls_connections_total counter\n"
	    "kttpd_ktls_connections_total{direction=\"tx\"} %llu\n"
	    "kttpd_ktls_connections_total{direction=\"rx\"} %llu\n",
	    (unsigned long long)LOAD(m.ktls_tx),
	    (unsigned long long)LOAD(m.ktls_rx));
	out(&t,
	    "# HELP kttpd_ktls_fallback_total Connections with a direction "
	    "left in userspace, by reason.\n"
	    "# TYPE kttpd_ktls_fallback_total counter\n");
	for (int i = 1; i < WHY_COUNT; i++)
		out(&t, "kttpd_ktls_fallback_total{reason=\"%s\"} %llu\n",
		    tls_why[i], (unsigned long long)LOAD(m.fallback[i]));
	out(&t,
	    "# HELP kttpd_ktls_placement_total kTLS connections by where "
	    "the kernel runs the crypto.\n"
	    "# TYPE kttpd_ktls_placement_total counter\n");
	for (int d = 0; d < 2; d++)
		for (int p = SYS_TLS_NONE; p <= SYS_TLS_HW_RECORD; p++)
			out(&t,
			    "kttpd_ktls_placement_total{direction=\"%s\","
			    "place=\"%s\"} %llu\n",
			    d ? "rx" : "tx", sys_tls_conf_name(p),
			    (unsigned long long)LOAD(m.place[d][p]));
	counter(&t, "ktls_placement_unknown_total",
	    "kTLS connections whose crypto placement the kernel did not tell.",
	    LOAD(m.place_unknown));
	out(&t,
	    "# HELP kttpd_sent_bytes_total Response bytes by who "
	    "encrypted them.\n"
	    "# TYPE kttpd_sent_bytes_total counter\n"
	    "kttpd_sent_bytes_total{encryption=\"kernel\"} %llu\n"
	    "kttpd_sent_bytes_total{encryption=\"userspace\"} %llu\n"
	    "kttpd_sent_bytes_total{encryption=\"none\"} %llu\n",
	    (unsigned long long)LOAD(m.bytes_ktls),
	    (unsigned long long)LOAD(m.bytes_user),
	    (unsigned long long)LOAD(m.bytes_plain));
	out(&t,
	    "# HELP kttpd_requests_total Responses by status class.\n"
	    "# TYPE kttpd_requests_total counter\n");
	for (int i = 1; i < 6; i++)
		out(&t, "kttpd_requests_total{class=\"%s\"} %llu\n", klass[i],
		    (unsigned long long)LOAD(m.status[i]));
	out(&t,
	    "# HELP kttpd_response_seconds Request to last byte queued.\n"
	    "# TYPE kttpd_response_seconds histogram\n");
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		cum += LOAD(m.dur_bucket[i]);
		out(&t, "kttpd_response_seconds_bucket{le=\"%g\"} %llu\n",
		    (double)bucket_us[i] / 1e6, (unsigned long long)cum);
	}
	out(&t,
	    "kttpd_response_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "kttpd_response_seconds_sum %.6f\n"
	    "kttpd_response_seconds_count %llu\n",
	    (unsigned long long)LOAD(m.requests),
	    (double)LOAD(m.dur_sum_us) / 1e6,
	    (unsigned long long)LOAD(m.requests));
	counter(&t, "aio_cold_total",
	    "Body chunks not in memory when about to be sent.",
	    LOAD(m.aio_cold));
	counter(&t, "aio_queue_full_total",
	    "Cold chunks sent blocking: the readahead queue was full.",
	    LOAD(m.aio_full));
	out(&t,
	    "# HELP kttpd_aio_queue_depth Readaheads queued or in flight.\n"
	    "# TYPE kttpd_aio_queue_depth gauge\n"
	    "kttpd_aio_queue_depth %ld\n"
	    "# HELP kttpd_aio_wait_seconds Time connections waited for a "
	    "readahead.\n"
	    "# TYPE kttpd_aio_wait_seconds summary\n"
	    "kttpd_aio_wait_seconds_sum %.6f\n"
	    "kttpd_aio_wait_seconds_count %llu\n",
	    aio_depth(), (double)LOAD(m.aio_wait_us) / 1e6,
	    (unsigned long long)LOAD(m.aio_done));
	out(&t, /* health.c: a node's traffic is requests less these */
	    "# HELP kttpd_health_checks_total Health endpoint answers.\n"
	    "# TYPE kttpd_health_checks_total counter\n"
	    "kttpd_health_checks_total{status=\"200\"} %llu\n"
	    "kttpd_health_checks_total{status=\"503\"} %llu\n"
	    "# HELP kttpd_draining 1 from the start of a drain or stop.\n"
	    "# TYPE kttpd_draining gauge\n"
	    "kttpd_draining %d\n",
	    (unsigned long long)LOAD(m.health[0]),
	    (unsigned long long)LOAD(m.health[1]), health_failing());
	limits_out(&t, &m);
	if (sys_tls_stat(&ts) == 0) {
		const struct {
			const char *name;
			uint64_t v;
		} k[] = { { "TlsCurrTxSw", ts.curr_tx_sw },
			{ "TlsCurrRxSw", ts.curr_rx_sw },
			{ "TlsCurrTxDevice", ts.curr_tx_dev },
			{ "TlsCurrRxDevice", ts.curr_rx_dev },
			{ "TlsTxSw", ts.tx_sw }, { "TlsRxSw", ts.rx_sw },
			{ "TlsTxDevice", ts.tx_dev },
			{ "TlsRxDevice", ts.rx_dev },
			{ "TlsDecryptError", ts.decrypt_error } };
		out(&t,
		    "# HELP kttpd_kernel_tls_stat The kernel's kTLS "
		    "counters (/proc/net/tls_stat).\n"
		    "# TYPE kttpd_kernel_tls_stat untyped\n");
		for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
			out(&t, "kttpd_kernel_tls_stat{name=\"%s\"} %llu\n",
			    k[i].name, (unsigned long long)k[i].v);
	}
	if (t.failed) {
		free(t.p);
		r->status = 500;
		return;
	}
	r->status = 200;
	req_set_body(r, t.p, t.n, "text/plain; version=0.0.4");
}
