/*
 * health.c: the node's health as a load balancer sees it, and the drain
 * that fails it. A location with `health = true` answers 200 while the
 * node serves and 503 from the moment a drain (SIGUSR2) or a graceful
 * stop (SIGTERM) begins, so the balancer takes the node out before its
 * listeners close. During a drain everything else is still served:
 * HTTP/1.1 responses say `Connection: close` and HTTP/2 connections get a
 * GOAWAY after their streams, so clients reconnect through the balancer;
 * new connections are still accepted until the balancer stops sending
 * them. The drain ends after drain_timeout, or sooner once the node has
 * been idle for drain_idle, and then the process stops as SIGTERM does.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <stdlib.h>
#include <string.h>

/* 0 serving, 1 draining or stopping: set by main, read by workers. */
static atomic_int failing;

/* The drain's clock and its idle test: the main thread's alone. */
static int64_t began_us, busy_us;
static uint64_t last_served;

int health_failing(void)
{
	return atomic_load_explicit(&failing, memory_order_relaxed);
}

void health_fail(void)
{
	atomic_store(&failing, 1);
}

void health_serve(struct conn *c, struct request *r)
{
	static const char ok[] = "ok\n", down[] = "draining\n";
	int fail = health_failing();
	const char *text = fail ? down : ok;
	size_t len = fail ? sizeof(down) - 1 : sizeof(ok) - 1;
	char *body = malloc(len);

	(void)c;
	if (body != NULL)
		memcpy(body, text, len);
	r->status = fail ? 503 : 200;
	if (req_set_body(r, body, len, "text/plain") < 0)
		r->status = 500;
}

/* Requests served, all workers, health checks left out. */
static uint64_t served(void)
{
	struct metrics m;

	worker_metrics_sum(&m);
	return atomic_load(&m.requests) - atomic_load(&m.health[0]) -
	    atomic_load(&m.health[1]);
}

void health_drain_begin(void)
{
	health_fail();
	began_us = busy_us = date_mono_us();
	last_served = served();
	worker_drain_all();
}

/*
 * Called by main every KT_DRAIN_TICK_MS while draining. The node is idle
 * when no connection is open now and no request but a health check has
 * been answered for drain_idle seconds: the balancer has stopped sending.
 * A health check caught open only delays the end to the next tick.
 */
int health_drain_over(const struct config *cfg)
{
	int64_t now = date_mono_us();
	uint64_t n = served();

	if (n != last_served) {
		last_served = n;
		busy_us = now;
	}
	if (now - began_us >= (int64_t)cfg->drain_timeout * 1000000)
		return 1;
	return cfg->drain_idle > 0 && atomic_load(&conn_count) == 0 &&
	    now - busy_us >= (int64_t)cfg->drain_idle * 1000000;
}
