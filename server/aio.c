/*
 * aio.c: keep the event loops off the disk. Before a body's bytes leave
 * (sendfile, SSL_sendfile or pread), aio_ready() asks sys/ whether they
 * are in memory, once per window of aio_chunk bytes. When they are not,
 * the window goes to a small pool of I/O threads that read it into the
 * page cache while the worker serves its other connections; the waiting
 * connection polls nothing (HTTP/1: state CS_AIO; HTTP/2: its writer is
 * paused, so all its streams wait, and other connections go on).
 *
 * The worker resumes the connection through its protocol's table
 * (c->proto->io with EV_WRITE), so this file names no protocol.
 *
 * A finished job goes back through the worker's pipe: worker bases are
 * made with EVENT_BASE_FLAG_NOLOCK, so event_active() from another thread
 * is not allowed. The pointer write is atomic (< PIPE_BUF) and the pipe
 * holds more pointers than aio_queue allows in flight, so it never fills.
 *
 * A connection closed while its job is in flight clears job->c. Only the
 * worker thread reads or writes job->c, so the completion is recognised
 * as stale without a lock. The job reads through its own dup of the file
 * descriptor: the request may close (and the number be reused) meanwhile.
 *
 * A full queue does not fail the request: the chunk is sent blocking, as
 * it would be with aio_threads = 0.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCRATCH (128 << 10) /* each thread's read buffer */

struct aio_job {
	struct aio_job *next;
	struct worker *w;
	struct conn *c; /* worker thread only; NULL: the connection went */
	int fd;         /* our dup */
	uint64_t off;
	size_t len;
	int64_t t0_us;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct aio_job *head, **tail;
	int stop;
	int nthreads;
	pthread_t *thr;
	long max;          /* aio_queue */
	uint64_t chunk;    /* aio_chunk */
	atomic_long depth; /* submitted, not yet taken back by a worker */
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *pool_main(void *arg)
{
	char *buf = malloc(SCRATCH);

	(void)arg;
	pthread_mutex_lock(&pool.mu);
	for (;;) {
		struct aio_job *j;
		while (pool.head == NULL && !pool.stop)
			pthread_cond_wait(&pool.cv, &pool.mu);
		if (pool.stop)
			break;
		j = pool.head;
		if ((pool.head = j->next) == NULL)
			pool.tail = &pool.head;
		pthread_mutex_unlock(&pool.mu);

		/* an error is the sender's to report: it reads the same bytes
		 */
		if (buf != NULL)
			(void)sys_readahead(
			    j->fd, j->off, j->len, buf, SCRATCH);
		close(j->fd);
		j->fd = -1;
		(void)!write(j->w->aio_pipe[1], &j, sizeof(j));
		pthread_mutex_lock(&pool.mu);
	}
	pthread_mutex_unlock(&pool.mu);
	free(buf);
	return NULL;
}

int aio_start(struct config *cfg)
{
	pool.tail = &pool.head;
	pool.max = cfg->aio_queue;
	pool.chunk = (uint64_t)cfg->aio_chunk;
	if (cfg->aio_threads == 0)
		return 0;
	pool.thr = calloc((size_t)cfg->aio_threads, sizeof(*pool.thr));
	if (pool.thr == NULL)
		return -1;
	for (long i = 0; i < cfg->aio_threads; i++) {
		if (pthread_create(&pool.thr[i], NULL, pool_main, NULL) != 0) {
			log_error("aio: cannot start an I/O thread");
			return -1;
		}
		pool.nthreads++;
	}
	return 0;
}

/* After the workers are gone: jobs not started are dropped. */
void aio_stop(void)
{
	struct aio_job *j;

	pthread_mutex_lock(&pool.mu);
	pool.stop = 1;
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	for (int i = 0; i < pool.nthreads; i++)
		pthread_join(pool.thr[i], NULL);
	while ((j = pool.head) != NULL) {
		pool.head = j->next;
		close(j->fd);
		free(j);
	}
	free(pool.thr);
	pool.thr = NULL;
	pool.nthreads = 0;
}

long aio_depth(void)
{
	return atomic_load(&pool.depth);
}

/* The worker takes its finished jobs back and resumes their connections. */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct aio_job *jobs[64];
	ssize_t n;

	(void)what;
	while ((n = read(fd, jobs, sizeof(jobs))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(jobs[0]); i++) {
			struct aio_job *j = jobs[i];
			struct conn *c = j->c;
			int64_t us = date_mono_us() - j->t0_us;

			atomic_fetch_sub(&pool.depth, 1);
			METRIC_ADD(&w->m, aio_done, 1);
			METRIC_ADD(
			    &w->m, aio_wait_us, (uint64_t)(us > 0 ? us : 0));
			free(j);
			if (c == NULL) /* closed while we read for it */
				continue;
			c->aio = NULL;
			c->aio_trust = 1;
			c->proto->io(c, EV_WRITE); /* whoever waited: resume */
		}
	}
}

int aio_worker_init(struct worker *w)
{
	w->aio_pipe[0] = w->aio_pipe[1] = -1;
	if (pipe2(w->aio_pipe, O_CLOEXEC) < 0)
		return -1;
	/* the worker's end never blocks; the pool's may (it never fills) */
	if (fcntl(w->aio_pipe[0], F_SETFL, O_NONBLOCK) < 0)
		return -1;
	w->aio_ev = event_new(
	    w->base, w->aio_pipe[0], EV_READ | EV_PERSIST, done_cb, w);
	if (w->aio_ev == NULL || event_add(w->aio_ev, NULL) < 0)
		return -1;
	return 0;
}

/* After aio_stop(): take back what finished for nobody. */
void aio_worker_free(struct worker *w)
{
	struct aio_job *j;

	if (w->aio_pipe[0] >= 0) {
		while (read(w->aio_pipe[0], &j, sizeof(j)) == sizeof(j))
			free(j);
		close(w->aio_pipe[0]);
		close(w->aio_pipe[1]);
	}
	if (w->aio_ev != NULL)
		event_free(w->aio_ev);
}

static int submit(struct conn *c, int fd, uint64_t off, size_t len)
{
	struct aio_job *j;

	if (atomic_fetch_add(&pool.depth, 1) >= pool.max)
		goto full;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		goto full;
	if ((j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(j);
		goto full;
	}
	j->w = c->w;
	j->c = c;
	j->off = off;
	j->len = len;
	j->t0_us = date_mono_us();
	c->aio = j;
	pthread_mutex_lock(&pool.mu);
	*pool.tail = j;
	pool.tail = &j->next;
	pthread_cond_signal(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	return 0;
full:
	atomic_fetch_sub(&pool.depth, 1);
	return -1;
}

/*
 * May the next len bytes of r's file (at r->off) be sent now? 1: yes (in
 * memory, the pool is off or full, or sys/ cannot tell). 0: a readahead
 * of the window is queued and c waits for it; its worker resumes c.
 * Cheap once a window is known warm: one comparison per call.
 */
/*
 * A body read whole into memory anyway (a small file, an HTTP/2 frame
 * copied): read it now if the page cache has every byte, so one call
 * both answers "in memory?" and reads. 1: len bytes are in buf and r
 * moved past them; 0: nothing read, ask aio_ready and read as before.
 */
int aio_read_now(struct conn *c, struct request *r, char *buf, size_t len)
{
	ssize_t n;

	if (r->fbody != NULL) { /* issue 13: the cache holds the bytes */
		memcpy(buf, r->fbody + r->off, len);
		r->off += len;
		r->len -= len;
		return 1;
	}
	if (pool.nthreads == 0 || r->fd < 0 || len == 0 || c->aio != NULL)
		return 0;
	n = sys_pread_nowait(r->fd, buf, len, r->off);
	if (n != (ssize_t)len)
		return 0; /* cold, short, or cannot tell: the usual way */
	r->off += len;
	r->len -= len;
	return 1;
}

int aio_ready(struct conn *c, struct request *r, uint64_t len)
{
	uint64_t win;

	if (pool.nthreads == 0 || r->fd < 0 || len == 0 || r->fbody != NULL)
		return 1;
	if (c->aio != NULL) /* HTTP/2 asks again while it waits */
		return 0;
	if (r->off >= r->warm_from && r->off + len <= r->warm_until)
		return 1;
	win = r->len < pool.chunk ? r->len : pool.chunk;
	if (win < len)
		win = len;
	if (c->aio_trust || sys_in_memory(r->fd, r->off, (size_t)win) != 0)
		goto warm;
	METRIC_ADD(&c->w->m, aio_cold, 1);
	if (submit(c, r->fd, r->off, (size_t)win) == 0)
		return 0;
	METRIC_ADD(&c->w->m, aio_full, 1); /* send it blocking */
warm:
	c->aio_trust = 0;
	r->warm_from = r->off;
	r->warm_until = r->off + win;
	return 1;
}

void aio_cancel(struct conn *c)
{
	if (c->aio != NULL)
		c->aio->c = NULL;
	c->aio = NULL;
}
