/*
 * body.c: the writer of ARCHITECTURE.md's table. A response is a head in
 * c->wbuf and a file range (fd, off, len); how the bytes leave depends on
 * the connection:
 *
 *   kTLS TX     head by send(MSG_MORE), body by SSL_sendfile: the kernel
 *               frames and encrypts, nothing is copied to userspace
 *   userspace   pread into the chunk buffer (64 KiB for a large body),
 *   TLS         SSL_write: full TLS records, the head sharing the first,
 *               gathered by conn_send into few write()s
 *   plain TCP   head by send(MSG_MORE), body by sendfile
 *
 * Small bodies are read into the head's buffer and leave in one write
 * whatever the mode: one record, one syscall.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TURN_BYTES (4u << 20) /* per wake-up, then let others run */

/* Read up to room bytes of the body into wbuf after what is there. */
int body_fill(struct conn *c, size_t room)
{
	struct request *r = c->req;
	size_t want = r->len < room ? (size_t)r->len : room;
	ssize_t n;

	if (r->mem_off < r->mem_len) { /* a body from memory: copy */
		size_t k = r->mem_len - r->mem_off < room
		    ? r->mem_len - r->mem_off
		    : room;
		memcpy(c->wbuf + c->wlen, r->mem + r->mem_off, k);
		c->wlen += k;
		r->mem_off += k;
		return 0;
	}

	if (want > 0 && r->fbody != NULL) { /* issue 13: cached bytes */
		aio_read_now(c, r, c->wbuf + c->wlen, want);
		c->wlen += want;
		return 0;
	}
	/* under kTLS and on plain TCP only a body that fits whole is read */
	if (want == 0 || (want < r->len && (c->mode.ktls_tx || !c->ssl)))
		return 0;
	while (want > 0) {
		n = pread(r->fd, c->wbuf + c->wlen, want, (off_t)r->off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			log_error("%s: read of body failed at %llu: %s",
			    c->peer, (unsigned long long)r->off,
			    n == 0 ? "file shrank" : strerror(errno));
			return -1;
		}
		c->wlen += (size_t)n;
		r->off += (uint64_t)n;
		r->len -= (uint64_t)n;
		want -= (size_t)n;
	}
	return 0;
}

/* Does anything follow what is in wbuf? */
static int more_follows(const struct request *r)
{
	return r->len > 0 || r->next_part < r->nparts ||
	    (r->nparts > 0 && !r->tail_sent) || r->mem_off < r->mem_len;
}

/* Between the ranges of a multipart body: the next part's head, or the
 * closing delimiter, into the drained wbuf. 0 when nothing is left. */
static int next_piece(struct conn *c)
{
	struct request *r = c->req;

	c->wpos = c->wlen = 0;
	if (file_next_part(r)) {
		struct part *p = &r->parts[r->next_part - 1];
		memcpy(c->wbuf, p->head, p->head_len);
		c->wlen = p->head_len;
		return body_fill(c, KT_CHUNK - c->wlen) < 0 ? -1 : 1;
	}
	if (r->nparts > 0 && !r->tail_sent) {
		r->tail_sent = 1;
		c->wlen = file_tail(r, c->wbuf, KT_CHUNK);
		return 1;
	}
	if (r->mem_off < r->mem_len)
		return body_fill(c, KT_CHUNK) < 0 ? -1 : 1;
	return 0;
}

/*
 * Userspace TLS: how much of the body to read at once. A large body is
 * read KT_BULK at a time (one pread and one SSL_write for four records,
 * which conn_send's buffering BIO sends in one write); wbuf grows for
 * it and is freed with the others when the connection goes idle.
 */
static size_t bulk_room(struct conn *c)
{
	struct request *r = c->req;
	char *nb;

	if (r->len <= KT_CHUNK || r->fbody != NULL)
		return KT_CHUNK;
	if (!r->wbulk) {
		if ((nb = realloc(c->wbuf, KT_BULK)) == NULL)
			return KT_CHUNK;
		c->wbuf = nb;
		r->wbulk = 1;
	}
	return KT_BULK;
}

enum body_result body_send(struct conn *c)
{
	struct request *r = c->req;
	size_t turn = 0;
	ssize_t n;

	for (;;) {
		if (c->wpos < c->wlen)
			n = conn_send(c, c->wbuf + c->wpos, c->wlen - c->wpos,
			    more_follows(r));
		else if (r->len == 0) {
			int k = next_piece(c);
			if (k < 0)
				return BODY_ERROR;
			if (k == 0)
				return BODY_DONE;
			continue;
		} else if (turn >= TURN_BYTES)
			return BODY_AGAIN_WRITE; /* writable: back next turn */
		else if (!aio_ready(c, r,
		             r->len < KT_SENDFILE_CHUNK ? r->len
		                                        : KT_SENDFILE_CHUNK)) {
			conn_send_flush(c);    /* gathered records: not held */
			return BODY_AGAIN_AIO; /* on disk: the pool reads it */
		} else if ((c->mode.ktls_tx || !c->ssl) && r->fbody == NULL) {
			size_t len = r->len < KT_SENDFILE_CHUNK
			    ? (size_t)r->len
			    : KT_SENDFILE_CHUNK;
			n = conn_sendfile(c, r->fd, r->off, len);
			if (n > 0) {
				r->off += (uint64_t)n;
				r->len -= (uint64_t)n;
			}
		} else {
			c->wlen = c->wpos = 0;
			if (body_fill(c, bulk_room(c)) < 0)
				return BODY_ERROR;
			continue;
		}
		if (n == CONN_AGAIN)
			return c->want_write ? BODY_AGAIN_WRITE
			                     : BODY_AGAIN_READ;
		if (n < 0)
			return BODY_ERROR;
		if (c->wpos < c->wlen)
			c->wpos += (size_t)n;
		r->sent += (uint64_t)n;
		turn += (size_t)n;
		conn_deadline(c, c->cfg->send_timeout); /* progress */
	}
}
