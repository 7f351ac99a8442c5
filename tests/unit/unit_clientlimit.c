/*
 * unit_clientlimit.c: the per-client table (server/clientlimit.c) without
 * sockets: limits at N and N+1, prefixes, the GCRA bucket, a million
 * addresses through a 1024-slot table (bounded, pinned clients kept),
 * and the cost of each operation (printed on stderr).
 */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

static struct config cfg;
static struct worker w;

static void conn_init(struct conn *c, const char *addr)
{
	memset(c, 0, sizeof(*c));
	c->cfg = &cfg;
	c->w = &w;
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c->peer_ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&c->peer_ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s4->sin_addr);
	}
}

static void conn_init4(struct conn *c, uint32_t a)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&c->peer_ss;

	memset(c, 0, sizeof(*c));
	c->cfg = &cfg;
	c->w = &w;
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(a);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void limit_at_n(void)
{
	struct conn c[5];

	cfg.client_max_connections = 3;
	for (int i = 0; i < 4; i++) {
		conn_init(&c[i], "192.0.2.1");
		CHECK_INT(tname("conn_open[%d]", i), cl_conn_open(&c[i]), 0);
	}
	CHECK("conns_1_to_3_pinned",
	    c[0].cl && c[1].cl && c[2].cl && !c[0].cl_over && !c[2].cl_over);
	CHECK("conn_4_over", c[3].cl == NULL && c[3].cl_over);
	struct request r = { 0 };
	CHECK_INT("conn_4_request_503", cl_request(&c[3], &r), 503);
	conn_init(&c[4], "192.0.2.2");
	cl_conn_open(&c[4]);
	CHECK("other_client_not_over", c[4].cl != NULL && !c[4].cl_over);
	cl_conn_close(&c[0]);
	conn_init(&c[0], "192.0.2.1");
	cl_conn_open(&c[0]);
	CHECK("after_close_room_again", c[0].cl != NULL && !c[0].cl_over);
	cfg.client_conn_status = 444;
	conn_init(&c[3], "192.0.2.1");
	CHECK_INT("status_444_closes", cl_conn_open(&c[3]), -1);
	cfg.client_conn_status = 503;
	for (int i = 0; i < 3; i++)
		cl_conn_close(&c[i]);
	cl_conn_close(&c[4]);
}

/* With client_max_connections = 1: does y count as x's client? */
static int same_client(const char *x, const char *y)
{
	struct conn a, b;
	int same;

	conn_init(&a, x);
	conn_init(&b, y);
	cl_conn_open(&a);
	cl_conn_open(&b);
	same = a.cl != NULL && b.cl_over;
	cl_conn_close(&a);
	cl_conn_close(&b);
	return same;
}

static void prefixes(void)
{
	cfg.client_max_connections = 1;
	CHECK("ipv6_same_64_is_one_client",
	    same_client("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"));
	CHECK("ipv6_next_64_is_another",
	    !same_client("2001:db8:1:2::1", "2001:db8:1:3::1"));
	CHECK("v4_mapped_is_the_ipv4_client",
	    same_client("198.51.100.4", "::ffff:198.51.100.4"));
	CHECK("ipv4_32_by_default",
	    !same_client("198.51.100.4", "198.51.100.200"));
	cfg.client_ipv4_prefix = 24;
	CHECK("ipv4_prefix_24", same_client("198.51.100.4", "198.51.100.200"));
	cfg.client_ipv4_prefix = 32;
}

static void rate(void)
{
	struct conn c;
	struct request r;
	int st[7];

	cfg.client_max_connections = 0;
	cfg.client_rate = 1;
	cfg.client_burst = 5;
	conn_init(&c, "203.0.113.50");
	cl_conn_open(&c);
	for (int i = 0; i < 7; i++) {
		memset(&r, 0, sizeof(r));
		st[i] = cl_request(&c, &r);
	}
	CHECK("rate_burst_5_admitted",
	    !st[0] && !st[1] && !st[2] && !st[3] && !st[4]);
	CHECK_INT("rate_6th_429", st[5], 429);
	CHECK_INT("rate_retry_after", r.retry_after, 1);
	cl_conn_close(&c);
	cfg.client_rate = 0;
	cfg.client_burst = 0;
}

/* A million addresses through the table: bounded, and a client with an
 * open connection keeps its slot (and its count) through the flood. */
static void bounded(void)
{
	struct conn keep, c, again;
	long used, size;
	uint64_t ev0 = w.m.cl_evicted;
	double t0, t1;
	const int n = 1000000;

	cfg.client_max_connections = 1;
	conn_init(&keep, "192.0.2.99");
	cl_conn_open(&keep);
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		conn_init4(&c, 0x0a000000u + (uint32_t)i);
		cl_conn_open(&c);
		cl_conn_close(&c);
	}
	t1 = now_ns();
	cl_table_stats(&used, &size);
	CHECK_INT("table_size_rounded", size, 1024);
	CHECK("entries_at_most_size", used <= size);
	CHECK(
	    "evictions_counted", w.m.cl_evicted - ev0 >= (uint64_t)(n - size));
	conn_init(&again, "192.0.2.99");
	cl_conn_open(&again);
	CHECK("pinned_client_survives_flood", again.cl_over);
	fprintf(stderr,
	    "clientlimit: %d addresses: %.0f ns per open+close (with "
	    "eviction); entries %ld of %ld, evictions %llu\n",
	    n, (t1 - t0) / n, used, size,
	    (unsigned long long)(w.m.cl_evicted - ev0));
	cl_conn_close(&keep);
}

static void cost(void)
{
	struct conn c;
	struct request r;
	const int n = 500000; /* under the burst: all admitted */
	double t0, t1;
	int bad = 0;

	cfg.client_rate = 1000000;
	cfg.client_burst = 1000000;
	conn_init(&c, "192.0.2.77");
	cl_conn_open(&c);
	t0 = now_ns();
	for (int i = 0; i < n; i++)
		bad += cl_request(&c, &r) != 0;
	t1 = now_ns();
	CHECK_INT("cost_requests_admitted", bad, 0);
	fprintf(
	    stderr, "clientlimit: %.1f ns per request check\n", (t1 - t0) / n);
	cl_conn_close(&c);
}

int main(void)
{
	cfg.client_table_size = 1000; /* rounded up to 1024 */
	cfg.client_conn_status = 503;
	cfg.client_rate_status = 429;
	cfg.client_ipv4_prefix = 32;
	cfg.client_ipv6_prefix = 64;
	if (cl_start(&cfg) < 0) {
		FAIL("cl_start", "failed");
		return unit_done();
	}
	limit_at_n();
	prefixes();
	rate();
	bounded();
	cost();
	return unit_done();
}
