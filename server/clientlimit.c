/*
 * clientlimit.c: per-client limits for an edge under abuse: concurrent
 * connections per client address (client_max_connections) and a request
 * rate per client address (client_rate, client_burst), keyed by the real
 * client (the PROXY header's source when the listener has `proxy`), IPv4
 * by client_ipv4_prefix bits and IPv6 by client_ipv6_prefix (a /64 is
 * one subscriber to most operators).
 *
 * One table for the whole process, not one per worker. Workers are
 * threads behind SO_REUSEPORT, and the kernel spreads one client's
 * connections over them by a hash of the 4-tuple: a per-worker table
 * would see a client with N connections as N/workers here and there, and
 * "the limit trips at N+1" would hold for no N. The shared table takes no
 * lock: each slot is three atomic words and every change is one CAS.
 *
 *   state  tag (44 bits of a keyed hash of the address) << 20 | open
 *          connections (20 bits). Pinning a slot (a connection opens) and
 *          evicting one (only when its count is 0) are CASes on this one
 *          word, so a slot with an open connection is never taken away.
 *   tat    the rate limit as GCRA (the token bucket as one number): the
 *          "theoretical arrival time" of the next request, microseconds.
 *   seen   the last connection or request, for eviction (oldest first).
 *
 * The table has client_table_size slots (fixed at start, 32 bytes each),
 * so memory is bounded whatever the number of addresses. An address
 * probes KT_CL_WAYS neighbouring slots (four cache lines): its own, else
 * an empty one, else the least recently seen one without open
 * connections, whose bucket is lost (that client starts again with a full
 * burst). With all of them pinned the client is not limited (fail open,
 * counted as table_full): size the table well above max_connections.
 *
 * Requests check the bucket of the slot their connection pinned at
 * accept: one CAS, no lookup. Two clients share a slot only if their
 * keyed 44-bit tags and their slot windows collide; the SipHash key is
 * random per process, so nobody can aim for that.
 *
 * The limits are global options, read from each connection's config
 * generation (a reload changes them; the table and its key stay). No
 * per-server override: the connection limit acts before SNI names the
 * server, and one budget per client is what an edge under abuse wants;
 * per-server budgets would need a slot per client and server.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define KT_CL_WAYS   8  /* slots an address may live in */
#define CONN_BITS    20 /* connections per slot: client_max_connections max */
#define CONN_MASK    ((UINT64_C(1) << CONN_BITS) - 1)
#define TAG_OF(st)   ((st) >> CONN_BITS)
#define CONNS_OF(st) ((st)&CONN_MASK)

struct cl_slot {
	_Atomic uint64_t state;
	_Atomic int64_t tat;
	_Atomic int64_t seen;
	uint64_t pad; /* 32 bytes: two slots per cache line */
};

static struct cl_slot *table;
static size_t mask;
static uint64_t sipkey[2];

/* SipHash-2-4 of the 16-byte key (RFC-style reference, one length byte) */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = ROTL(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = ROTL(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = ROTL(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = ROTL(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = ROTL(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = ROTL(v2, 32);                                             \
	} while (0)

static uint64_t siphash16(const uint64_t m[2])
{
	uint64_t v0 = sipkey[0] ^ UINT64_C(0x736f6d6570736575);
	uint64_t v1 = sipkey[1] ^ UINT64_C(0x646f72616e646f6d);
	uint64_t v2 = sipkey[0] ^ UINT64_C(0x6c7967656e657261);
	uint64_t v3 = sipkey[1] ^ UINT64_C(0x7465646279746573);
	uint64_t last = UINT64_C(16) << 56;

	for (int i = 0; i < 3; i++) {
		uint64_t w = i < 2 ? m[i] : last;
		v3 ^= w;
		SIPROUND;
		SIPROUND;
		v0 ^= w;
	}
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

int cl_start(struct config *cfg)
{
	size_t n = 1;

	while (n < (size_t)cfg->client_table_size)
		n <<= 1;
	/* calloc: untouched pages cost no memory until clients arrive */
	if ((table = calloc(n, sizeof(*table))) == NULL ||
	    RAND_bytes((unsigned char *)sipkey, sizeof(sipkey)) != 1)
		return -1;
	mask = n - 1;
	return 0;
}

/* The client's key: its address masked to the configured prefix; IPv4
 * as ::ffff:a.b.c.d, so that no IPv4 and IPv6 key are equal. */
static uint64_t client_hash(const struct config *cfg, const struct sockaddr *sa)
{
	unsigned char k[16] = { 0 };
	const unsigned char *a;
	uint64_t m[2];
	long bits;
	int off;

	if (sa->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			a += 12;
			off = 12;
		} else
			off = 0;
	} else {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)
		        ->sin_addr;
		off = 12;
	}
	if (off == 12) {
		k[10] = k[11] = 0xff;
		bits = cfg->client_ipv4_prefix;
	} else
		bits = cfg->client_ipv6_prefix;
	for (int i = 0; off + i < 16 && bits > 0; i++, bits -= 8)
		k[off + i] = (unsigned char)(a[i] &
		    (bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff));
	memcpy(m, k, sizeof(m));
	return siphash16(m);
}

static atomic_long entries; /* slots ever taken: at most the table size */

/*
 * Pin the client's slot for a new connection. Returns the slot, or NULL
 * with *over set when the client already has `limit` connections (0: no
 * limit), or NULL alone when its whole window is pinned by others.
 */
static struct cl_slot *pin(
    struct worker *w, uint64_t h, long limit, int64_t now, int *over)
{
	uint64_t tag = h >> CONN_BITS ? h >> CONN_BITS : 1;
	size_t idx = (size_t)h & mask;

	*over = 0;
	for (int attempt = 0; attempt < 4; attempt++) {
		struct cl_slot *victim = NULL;
		uint64_t vstate = 0;
		int64_t vseen = INT64_MAX;

		for (int i = 0; i < KT_CL_WAYS; i++) {
			struct cl_slot *s = &table[(idx + (size_t)i) & mask];
			uint64_t st = atomic_load(&s->state);
			int64_t seen;

			while (TAG_OF(st) == tag) {
				if (limit > 0 &&
				    CONNS_OF(st) >= (uint64_t)limit) {
					*over = 1;
					return NULL;
				}
				if (CONNS_OF(st) == CONN_MASK)
					return NULL; /* cannot count more */
				if (atomic_compare_exchange_weak(
				        &s->state, &st, st + 1)) {
					atomic_store_explicit(&s->seen, now,
					    memory_order_relaxed);
					return s;
				}
			}
			if (CONNS_OF(st) != 0 || vseen == INT64_MIN)
				continue; /* pinned, or an empty one chosen */
			seen = st == 0 ? INT64_MIN
			               : atomic_load_explicit(
			                     &s->seen, memory_order_relaxed);
			if (seen < vseen) {
				victim = s;
				vstate = st;
				vseen = seen;
			}
		}
		if (victim == NULL) {
			METRIC_ADD(&w->m, cl_table_full, 1);
			return NULL;
		}
		if (atomic_compare_exchange_strong(
		        &victim->state, &vstate, tag << CONN_BITS | 1)) {
			/* nobody uses it now: its count was 0 */
			atomic_store_explicit(
			    &victim->tat, 0, memory_order_relaxed);
			atomic_store_explicit(
			    &victim->seen, now, memory_order_relaxed);
			if (vstate != 0)
				METRIC_ADD(&w->m, cl_evicted, 1);
			else
				atomic_fetch_add(&entries, 1);
			return victim;
		}
	}
	return NULL; /* lost every race: let it through */
}

/*
 * A connection starts (after accept, or after its PROXY header): pin its
 * client's slot. Over client_max_connections, 0 when the connection is
 * to be answered with client_conn_status (c->cl_over), -1 when that
 * status is 444: close now, nothing sent.
 */
int cl_conn_open(struct conn *c)
{
	const struct config *cfg = c->cfg;
	int over;

	if (table == NULL ||
	    (cfg->client_max_connections == 0 && cfg->client_rate == 0))
		return 0;
	if (cfg->nclient_exempt > 0) { /* the allow-list matcher, reused */
		struct location l = { .allow = cfg->client_exempt,
			.nallow = cfg->nclient_exempt };
		if (metrics_allowed(&l, (struct sockaddr *)&c->peer_ss))
			return 0;
	}
	c->cl = pin(c->w, client_hash(cfg, (struct sockaddr *)&c->peer_ss),
	    cfg->client_max_connections, date_mono_us(), &over);
	if (!over)
		return 0;
	METRIC_ADD(&c->w->m, cl_conn_rejected, 1);
	log_debug("%s: client_max_connections (%ld) reached%s", c->peer,
	    cfg->client_max_connections,
	    cfg->client_conn_status == 444 ? ": closing" : "");
	if (cfg->client_conn_status == 444)
		return -1;
	c->cl_over = 1;
	return 0;
}

void cl_conn_close(struct conn *c)
{
	if (c->cl == NULL)
		return;
	atomic_store_explicit(
	    &c->cl->seen, date_mono_us(), memory_order_relaxed);
	atomic_fetch_sub(&c->cl->state, 1);
	c->cl = NULL;
}

/*
 * A request: 0 to go on, or the status to answer with. The rate is GCRA:
 * each request moves the slot's theoretical arrival time (tat) on by
 * 1/client_rate s; a request arriving more than (burst - 1)/rate before
 * it is over the rate, and may retry when tat - burst/rate has passed.
 */
int cl_request(struct conn *c, struct request *r)
{
	const struct config *cfg = c->cfg;
	struct cl_slot *s = c->cl;
	int64_t now, t, tat, tau;
	long burst;

	if (c->cl_over) {
		c->keepalive = 0; /* nginx's limit_conn answers; we also close
		                   */
		return (int)cfg->client_conn_status;
	}
	if (s == NULL || cfg->client_rate == 0)
		return 0;
	burst = cfg->client_burst > 0 ? cfg->client_burst : cfg->client_rate;
	t = 1000000 / cfg->client_rate;
	t = t > 0 ? t : 1;
	tau = t * (burst - 1);
	now = date_mono_us();
	atomic_store_explicit(&s->seen, now, memory_order_relaxed);
	tat = atomic_load_explicit(&s->tat, memory_order_relaxed);
	do {
		int64_t from = tat > now ? tat : now;
		if (from - now > tau) {
			int64_t wait = from - tau - now; /* until one token */
			r->retry_after = (int)((wait + 999999) / 1000000);
			if (r->retry_after < 1)
				r->retry_after = 1;
			METRIC_ADD(&c->w->m, cl_rate_rejected, 1);
			return (int)cfg->client_rate_status;
		}
		if (atomic_compare_exchange_weak(&s->tat, &tat, from + t))
			return 0;
	} while (1);
}

/* For the metrics: slots in use (ever taken) and the table's size. */
void cl_table_stats(long *used, long *size)
{
	*used = atomic_load(&entries);
	*size = table ? (long)mask + 1 : 0;
}
