/*
 * conn.c: a connection's life: TLS handshake, waiting with a deadline,
 * reads through SSL_read (or recv on a plain listener), and the close,
 * clean (close_notify, then a short drain of unread input so our last
 * response is not destroyed by a reset) or abrupt. It knows no protocol:
 * after the handshake it calls the one ALPN chose through c->proto
 * (struct conn_proto), from the table main registered.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void conn_io(evutil_socket_t fd, short what, void *arg);
static void conn_begin(struct conn *c);

atomic_long conn_count; /* open connections, all workers */

/* Set once by main before the workers start; read-only afterwards. */
static const struct conn_proto *proto_h1, *proto_h2;

void conn_protocols(const struct conn_proto *h1, const struct conn_proto *h2)
{
	proto_h1 = h1;
	proto_h2 = h2;
}

/*
 * Before an SSL call whose SSL_get_error must see only its own errors:
 * ERR_clear_error walks and frees all 16 slots of the thread's queue
 * (~840 instructions in OpenSSL 3.0, twice a request on HTTP/1.1:
 * issue 13), ERR_peek_error only looks whether there is anything.
 */
static void err_clear(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

int64_t conn_now_us(struct conn *c)
{
	struct timeval tv;

	event_base_gettimeofday_cached(c->w->base, &tv);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

const char *conn_date(struct conn *c, size_t *n)
{
	struct worker *w = c->w;
	struct timeval tv;

	event_base_gettimeofday_cached(w->base, &tv);
	if (tv.tv_sec != w->date_t) {
		w->date_t = tv.tv_sec;
		w->date_n = date_format(tv.tv_sec, w->date, sizeof(w->date));
	}
	*n = w->date_n;
	return w->date;
}

void conn_deadline(struct conn *c, long seconds)
{
	c->deadline_us = conn_now_us(c) + (int64_t)seconds * 1000000;
}

/*
 * Wait for what (EV_READ, EV_WRITE or both) until the phase's deadline.
 * The event is persistent: waiting again for the same thing only moves
 * the timeout, with no epoll_ctl (a keep-alive request costs none).
 */
void conn_wait(struct conn *c, short what)
{
	struct timeval tv;
	int64_t left = c->deadline_us - conn_now_us(c);

	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000000;
	tv.tv_usec = left % 1000000;
	if (c->ev_what != what) {
		event_del(c->ev);
		event_assign(
		    c->ev, c->w->base, c->fd, what | EV_PERSIST, conn_io, c);
		c->ev_what = what;
	}
	event_add(c->ev, &tv);
}

/* Wait for no socket event, only the deadline: the connection's next
 * step comes from elsewhere (the I/O threads, through the worker). */
void conn_sleep(struct conn *c)
{
	struct timeval tv;
	int64_t left = c->deadline_us - conn_now_us(c);

	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000000;
	tv.tv_usec = left % 1000000;
	event_del(c->ev);
	event_assign(c->ev, c->w->base, -1, 0, conn_io, c);
	c->ev_what = 0; /* so the next conn_wait assigns the socket again */
	event_add(c->ev, &tv);
}

static void peer_name(struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    out, (socklen_t)len);
	else if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, out,
		    (socklen_t)len);
	else
		snprintf(out, len, "-");
}

void conn_accept(struct worker *w, struct listen_addr *la, int fd,
    struct sockaddr *sa, socklen_t salen)
{
	struct conn *c = calloc(1, sizeof(*c));

	(void)salen;
	if (c == NULL ||
	    (c->ev = event_new(w->base, fd, 0, conn_io, c)) == NULL) {
		free(c);
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	c->la = la;
	c->cfg = w->cfg;
	config_ref(c->cfg);
	c->vh = la->def;
	peer_name(sa, c->peer, sizeof(c->peer));
	memcpy(&c->peer_ss, sa,
	    salen < sizeof(c->peer_ss) ? salen : sizeof(c->peer_ss));
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->nconns++;
	atomic_fetch_add(&conn_count, 1);
	sys_conn_setup(fd);
	if (la->proxy) {
		c->state = CS_PROXY;
		conn_deadline(c, c->cfg->handshake_timeout);
		conn_wait(c, EV_READ);
		return;
	}
	conn_begin(c);
}

/* After accept (and a PROXY header): TLS handshake or the first request. */
static void conn_begin(struct conn *c)
{
	if (cl_conn_open(c) < 0) { /* client_max_connections, status 444 */
		conn_close(c);
		return;
	}
	if (c->la->tls) {
		if ((c->ssl = tls_new(c)) == NULL) {
			log_error("%s: cannot create a TLS session", c->peer);
			conn_close(c);
			return;
		}
		c->state = CS_HANDSHAKE;
		conn_deadline(c, c->cfg->handshake_timeout);
	} else {
		METRIC_ADD(&c->w->m, h1, 1);
		c->proto = proto_h1;
		c->state = CS_READ;
		conn_deadline(c, c->cfg->header_timeout);
	}
	conn_wait(c, EV_READ);
}

/*
 * The PROXY header, peeked so that nothing after it leaves the socket.
 * While it is incomplete the socket stays readable, so we poll on a short
 * timer instead of spinning, until the handshake deadline.
 */
static void proxy_read(struct conn *c)
{
	unsigned char buf[16 + 512];
	struct sockaddr_storage ss;
	size_t used = 0;
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK);
	int r;

	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		conn_wait(c, EV_READ);
		return;
	}
	r = n > 0 ? proxy_parse(buf, (size_t)n, &ss, &used) : -1;
	if (r == 0 && (size_t)n < sizeof(buf)) {
		struct timeval tv = { 0, 10000 };
		event_del(c->ev);
		event_assign(c->ev, c->w->base, -1, 0, conn_io, c);
		c->ev_what = -1; /* a timer now: the next conn_wait re-assigns
		                  */
		event_add(c->ev, &tv);
		return;
	}
	if (r <= 0 || recv(c->fd, buf, used, 0) != (ssize_t)used) {
		if (n > 0)
			log_info(
			    "%s: malformed PROXY protocol header", c->peer);
		conn_close(c);
		return;
	}
	if (r == 2) {
		memcpy(&c->peer_ss, &ss, sizeof(ss));
		peer_name((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
	}
	conn_begin(c);
}

/*
 * Issue 13: TLS 1.3's session tickets (a write() each) and what the
 * protocol writes at once after the handshake (HTTP/2's SETTINGS; a
 * response and close_notify when the request came with the client's
 * Finished) leave in one segment, not one each: tls.c corks the socket
 * as OpenSSL is about to write the first ticket (conn_cork), and the
 * handshake's turn uncorks it when it returns, before any wait; a close
 * within the turn shuts the socket down first, which sends what is held.
 */
static _Thread_local struct conn *corked; /* this worker's, or NULL */

void conn_cork(struct conn *c)
{
	/* only where conn_handshake uncorks: a ticket OpenSSL wrote from
	 * SSL_read or SSL_write later would otherwise leave it corked */
	if (corked == c || c->state != CS_HANDSHAKE)
		return;
	sys_cork(c->fd, 1);
	corked = c;
}

static void uncork(void)
{
	if (corked != NULL) {
		sys_cork(corked->fd, 0); /* sends what it held */
		corked = NULL;
	}
}

static void conn_handshake(struct conn *c)
{
	switch (tls_handshake(c)) {
	case 1:
		tls_record_mode(c);
		metrics_handshake(&c->w->m, &c->mode, 1,
		    SSL_version(c->ssl) == TLS1_3_VERSION,
		    SSL_session_reused(c->ssl));
		log_debug("%s: %s %s ktls tx=%d rx=%d %s", c->peer,
		    tls_version(c), tls_cipher(c), c->mode.ktls_tx,
		    c->mode.ktls_rx, tls_why[c->mode.why]);
		c->state = CS_READ;
		conn_deadline(c, c->cfg->header_timeout);
		c->proto = tls_alpn_h2(c) ? proto_h2 : proto_h1;
		if (c->proto->start != NULL && c->proto->start(c) < 0) {
			conn_close(c);
			return;
		}
		if (c->proto == proto_h2)
			METRIC_ADD(&c->w->m, h2, 1);
		else
			METRIC_ADD(&c->w->m, h1, 1);
		c->proto->io(c, EV_READ);
		uncork(); /* c may be closed: conn_close uncorked it then */
		break;
	case 0:
		uncork();
		conn_wait(c, c->want_write ? EV_WRITE : EV_READ);
		break;
	default: metrics_handshake(&c->w->m, &c->mode, 0, 0, 0); conn_close(c);
	}
}

/* Bytes, CONN_EOF, CONN_ERROR, or CONN_AGAIN with c->want_write set. */
ssize_t conn_recv(struct conn *c, void *buf, size_t len)
{
	ssize_t n;
	int e;

	if (c->ssl == NULL) {
		n = recv(c->fd, buf, len, 0);
		if (n >= 0)
			return n;
		c->want_write = 0;
		return errno == EAGAIN || errno == EINTR ? CONN_AGAIN
		                                         : CONN_ERROR;
	}
	err_clear();
	n = SSL_read(c->ssl, buf, (int)len);
	e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, (int)n);
	/*
	 * A TLS 1.3 KeyUpdate with update_requested obliges us to rekey our
	 * sending side before more application data (RFC 8446 4.6.3). Our
	 * send()/SSL_sendfile writes never send the KeyUpdate OpenSSL
	 * queued: tls_ktls_rekey does where the kernel takes new keys, and
	 * otherwise the connection ends (close_notify under the old keys
	 * is allowed), the reason logged.
	 */
	if (c->mode.ktls_tx && !c->rekey_pending &&
	    SSL_get_key_update_type(c->ssl) != SSL_KEY_UPDATE_NONE &&
	    tls_ktls_rekey(c) < 0) {
		ERR_clear_error();
		return CONN_EOF;
	}
	if (n > 0)
		return n;
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		c->want_write = e == SSL_ERROR_WANT_WRITE;
		return CONN_AGAIN;
	case SSL_ERROR_ZERO_RETURN: /* close_notify */ return CONN_EOF;
	case SSL_ERROR_SYSCALL: /* TCP closed without close_notify */
		return errno == 0 ? CONN_EOF : CONN_ERROR;
	default: {
		char err[160];
		ERR_error_string_n(ERR_peek_error(), err, sizeof(err));
		log_debug("%s: TLS read: %s", c->peer, err);
		if (c->mode.ktls_rx && !tls_rekey_rx_ok())
			/* issue 14: most likely a peer KeyUpdate whose
			 * keys OpenSSL could not hand to the kernel */
			log_info("%s: TLS read failed under kTLS RX (a peer "
			         "KeyUpdate? this kernel takes no new RX "
			         "keys): %s",
			    c->peer, err);
		ERR_clear_error();
		c->tls_failed = 1;
		return CONN_ERROR;
	}
	}
}

/*
 * Issue 13: OpenSSL writes each TLS record to the socket BIO by itself,
 * one write() per 16 KiB. While a response of more than one record is
 * being written in userspace TLS, a buffering BIO between SSL and the
 * socket gathers the records, so that a write() carries several; it is
 * flushed when the caller has no more to follow and removed then. The
 * worker keeps the one it took off for the next response, of any of its
 * connections: no allocation per response, and an idle connection holds
 * no buffer. Only after the handshake, and never under kTLS (OpenSSL
 * finds the kTLS socket BIO through SSL_get_wbio, which would then be
 * the buffer).
 */
#define WBIO_REC (KT_CHUNK + 96) /* a full record, any suite's overhead */
#define WBIO_BUF (4 * WBIO_REC)  /* up to four records a write */

static void wbio_push(struct conn *c)
{
	BIO *sock = SSL_get_wbio(c->ssl);
	BIO *buf = c->w->spare_wbio;

	c->w->spare_wbio = NULL;
	if (buf == NULL &&
	    ((buf = BIO_new(BIO_f_buffer())) == NULL ||
	        BIO_set_write_buffer_size(buf, WBIO_BUF) != 1)) {
		BIO_free(buf); /* unbuffered: correct, only more writes */
		ERR_clear_error();
		return;
	}
	if (!BIO_up_ref(sock)) { /* the chain's reference */
		c->w->spare_wbio = buf;
		ERR_clear_error();
		return;
	}
	SSL_set0_wbio(c->ssl, BIO_push(buf, sock)); /* drops the old one */
	c->wbio_buffered = 1;
}

/* Write out what the buffer holds, then take it off for the worker's
 * next response: 1 done, 0 again (want_write set), -1 error. */
static int wbio_flush(struct conn *c)
{
	BIO *buf = SSL_get_wbio(c->ssl);

	if (BIO_flush(buf) <= 0) {
		if (!BIO_should_retry(buf))
			return -1;
		c->want_write = 1;
		return 0;
	}
	if (c->w->spare_wbio == NULL && BIO_up_ref(buf)) /* we keep it */
		c->w->spare_wbio = buf;
	/* the chain's reference to the socket becomes SSL's write BIO's;
	 * SSL lets go of the buffer (freed unless the worker kept it) */
	SSL_set0_wbio(c->ssl, BIO_pop(buf));
	c->wbio_buffered = 0;
	return 1;
}

/* The worker stops: the buffer it kept. */
void conn_worker_free(struct worker *w)
{
	BIO_free(w->spare_wbio);
	w->spare_wbio = NULL;
}

/* Before a wait that is not for the socket (the disk): write out what
 * conn_send gathered, best effort; what the socket does not take now
 * leaves with the next write. */
void conn_send_flush(struct conn *c)
{
	if (c->wbio_buffered && c->tls_owed == 0) {
		(void)BIO_flush(SSL_get_wbio(c->ssl));
		err_clear();
	}
}

/*
 * Write buf: SSL_write in userspace TLS, send() otherwise (plain TCP, or
 * kTLS TX, where the kernel frames what it is given; more keeps the
 * record or segment open for what follows; in userspace TLS, more keeps
 * the records gathered, above). Bytes, or CONN_AGAIN with c->want_write
 * set, or CONN_ERROR.
 */
ssize_t conn_send(struct conn *c, const void *buf, size_t len, int more)
{
	ssize_t n;
	int e;

	if (c->rekey_pending && (e = tls_ktls_rekey(c)) < 1) /* issue 14 */
		return e == 0 ? CONN_AGAIN : CONN_ERROR;
	if (c->ssl != NULL && !c->mode.ktls_tx) {
		if (c->tls_owed > 0) { /* the caller retries the same bytes */
			if ((e = wbio_flush(c)) <= 0)
				return e == 0 ? CONN_AGAIN : CONN_ERROR;
			n = (ssize_t)c->tls_owed;
			c->tls_owed = 0;
			return n;
		}
		if (!c->wbio_buffered && (more || len > KT_CHUNK))
			wbio_push(c);
		err_clear();
		n = SSL_write(c->ssl, buf, (int)len);
		if (n > 0 && !more && c->wbio_buffered &&
		    (e = wbio_flush(c)) <= 0) {
			if (e < 0)
				return CONN_ERROR;
			c->tls_owed = (size_t)n; /* written once flushed */
			return CONN_AGAIN;
		}
		if (n > 0)
			return n;
		e = SSL_get_error(c->ssl, (int)n);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			c->want_write = e == SSL_ERROR_WANT_WRITE;
			return CONN_AGAIN;
		}
		c->tls_failed = 1;
		return CONN_ERROR;
	}
	n = sys_send(c->fd, buf, len, more);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EINTR) {
		c->want_write = 1;
		return CONN_AGAIN;
	}
	log_debug("%s: send: %s", c->peer, strerror(errno));
	return CONN_ERROR;
}

/*
 * Send len bytes of file fd from off without copying: SSL_sendfile under
 * kTLS TX, sendfile on plain TCP. SSL_sendfile before OpenSSL 3.4 reports
 * a failed sendfile() as SSL_ERROR_SSL (SSL_R_UNINITIALIZED), so errno
 * decides; 0 means the file is shorter than the length we promised.
 * Bytes, CONN_AGAIN (want_write set) or CONN_ERROR (logged).
 */
ssize_t conn_sendfile(struct conn *c, int fd, uint64_t off, size_t len)
{
	ssize_t n;
	int r;

	if (c->rekey_pending && (r = tls_ktls_rekey(c)) < 1) /* issue 14 */
		return r == 0 ? CONN_AGAIN : CONN_ERROR;
	err_clear();
	errno = 0;
	if (c->ssl == NULL) {
		uint64_t o = off;
		n = sys_sendfile(c->fd, fd, &o, len);
	} else
		n = SSL_sendfile(c->ssl, fd, (off_t)off, len, 0);
	if (n > 0)
		return n;
	if (n < 0 &&
	    (errno == EAGAIN || errno == EINTR ||
	        (c->ssl != NULL &&
	            SSL_get_error(c->ssl, (int)n) == SSL_ERROR_WANT_WRITE))) {
		ERR_clear_error();
		c->want_write = 1;
		return CONN_AGAIN;
	}
	ERR_clear_error();
	log_error("%s: sendfile at %llu: %s", c->peer, (unsigned long long)off,
	    n == 0 ? "file shrank" : strerror(errno));
	return CONN_ERROR;
}

static void linger_read(struct conn *c)
{
	char buf[4096];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		conn_wait(c, EV_READ);
		return;
	}
	if (n <= 0 || (size_t)n >= c->linger_left) {
		conn_close(c);
		return;
	}
	c->linger_left -= (size_t)n;
	c->deadline_us = conn_now_us(c) + KT_LINGER_MS * 1000;
	if (c->deadline_us > c->linger_end_us)
		c->deadline_us = c->linger_end_us;
	conn_wait(c, EV_READ);
}

/*
 * End the connection after our last response: close_notify, and when the
 * peer may still be sending (a body we did not read, a pipelined request
 * we refused, HTTP/2 WINDOW_UPDATEs for data still in flight), half-close
 * and drain, so the peer reads our answer before its kernel sees a reset.
 * Lingering ends at the peer's close, an idle KT_LINGER_MS, or
 * KT_LINGER_TOTAL_MS in all.
 */
void conn_finish(struct conn *c, int linger)
{
	if (c->ssl != NULL && !c->tls_failed &&
	    SSL_is_init_finished((SSL *)c->ssl)) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	if (!linger) {
		conn_close(c);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	c->state = CS_LINGER;
	c->linger_left = KT_LINGER_BYTES;
	c->deadline_us = conn_now_us(c) + KT_LINGER_MS * 1000;
	c->linger_end_us = conn_now_us(c) + KT_LINGER_TOTAL_MS * 1000;
	conn_wait(c, EV_READ);
}

static void conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	static const char *const phase[] = { "handshake", "proxy", "request",
		"send", "disk read", "linger" };

	(void)fd;
	if (c->state == CS_PROXY && (what & EV_TIMEOUT) &&
	    conn_now_us(c) < c->deadline_us) {
		proxy_read(c); /* the poll timer, not the deadline */
		return;
	}
	if ((what & EV_TIMEOUT) && c->state != CS_LINGER && c->proto != NULL &&
	    c->proto->timeout != NULL) {
		c->proto->timeout(c); /* HTTP/2: GOAWAY first */
		return;
	}
	if (what & EV_TIMEOUT) {
		if (c->state != CS_LINGER && (c->state != CS_READ || c->rlen))
			log_info("%s: %s timeout, closing", c->peer,
			    phase[c->state]);
		conn_close(c);
		return;
	}
	switch (c->state) {
	case CS_HANDSHAKE: conn_handshake(c); break;
	case CS_PROXY: proxy_read(c); break;
	case CS_LINGER: linger_read(c); break;
	default: c->proto->io(c, what); /* the protocol's states */
	}
}

void conn_close(struct conn *c)
{
	struct worker *w = c->w;

	event_free(c->ev);
	aio_cancel(c); /* a readahead in flight finds nobody */
	if (c->proto != NULL)
		c->proto->free(c);
	if (c->ssl != NULL) {
		/* a peer that just went away leaves its session resumable;
		 * OpenSSL drops it from the cache only after a TLS error */
		if (!c->tls_failed && SSL_is_init_finished((SSL *)c->ssl))
			SSL_set_shutdown(
			    c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(c->ssl);
	}
	if (corked == c && c->mode.ktls_tx)
		uncork(); /* kTLS: close() sends an open record before FIN */
	else if (corked == c) { /* what it holds, and our FIN, in one segment */
		shutdown(c->fd, SHUT_WR); /* not a close() that resets: it */
		corked = NULL;            /* would drop what is still held */
	}
	close(c->fd);
	cl_conn_close(c);
	free(c->rbuf);
	free(c->wbuf);
	TAILQ_REMOVE(&w->conns, c, link);
	w->nconns--;
	atomic_fetch_sub(&conn_count, 1);
	config_unref(c->cfg);
	free(c);
	if (w->stopping && w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

/* A protocol that can announce its end (HTTP/2's GOAWAY). */
static int can_announce(const struct conn *c)
{
	return c->proto != NULL && c->proto->shutdown != NULL;
}

/*
 * Reload: HTTP/2 connections get a GOAWAY so that clients move to the new
 * config once their streams finish (HTTP/1.1 connections finish on the
 * config they were accepted under, request by request).
 */
void conn_reload(struct worker *w)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (can_announce(c) && c->cfg != w->cfg)
			c->proto->shutdown(c);
	}
}

/* A drain begins (health.c): HTTP/2 connections get a GOAWAY (open
 * streams finish); HTTP/1.1 ones say Connection: close on their next
 * response, so an idle one is never closed under a request. */
void conn_drain(struct worker *w)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (can_announce(c) && c->state != CS_LINGER)
			c->proto->shutdown(c);
	}
}

/* Shutdown: close what is idle now; busy ones close after their response. */
void conn_shutdown_idle(struct worker *w)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		c->keepalive = 0;
		if (can_announce(c))
			c->proto->shutdown(c);
		else if (c->state == CS_HANDSHAKE ||
		    (c->state == CS_READ && c->rlen == 0))
			conn_finish(c, 0);
	}
}
