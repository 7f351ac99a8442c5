/*
 * worker.c: worker threads. Each owns an event_base, its connections and
 * one SO_REUSEPORT socket per address, so nothing on the request path is
 * shared or locked. The main thread talks to a worker through a pipe:
 * 'r' take the new config, 's' stop, 'd' drain (health.c).
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct acceptor {
	struct worker *w;
	struct listen_addr *la;
};

struct wslot {
	struct worker w;
	pthread_t thr;
	int pipe[2];
	struct acceptor *acc;
};

static struct wslot *slots;
static int nslots;
static atomic_int acks;

static void accepting(struct worker *w, int on)
{
	for (int i = 0; i < w->naccept; i++) {
		if (on)
			event_add(w->accept_ev[i], NULL);
		else
			event_del(w->accept_ev[i]);
	}
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (!w->stopping)
		accepting(w, 1);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct acceptor *a = arg;
	struct worker *w = a->w;
	struct sockaddr_storage ss;

	(void)what;
	for (int i = 0; i < KT_ACCEPT_BATCH; i++) {
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* out of descriptors: pause instead of spinning
				 */
				struct timeval tv = { 0,
					KT_ACCEPT_PAUSE_MS * 1000 };
				static struct log_limit lim;
				long more;
				if (log_limited(&lim, &more))
					log_warn("accept: %s; pausing %d ms "
					         "(%ld more pauses since the "
					         "last such line)",
					    strerror(errno), KT_ACCEPT_PAUSE_MS,
					    more);
				accepting(w, 0);
				evtimer_add(w->pause_ev, &tv);
			}
			return; /* EAGAIN, or a connection that went away */
		}
		if (atomic_load(&conn_count) >= w->cfg->max_connections) {
			METRIC_ADD(&w->m, rejected, 1);
			log_debug("max_connections (%ld) reached: closing new "
			          "connection",
			    w->cfg->max_connections);
			close(fd);
			continue;
		}
		METRIC_ADD(&w->m, accepted, 1);
		conn_accept(w, a->la, fd, (struct sockaddr *)&ss, len);
	}
}

/* (Re)create the accept events for w->cfg's addresses. */
static int accept_setup(struct wslot *s)
{
	struct worker *w = &s->w;
	struct config *cfg = w->cfg;

	for (int i = 0; i < w->naccept; i++)
		event_free(w->accept_ev[i]);
	free(w->accept_ev);
	free(s->acc);
	w->naccept = 0;
	w->accept_ev = calloc((size_t)cfg->nlistens, sizeof(*w->accept_ev));
	s->acc = calloc((size_t)cfg->nlistens, sizeof(*s->acc));
	if (w->accept_ev == NULL || s->acc == NULL)
		return -1;
	for (int i = 0; i < cfg->nlistens; i++) {
		s->acc[i].w = w;
		s->acc[i].la = &cfg->listens[i];
		w->accept_ev[i] = event_new(w->base, cfg->listens[i].fds[w->id],
		    EV_READ | EV_PERSIST, accept_cb, &s->acc[i]);
		if (w->accept_ev[i] == NULL)
			return -1;
		w->naccept++;
	}
	accepting(w, 1);
	return 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	log_flush(arg);
}

static void stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	log_warn("worker %d: shutdown_timeout passed with %d connections "
	         "open; closing them",
	    w->id, w->nconns);
	event_base_loopexit(w->base, NULL);
}

static void cmd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wslot *s = arg;
	struct worker *w = &s->w;
	char cmd;

	(void)what;
	if (read(fd, &cmd, 1) != 1)
		return;
	if (cmd == 'r' || cmd == 'f') /* reload, reopen: lines so far first */
		log_flush(w);
	if (cmd == 'f') {
		atomic_fetch_add(&acks, 1);
		return;
	}
	if (cmd == 'r') {
		struct config *old = w->cfg;
		w->cfg = atomic_exchange(&w->next_cfg, NULL);
		if (accept_setup(s) < 0)
			log_error("worker %d: reload: out of memory", w->id);
		conn_reload(w);
		config_unref(old);
		atomic_fetch_add(&acks, 1);
	} else if (cmd == 'd')
		conn_drain(w);
	else if (cmd == 's' && !w->stopping) {
		struct timeval tv = { w->cfg->shutdown_timeout, 0 };
		w->stopping = 1;
		accepting(w, 0);
		/* closed, so the kernel stops completing handshakes for us */
		for (int i = 0; i < w->cfg->nlistens; i++) {
			close(w->cfg->listens[i].fds[w->id]);
			w->cfg->listens[i].fds[w->id] = -1;
		}
		evtimer_add(w->stop_ev, &tv);
		conn_shutdown_idle(w);
		if (w->nconns == 0)
			event_base_loopexit(w->base, NULL);
	}
}

static void *worker_main(void *arg)
{
	struct wslot *s = arg;
	struct worker *w = &s->w;

	event_base_dispatch(w->base);
	while (!TAILQ_EMPTY(&w->conns))
		conn_close(TAILQ_FIRST(&w->conns));
	log_flush(w);
	return NULL;
}

static int worker_init(struct wslot *s, int id, struct config *cfg)
{
	struct worker *w = &s->w;
	struct event_config *ec = event_config_new();

	w->id = id;
	TAILQ_INIT(&w->conns);
	w->cfg = cfg;
	config_ref(cfg);
	w->logbuf_cap = (size_t)cfg->access_log_buffer; /* likewise */
	if (w->logbuf_cap > 0 && (w->logbuf = malloc(w->logbuf_cap)) == NULL)
		goto fail;
	if (ec == NULL || pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		goto fail;
	/* one thread per base: no locks; coalesce del+add into one change */
	event_config_set_flag(
	    ec, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	ec = NULL;
	if (w->base == NULL)
		goto fail;
	/* first: it sets the base's priorities (size fixed at start) */
	w->fc = fc_new(cfg, w->base);
	w->cmd_ev = event_new(
	    w->base, s->pipe[0], EV_READ | EV_PERSIST, cmd_cb, s);
	w->pause_ev = evtimer_new(w->base, resume_cb, w);
	w->stop_ev = evtimer_new(w->base, stop_timeout_cb, w);
	w->flush_ev = event_new(w->base, -1, EV_PERSIST, flush_cb, w);
	if (w->flush_ev == NULL ||
	    event_add(w->flush_ev, &(struct timeval){ 1, 0 }) < 0)
		goto fail;
	if (w->cmd_ev == NULL || w->pause_ev == NULL || w->stop_ev == NULL ||
	    event_add(w->cmd_ev, NULL) < 0 || aio_worker_init(w) < 0 ||
	    accept_setup(s) < 0)
		goto fail;
	return 0;
fail:
	if (ec != NULL)
		event_config_free(ec);
	return -1;
}

int worker_start_all(struct config *cfg)
{
	nslots = cfg->workers;
	if ((slots = calloc((size_t)nslots, sizeof(*slots))) == NULL)
		return -1;
	for (int i = 0; i < nslots; i++) {
		if (worker_init(&slots[i], i, cfg) < 0 ||
		    pthread_create(
		        &slots[i].thr, NULL, worker_main, &slots[i]) != 0) {
			log_error("worker %d: cannot start", i);
			return -1;
		}
	}
	return 0;
}

/* A scrape: every worker's counters, summed (read without stopping them). */
void worker_metrics_sum(struct metrics *sum)
{
	_Atomic uint64_t *out = (_Atomic uint64_t *)sum;
	size_t n = sizeof(*sum) / sizeof(*out);

	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < nslots; i++) {
		_Atomic uint64_t *in = (_Atomic uint64_t *)&slots[i].w.m;
		for (size_t k = 0; k < n; k++)
			out[k] += atomic_load_explicit(
			    &in[k], memory_order_relaxed);
	}
}

static void tell(char cmd)
{
	for (int i = 0; i < nslots; i++)
		(void)!write(slots[i].pipe[1], &cmd, 1);
}

/* Hand cfg to every worker; return once all of them took it. */
void worker_reload_all(struct config *cfg)
{
	struct timespec ts = { 0, 1000000 };

	atomic_store(&acks, 0);
	for (int i = 0; i < nslots; i++) {
		config_ref(cfg);
		atomic_store(&slots[i].w.next_cfg, cfg);
	}
	tell('r');
	while (atomic_load(&acks) < nslots)
		nanosleep(&ts, NULL);
}

/* Every worker writes out its buffered access lines; returns after. */
void worker_flush_logs(void)
{
	struct timespec ts = { 0, 1000000 };

	atomic_store(&acks, 0);
	tell('f');
	while (atomic_load(&acks) < nslots)
		nanosleep(&ts, NULL);
}

void worker_stop_all(void)
{
	tell('s');
}

void worker_drain_all(void)
{
	tell('d');
}

void worker_join_all(void)
{
	for (int i = 0; i < nslots; i++)
		pthread_join(slots[i].thr, NULL);
	aio_stop(); /* before the pipes it answers through close */
	for (int i = 0; i < nslots; i++) {
		struct worker *w = &slots[i].w;
		aio_worker_free(w);
		for (int k = 0; k < w->naccept; k++)
			event_free(w->accept_ev[k]);
		event_free(w->cmd_ev);
		event_free(w->pause_ev);
		event_free(w->stop_ev);
		event_free(w->flush_ev);
		free(w->logbuf);
		free(w->spare_req);
		free(w->spare_rbuf);
		free(w->spare_wbuf);
		conn_worker_free(w);
		event_base_free(w->base);
		fc_free(w->fc);
		config_unref(w->cfg);
		free(w->accept_ev);
		free(slots[i].acc);
		close(slots[i].pipe[0]);
		close(slots[i].pipe[1]);
	}
	free(slots);
}
