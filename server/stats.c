/*
 * stats.c: the Prometheus text page, a location with `metrics = true`
 * (usually with an `allow` list). A handler like file.c: it gathers every
 * worker's counters (metrics.c), the readahead queue, the client table,
 * the ticket keys, the drain and the kernel's kTLS counters, which is
 * why it is not metrics.c: the counters stay a leaf that anyone may call.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void stats_serve(struct conn *c, struct request *r)
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
		    (double)metrics_bucket_us[i] / 1e6,
		    (unsigned long long)cum);
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
