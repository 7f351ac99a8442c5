/*
 * http2.c: HTTP/2 over TLS with nghttp2. nghttp2 does framing, HPACK and
 * flow control; streams go through the same request and file code as
 * HTTP/1.1 (route_request, file_serve).
 *
 * Output is a byte buffer plus a queue of file ranges inserted at points
 * in it. DATA frames use nghttp2's NO_COPY path: send_data_cb queues the
 * 9-byte frame header and the file range, and the writer decides how the
 * bytes leave:
 *   kTLS TX    bytes before the frame end their record; the header goes
 *              by send(MSG_MORE) and the payload by SSL_sendfile, so a
 *              16384-byte frame (9 + 16375) is exactly one TLS record
 *   userspace  payloads are read into the frame buffer, which one
 *              SSL_write sends whole: full records, which conn_send
 *              gathers into few write()s; a stream's next frames'
 *              payloads are read with the first one (pf_read; issue 13)
 * Small payloads are copied into the buffer in both modes. nghttp2 is
 * asked for more frames only when the queue has drained, so a frame that
 * began leaving is finished before anything else is written.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <errno.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define H2_PAYLOAD   (KT_CHUNK - 9) /* frame = one full TLS record */
#define H2_COPY_MAX  4096  /* smaller payloads are copied, not sendfile'd */
#define H2_OUT_LOW   65536 /* ask nghttp2 for frames below this backlog */
#define H2_MAX_SEGS  64
#define H2_ARENA_INL 256 /* request header values kept in the stream */
#define H2_OBUF_INIT (H2_OUT_LOW + 2 * KT_CHUNK)
#define H2_PF_MAX    4 /* frames' payloads read ahead by one preadv */

struct stream {
	TAILQ_ENTRY(stream) link;
	struct request r;
	int32_t id;
	int closed; /* nghttp2 is done with it */
	int segs;   /* queued file ranges still reading r.fd */
	int no_pf;  /* its frames take turns with others': no read-ahead */
	size_t hdr_bytes;
	char *arena; /* request header values; r's spans point here */
	size_t alen, acap;
	struct {
		size_t off, n;
	} sp[10]; /* offsets until headers end */
	/* the arena while it fits (most requests): no allocation; last,
	 * not zeroed at creation */
	char inl[H2_ARENA_INL];
};

struct seg {
	size_t hdr_at; /* obuf offset of the frame header */
	size_t at;     /* obuf offset where the file range goes */
	struct stream *s;
	uint64_t off, len;
};

struct h2 {
	nghttp2_session *ng;
	TAILQ_HEAD(, stream) streams;
	char *obuf;
	size_t opos, olen, ocap;
	struct seg segs[H2_MAX_SEGS];
	int nsegs, seg_head;
	int nopen;  /* open streams */
	int goaway; /* GOAWAY_NOTICE, then GOAWAY_FINAL (h2_shutdown) */
	int64_t notice_end_us; /* the final GOAWAY's latest time */
	int32_t last_id;       /* the final GOAWAY's last stream: served */
	unsigned empty_data;   /* empty DATA frames without END_STREAM */
	double reset_tokens;   /* rapid reset bucket, refilled over time */
	int64_t reset_us;
	struct h2ids ids; /* stream ids opened: lower new ones are errors */
	/* issue 13: payloads of the next DATA frames of pf_s, read ahead
	 * into obuf where those frames would go (after their headers) if
	 * nothing else is written in between; pf_at: the next to use */
	struct stream *pf_s;
	int pf_n, pf_at;
	struct {
		size_t pos, len;
		uint64_t off;
	} pf[H2_PF_MAX];
};

/* Which request span each slot fills. */
enum {
	SP_METHOD,
	SP_PATH,
	SP_AUTHORITY,
	SP_HOST,
	SP_INM,
	SP_IMS,
	SP_RANGE,
	SP_IFRANGE,
	SP_UA,
	SP_AE
};

/* Where each slot's span is in struct request; 0: none (host, which
 * fills r->host only when there is no :authority). issue 13: a table
 * of offsets, not an array of pointers built per slot. */
static const size_t slot_off[] = { offsetof(struct request, method_str),
	offsetof(struct request, target), offsetof(struct request, host), 0,
	offsetof(struct request, if_none_match),
	offsetof(struct request, if_modified_since),
	offsetof(struct request, range), offsetof(struct request, if_range),
	offsetof(struct request, user_agent),
	offsetof(struct request, accept_encoding) };
_Static_assert(sizeof(slot_off) / sizeof(slot_off[0]) ==
        sizeof(((struct stream *)0)->sp) / sizeof(((struct stream *)0)->sp[0]),
    "a span place for each slot");
_Static_assert(offsetof(struct request, method_str) != 0,
    "offset 0 means no slot in slot_off");

/* ---- nghttp2's allocations ----
 *
 * issue 13: nghttp2 mallocs and frees about five small blocks a stream
 * (the stream, the outbound item, the copied header array, header
 * buffers). With 32 streams a turn the same sizes pile up past glibc's
 * thread cache (7 a size) and go the slow way, _int_malloc/_int_free.
 * Here a worker keeps freed small blocks in lists by size, up to
 * H2_MEM_CAP bytes, so what one turn frees the next takes back. The
 * blocks are plain malloc blocks of glibc's own sizes (16k + 8 usable
 * bytes), their size read back by malloc_usable_size: no header, no
 * rounding beyond glibc's, so a block an idle session keeps (HPACK
 * entries) costs what it did. The lists are per worker thread, not per
 * connection, so idle connections hold none of it; they are given back
 * when a connection closes and no other has open streams. (Given back
 * whenever the worker's last busy connection went idle, they were
 * emptied nearly every turn under load and saved nothing: 64 KiB at
 * most wait for the next close.) Our own streams (1000 bytes each)
 * come from the same lists; 32 KiB then no longer held a turn's worth,
 * 64 KiB does (128 KiB saved no more). Under AddressSanitizer, or
 * without glibc, nghttp2 and the streams get plain malloc (ASan sees
 * every block).
 */
#ifdef KT_BLOCK_CACHE
#include <malloc.h>

#define H2_MEM_CLASSES 64          /* usable 8, 24, ... 1016 bytes */
#define H2_MEM_CAP     (64 * 1024) /* bytes kept free, a worker */
#define H2_MEM_SIZE(k) (16 * (size_t)(k) + 8)

struct h2blk {
	struct h2blk *next;
};

static __thread struct h2blk *h2_free_list[H2_MEM_CLASSES];
static __thread size_t h2_free_bytes;

static void *h2_malloc(size_t size, void *ud)
{
	size_t k = size <= 8 ? 0 : (size - 8 + 15) / 16;
	struct h2blk *b;

	(void)ud;
	if (k >= H2_MEM_CLASSES)
		return malloc(size);
	if ((b = h2_free_list[k]) == NULL)
		return malloc(H2_MEM_SIZE(k));
	h2_free_list[k] = b->next;
	h2_free_bytes -= H2_MEM_SIZE(k);
	return b;
}

static void h2_mfree(void *p, void *ud)
{
	size_t k;

	(void)ud;
	if (p == NULL)
		return;
	/* the list whose size it holds (any block: usable >= the size) */
	k = (malloc_usable_size(p) - 8) / 16;
	if (k >= H2_MEM_CLASSES ||
	    h2_free_bytes + H2_MEM_SIZE(k) > H2_MEM_CAP) {
		free(p);
		return;
	}
	((struct h2blk *)p)->next = h2_free_list[k];
	h2_free_list[k] = p;
	h2_free_bytes += H2_MEM_SIZE(k);
}

static void *h2_calloc(size_t n, size_t size, void *ud)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	if ((p = h2_malloc(n * size, ud)) != NULL)
		memset(p, 0, n * size);
	return p;
}

static void *h2_realloc(void *p, size_t size, void *ud)
{
	(void)ud;
	return realloc(p, size); /* every block is a malloc block */
}

/* A connection closed and none of the worker's has open streams: give
 * the free blocks back. */
static void h2_mem_trim(void)
{
	for (int i = 0; i < H2_MEM_CLASSES; i++)
		while (h2_free_list[i] != NULL) {
			struct h2blk *b = h2_free_list[i];
			h2_free_list[i] = b->next;
			free(b);
		}
	h2_free_bytes = 0;
}

static nghttp2_mem h2_mem = {
	.malloc = h2_malloc,
	.free = h2_mfree,
	.calloc = h2_calloc,
	.realloc = h2_realloc,
};
#define H2_MEM (&h2_mem)
/* issue 13: our streams (1000 bytes, 32 a turn) come from the same
 * lists: past glibc's thread cache too */
#define stream_alloc(n)   h2_malloc(n, NULL)
#define stream_dealloc(p) h2_mfree(p, NULL)
#else
#define H2_MEM            NULL /* nghttp2's default: malloc */
#define stream_alloc(n)   malloc(n)
#define stream_dealloc(p) free(p)
static void h2_mem_trim(void)
{
}
#endif

/* HTTP/2 connections of this worker with open streams */
static __thread unsigned h2_busy;

/* ---- output buffer ---- */

static int out_reserve(struct h2 *h, size_t n)
{
	if (h->olen + n <= h->ocap)
		return 0;
	/* issue 13: at once the size a turn fills (H2_OUT_LOW and the frame
	 * that crosses it): grown by doubling from 16 KiB, every busy turn
	 * after an idle one (which frees it) paid two reallocs that copied
	 * 48 KiB, more than the 1 KiB responses themselves */
	size_t cap = h->ocap ? h->ocap : H2_OBUF_INIT;
	while (cap < h->olen + n)
		cap *= 2;
	char *nb = realloc(h->obuf, cap);
	if (nb == NULL)
		return -1;
	h->obuf = nb;
	h->ocap = cap;
	return 0;
}

static int out_append(struct h2 *h, const void *p, size_t n)
{
	if (out_reserve(h, n) < 0)
		return -1;
	memcpy(h->obuf + h->olen, p, n);
	h->olen += n;
	return 0;
}

static void stream_free(struct conn *c, struct stream *s)
{
	if (c->h2->pf_s == s)
		c->h2->pf_s = NULL;
	TAILQ_REMOVE(&c->h2->streams, s, link);
	if (s->r.status != 0)
		req_log(c, &s->r);
	req_release(&s->r);
	if (s->arena != s->inl)
		free(s->arena);
	stream_dealloc(s);
}

/* ---- nghttp2 callbacks: requests in ---- */

/* Every frame header, before nghttp2 acts on it: HEADERS that would open
 * a stream below one already opened get GOAWAY PROTOCOL_ERROR, and HEADERS
 * on one the client ended and nghttp2 closed (it keeps no closed streams)
 * GOAWAY STREAM_CLOSED: nghttp2 alone ignores both and the client waits
 * forever. */
static int on_begin_frame(
    nghttp2_session *ng, const nghttp2_frame_hd *hd, void *arg)
{
	struct conn *c = arg;
	int rc;

	if (hd->type != NGHTTP2_HEADERS)
		return 0;
	rc = h2ids_check(&c->h2->ids, hd->stream_id,
	    nghttp2_session_find_stream(ng, hd->stream_id) != NULL);
	if (rc < 0)
		nghttp2_session_terminate_session(ng,
		    rc == H2IDS_CLOSED ? NGHTTP2_STREAM_CLOSED
		                       : NGHTTP2_PROTOCOL_ERROR);
	return 0;
}

static int on_begin_headers(
    nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
	struct conn *c = arg;
	struct stream *s;

	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	/* issue 13: malloc and memset, not calloc: glibc's calloc skips
	 * the thread cache, and the inline arena needs no zeroing */
	if ((s = stream_alloc(sizeof(*s))) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	memset(s, 0, offsetof(struct stream, inl));
	s->arena = s->inl;
	s->acap = sizeof(s->inl);
	s->id = f->hd.stream_id;
	s->r.fd = -1;
	s->r.http_major = 2;
	s->r.start_us = date_mono_us();
	TAILQ_INSERT_TAIL(&c->h2->streams, s, link);
	if (c->h2->nopen++ == 0)
		h2_busy++;
	nghttp2_session_set_stream_user_data(ng, s->id, s);
	return 0;
}

/* The slot a request header fills, or -1. issue 13: by length first,
 * so a header costs one comparison of a known size (inlined), not a
 * scan of all ten names. */
static int slot_for(const uint8_t *name, size_t n)
{
#define IS(lit) (memcmp(name, "" lit, sizeof(lit) - 1) == 0)
	switch (n) {
	case 4: return IS("host") ? SP_HOST : -1;
	case 5: return IS(":path") ? SP_PATH : IS("range") ? SP_RANGE : -1;
	case 7: return IS(":method") ? SP_METHOD : -1;
	case 8: return IS("if-range") ? SP_IFRANGE : -1;
	case 10:
		return IS(":authority") ? SP_AUTHORITY
		    : IS("user-agent")  ? SP_UA
		                        : -1;
	case 13: return IS("if-none-match") ? SP_INM : -1;
	case 15: return IS("accept-encoding") ? SP_AE : -1;
	case 17: return IS("if-modified-since") ? SP_IMS : -1;
	default: return -1;
	}
#undef IS
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f,
    const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen,
    uint8_t flags, void *arg)
{
	struct conn *c = arg;
	struct stream *s = nghttp2_session_get_stream_user_data(
	    ng, f->hd.stream_id);
	int i;

	(void)flags;
	if (s == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	s->hdr_bytes += namelen + valuelen + 32; /* RFC 9113 6.5.2 */
	if (s->hdr_bytes > (size_t)c->cfg->max_request_head) {
		s->r.status = 431;
		return 0;
	}
	if ((i = slot_for(name, namelen)) < 0 || s->sp[i].n != 0 ||
	    valuelen == 0)
		return 0; /* an empty value leaves the slot unset, as before */
	if (i == SP_PATH && valuelen > (size_t)c->cfg->max_uri) {
		s->r.status = 414; /* max_uri, as HTTP/1.1's on_url */
		return 0;
	}
	if (s->alen + valuelen > s->acap) {
		size_t cap = s->acap * 2;
		while (cap < s->alen + valuelen)
			cap *= 2;
		char *na = malloc(cap);
		if (na == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		memcpy(na, s->arena, s->alen);
		if (s->arena != s->inl)
			free(s->arena);
		s->arena = na;
		s->acap = cap;
	}
	memcpy(s->arena + s->alen, value, valuelen);
	s->sp[i].off = s->alen;
	s->sp[i].n = valuelen;
	s->alen += valuelen;
	return 0;
}

/* name: a lower-case literal, which nghttp2 need neither copy nor
 * lower-case; the value is copied (most live on the stack). */
static void add_nv(nghttp2_nv *nv, size_t *n, const char *name, size_t namelen,
    const char *value, size_t valuelen)
{
	nv[*n].name = (uint8_t *)name;
	nv[*n].namelen = namelen;
	nv[*n].value = (uint8_t *)value;
	nv[*n].valuelen = valuelen;
	nv[*n].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
	(*n)++;
}

#define add_header(nv, n, name, value)                                         \
	add_nv(nv, n, "" name, sizeof(name) - 1, value, strlen(value))
/* issue 13: a value whose length is known (no strlen) */
#define add_header_n(nv, n, name, value, len)                                  \
	add_nv(nv, n, "" name, sizeof(name) - 1, value, len)
/* a literal value: nghttp2 need not copy it either */
#define add_header_lit(nv, n, name, value)                                     \
	do {                                                                   \
		add_nv(nv, n, "" name, sizeof(name) - 1, "" value,             \
		    sizeof(value) - 1);                                        \
		nv[*(n)-1].flags |= NGHTTP2_NV_FLAG_NO_COPY_VALUE;             \
	} while (0)

/* Between ranges of a multipart body: a part head or the closing
 * delimiter, copied into the frame (its file bytes go by NO_COPY). */
static ssize_t multipart_piece(
    struct stream *s, uint8_t *buf, size_t length, uint32_t *flags)
{
	struct request *r = &s->r;
	char tail[64];
	const char *src;
	size_t len, n;

	if (r->next_part < r->nparts) {
		src = r->parts[r->next_part].head;
		len = r->parts[r->next_part].head_len;
	} else {
		src = tail;
		len = file_tail(r, tail, sizeof(tail));
	}
	n = len - r->part_pos < length ? len - r->part_pos : length;
	memcpy(buf, src + r->part_pos, n);
	r->part_pos += n;
	r->sent += n;
	if (r->part_pos == len) {
		if (r->next_part < r->nparts)
			file_next_part(r); /* its range is next */
		else
			*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)n;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf,
    size_t length, uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct stream *s = src->ptr;
	size_t n;

	(void)ng;
	(void)id;
	(void)arg;
	if (s->r.mem != NULL) { /* a body from memory: copied */
		struct request *r = &s->r;
		n = r->mem_len - r->mem_off;
		n = n < length ? n : length;
		memcpy(buf, r->mem + r->mem_off, n);
		r->mem_off += n;
		r->sent += n;
		if (r->mem_off == r->mem_len)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (s->r.nparts > 0 && s->r.len == 0)
		return multipart_piece(s, buf, length, flags);
	n = length < H2_PAYLOAD ? length : H2_PAYLOAD;
	if (s->r.len < n)
		n = (size_t)s->r.len;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (n == s->r.len && s->r.nparts == 0)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/*
 * issue 13: userspace TLS reads every payload into obuf, one pread per
 * 16 KiB frame. When nghttp2 asks for one frame of a stream that has more
 * to send, the frames that would follow it in this batch (up to
 * H2_OUT_LOW, within the flow-control windows) are read too, by one
 * preadv into the places their payloads take if the stream's frames come
 * back to back. Each is used only if it does: pf_take checks that the
 * frame is the next one of that stream at that very place. Anything else
 * (another stream's frame, a control frame, a shorter frame, a new
 * batch) drops the rest: it was a read too many, never wrong bytes; a
 * stream whose frames alternate with another's reads no more ahead.
 * 1: the frame's payload was read (it is in obuf), 0: not tried,
 * -1: not in memory (ask aio_ready).
 */
static int pf_read(struct conn *c, struct stream *s, size_t length)
{
	struct h2 *h = c->h2;
	struct request *r = &s->r;
	struct iovec iov[1 + H2_PF_MAX];
	size_t pos = h->olen + 9, end = pos + length;
	uint64_t left = r->len - length;
	int32_t sw, cw;
	int n = 1;
	ssize_t got;

	h->pf_s = NULL;
	if (s->no_pf || c->aio != NULL || r->fd < 0 || r->nparts > 0 ||
	    left == 0 || length < H2_PAYLOAD || end >= H2_OUT_LOW)
		return 0;
	sw = nghttp2_session_get_stream_remote_window_size(h->ng, s->id);
	cw = nghttp2_session_get_remote_window_size(h->ng);
	sw = sw < cw ? sw : cw;
	if (sw <= (int32_t)length)
		return 0;
	if (left > (uint64_t)sw - length) /* it may or may not count this one */
		left = (uint64_t)sw - length;
	iov[0].iov_len = length;
	while (n <= H2_PF_MAX && left > 0 && end < H2_OUT_LOW) {
		size_t k = left < H2_PAYLOAD ? (size_t)left : H2_PAYLOAD;
		if (out_reserve(h, end + 9 + k - h->olen) < 0)
			break;
		h->pf[n - 1].pos = end + 9;
		h->pf[n - 1].len = k;
		h->pf[n - 1].off = r->off + (end + 9 - pos) - 9 * (size_t)n;
		end += 9 + k;
		left -= k;
		n++;
	}
	if (n == 1)
		return 0;
	iov[0].iov_base = h->obuf + pos; /* obuf may have moved meanwhile */
	for (int i = 1; i < n; i++)
		iov[i] = (struct iovec){ h->obuf + h->pf[i - 1].pos,
			h->pf[i - 1].len };
	got = sys_preadv_nowait(r->fd, iov, n, r->off);
	if (got < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
		return 0;
	if (got < (ssize_t)length)
		return -1; /* cold, or shrank: the usual way */
	got -= (ssize_t)length;
	h->pf_n = 0;
	for (int i = 0; i < n - 1 && got > 0; i++) {
		if ((size_t)got < h->pf[i].len)
			h->pf[i].len = (size_t)got;
		got -= (ssize_t)h->pf[i].len;
		h->pf_n++;
	}
	h->pf_at = 0;
	h->pf_s = h->pf_n > 0 ? s : NULL;
	return 1;
}

/* Is this frame's payload already in obuf, read by pf_read? */
static int pf_take(struct h2 *h, struct stream *s, size_t length)
{
	if (h->pf_s != s) {
		/* another stream's frame took the place: they take turns
		 * (RFC 9218 incremental), so reading ahead for that stream
		 * would only read its bytes twice */
		if (h->pf_s != NULL)
			h->pf_s->no_pf = 1;
		h->pf_s = NULL;
		return 0;
	}
	if (h->pf[h->pf_at].pos != h->olen + 9 ||
	    h->pf[h->pf_at].off != s->r.off || h->pf[h->pf_at].len < length) {
		h->pf_s = NULL;
		return 0;
	}
	if (h->pf[h->pf_at].len != length || ++h->pf_at == h->pf_n)
		h->pf_s = NULL; /* a shorter frame: the rest are misplaced */
	return 1;
}

/* A frame's payload: copied into obuf when small or in userspace TLS,
 * else queued as a file range for sendfile. */
static int send_data_cb(nghttp2_session *ng, nghttp2_frame *f,
    const uint8_t *framehd, size_t length, nghttp2_data_source *src, void *arg)
{
	struct conn *c = arg;
	struct h2 *h = c->h2;
	struct stream *s = src->ptr;
	struct request *r = &s->r;
	int copy = !c->mode.ktls_tx || length < H2_COPY_MAX ||
	    r->fbody != NULL; /* issue 13: cached bytes are copied */
	int pf;

	(void)ng;
	(void)f; /* we never ask for padding */
	if (h->nsegs == H2_MAX_SEGS)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (out_reserve(h, 9 + length) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	/* issue 13: read with (or before) the frames that follow it */
	pf = !copy || r->fbody != NULL ? 0
	    : pf_take(h, s, length)    ? 1
	                               : pf_read(c, s, length);
	if (pf > 0) {
		r->off += length;
		r->len -= length;
	}
	/* a copied payload the page cache holds: read and checked at once */
	if (pf > 0 ||
	    (copy && pf == 0 &&
	        aio_read_now(c, r, h->obuf + h->olen + 9, length))) {
		memcpy(h->obuf + h->olen, framehd, 9);
		h->olen += 9 + length;
		r->sent += length;
		goto queued;
	}
	/* not in memory: the I/O threads read it; nghttp2 offers this same
	 * frame again, and until then this connection's writer pauses */
	if (!aio_ready(c, r, length))
		return NGHTTP2_ERR_WOULDBLOCK;
	if (out_append(h, framehd, 9) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (copy) {
		size_t got = 0;
		if (out_reserve(h, length) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		while (got < length) {
			ssize_t n = pread(r->fd, h->obuf + h->olen + got,
			    length - got, (off_t)(r->off + got));
			if (n <= 0) {
				log_error("%s: h2 read of body failed: %s",
				    c->peer,
				    n ? strerror(errno) : "file shrank");
				return NGHTTP2_ERR_CALLBACK_FAILURE;
			}
			got += (size_t)n;
		}
		h->olen += length;
	} else {
		struct seg
		    *g = &h->segs[(h->seg_head + h->nsegs++) % H2_MAX_SEGS];
		g->hdr_at = h->olen - 9;
		g->at = h->olen;
		g->s = s;
		g->off = r->off;
		g->len = length;
		s->segs++;
	}
	r->off += length;
	r->len -= length;
	r->sent += length;
queued:
	/* nghttp2 would go on serializing the whole window in this one
	 * mem_send call (a stalled client's 1 GiB): stop at the mark */
	return h->olen >= H2_OUT_LOW || h->nsegs >= H2_MAX_SEGS
	    ? NGHTTP2_ERR_PAUSE
	    : 0;
}

static void respond(struct conn *c, struct stream *s)
{
	struct request *r = &s->r;
	char status[4], clen[24], lm[40], exp[40], crange[80], retry[12];
	nghttp2_nv nv[16 + KT_ADD_HEADERS_MAX];
	size_t n = 0, date_n;
	const char *date;
	nghttp2_data_provider prd = { .source.ptr = s,
		.read_callback = read_body };
	int file = r->fd >= 0 && (r->status == 200 || r->status == 206);
	int body = r->method != M_HEAD && r->status != 304 && r->clen > 0;
	struct location *l = r->loc;
	/* issue 13: a cached file's 200: the values were formatted once,
	 * with its entry (nghttp2 copies them, so a rebuild cannot hurt) */
	const struct fc_headvals *hv = r->head_fixed != NULL && r->status == 200
	    ? fc_head_vals(r->fce)
	    : NULL;

	add_header_n(nv, &n, ":status", status,
	    (size_t)(date_u64(status, (uint64_t)r->status, 10) - status));
	if (c->cfg->server_tokens)
		add_header_lit(nv, &n, "server", "kttpd");
	date = conn_date(c, &date_n);
	add_header_n(nv, &n, "date", date, date_n);
	if (hv != NULL) {
		add_header_n(nv, &n, "content-type", hv->ctype.p, hv->ctype.n);
		add_header_n(nv, &n, "content-length", hv->clen.p, hv->clen.n);
	} else if (r->status != 304) {
		add_header(nv, &n, "content-type", r->ctype);
		add_header_n(nv, &n, "content-length", clen,
		    (size_t)(date_u64(clen, r->clen, 10) - clen));
	}
	if (file || r->status == 304) {
		if (file)
			add_header_lit(nv, &n, "accept-ranges", "bytes");
		if (hv != NULL) {
			add_header_n(
			    nv, &n, "last-modified", hv->lm.p, hv->lm.n);
			add_header_n(nv, &n, "etag", hv->etag.p, hv->etag.n);
		} else {
			add_header_n(nv, &n, "last-modified", lm,
			    date_format(r->mtime, lm, sizeof(lm)));
			add_header(nv, &n, "etag", r->etag);
		}
		if (r->partial) {
			snprintf(crange, sizeof(crange), "bytes %llu-%llu/%llu",
			    (unsigned long long)r->off,
			    (unsigned long long)(r->off + r->len - 1),
			    (unsigned long long)r->size);
			add_header(nv, &n, "content-range", crange);
		}
		if (r->encoding)
			add_header(nv, &n, "content-encoding", r->encoding);
		if (r->vary)
			add_header_lit(nv, &n, "vary", "accept-encoding");
		if (l && l->cache_control)
			add_header(nv, &n, "cache-control", l->cache_control);
		if (l && l->expires > 0) {
			date_format(time(NULL) + l->expires, exp, sizeof(exp));
			add_header(nv, &n, "expires", exp);
		}
	}
	if (r->status == 416) {
		snprintf(crange, sizeof(crange), "bytes */%llu",
		    (unsigned long long)r->size);
		add_header(nv, &n, "content-range", crange);
	}
	if (r->status == 405)
		add_header_lit(nv, &n, "allow", "GET, HEAD");
	if (r->location)
		add_header(nv, &n, "location", r->location);
	if (r->retry_after > 0) {
		date_u64(retry, (uint64_t)r->retry_after, 10);
		add_header(nv, &n, "retry-after", retry);
	}
	n += headers_h2(c, r, nv + n);
	nghttp2_submit_response(c->h2->ng, s->id, nv, n, body ? &prd : NULL);
}

/* The request's headers are all in: route it and answer. */
static void request(struct conn *c, struct stream *s)
{
	struct request *r = &s->r;

	for (int i = 0; i < (int)(sizeof(s->sp) / sizeof(s->sp[0])); i++) {
		struct span *sp;
		if (s->sp[i].n == 0 || slot_off[i] == 0)
			continue;
		sp = (struct span *)((char *)r + slot_off[i]);
		sp->p = s->arena + s->sp[i].off;
		sp->n = s->sp[i].n;
	}
	if (r->host.p == NULL && s->sp[SP_HOST].n) { /* no :authority */
		r->host.p = s->arena + s->sp[SP_HOST].off;
		r->host.n = s->sp[SP_HOST].n;
	}
	r->method = r->method_str.n == 3 && !memcmp(r->method_str.p, "GET", 3)
	    ? M_GET
	    : r->method_str.n == 4 && !memcmp(r->method_str.p, "HEAD", 4)
	    ? M_HEAD
	    : M_OTHER;
	if (r->status == 0)
		route_request(c, r);
	else
		r->vh = c->vh;
	req_finish(r);
	respond(c, s);
}

/*
 * Rapid reset (CVE-2023-44487): a token bucket of http2_reset_burst
 * RST_STREAMs refilled at http2_reset_rate a second; empty, the
 * connection gets GOAWAY ENHANCE_YOUR_CALM. (nghttp2 has its own bucket,
 * set at twice ours as a backstop; it would answer INTERNAL_ERROR.)
 */
static int rapid_reset(struct conn *c)
{
	struct h2 *h = c->h2;
	int64_t now = date_mono_us();
	double burst = (double)c->cfg->http2_reset_burst;

	if (h->reset_us == 0)
		h->reset_tokens = burst;
	else
		h->reset_tokens += (double)(now - h->reset_us) / 1e6 *
		    (double)c->cfg->http2_reset_rate;
	if (h->reset_tokens > burst)
		h->reset_tokens = burst;
	h->reset_us = now;
	if (h->reset_tokens < 1)
		return 1;
	h->reset_tokens -= 1;
	return 0;
}

/*
 * Graceful GOAWAY in two steps (RFC 9113 6.8, as h2o does): a PING and a
 * notice (GOAWAY, last stream 2^31-1) in one write. A client answers the
 * PING once it has read both, so by the answer every request it sent
 * before it saw the notice is here; the final GOAWAY names the last of
 * them, and they are served. The PING goes first because some clients
 * (python h2) take no frame at all after a GOAWAY. A client that does
 * not answer gets the final GOAWAY KT_H2_NOTICE_MS after the notice.
 */
enum { GOAWAY_NONE, GOAWAY_NOTICE, GOAWAY_FINAL };
static const uint8_t notice_ping[8] = "goaway?"; /* with its NUL */

static void goaway_final(struct conn *c)
{
	struct h2 *h = c->h2;

	h->goaway = GOAWAY_FINAL;
	h->last_id = nghttp2_session_get_last_proc_stream_id(h->ng);
	nghttp2_submit_goaway(
	    h->ng, NGHTTP2_FLAG_NONE, h->last_id, NGHTTP2_NO_ERROR, NULL, 0);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *arg)
{
	struct conn *c = arg;
	struct stream *s;

	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		h2ids_ended(&c->h2->ids, f->hd.stream_id);
	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		if (f->headers.cat != NGHTTP2_HCAT_REQUEST ||
		    !(f->hd.flags & NGHTTP2_FLAG_END_HEADERS))
			break;
		/* a stream the final GOAWAY names is served, even when the
		 * end of its header block comes after that GOAWAY */
		s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
		if (s != NULL &&
		    (c->h2->goaway != GOAWAY_FINAL ||
		        f->hd.stream_id <= c->h2->last_id))
			request(c, s);
		break;
	case NGHTTP2_PING: /* the notice's PING came back: one round trip */
		if ((f->hd.flags & NGHTTP2_FLAG_ACK) &&
		    c->h2->goaway == GOAWAY_NOTICE &&
		    !memcmp(f->ping.opaque_data, notice_ping, 8))
			goaway_final(c);
		break;
	case NGHTTP2_RST_STREAM:
		if (rapid_reset(c))
			nghttp2_session_terminate_session(
			    ng, NGHTTP2_ENHANCE_YOUR_CALM);
		break;
	case NGHTTP2_DATA:
		/* a flood of empty frames costs us and carries nothing */
		if (f->hd.length == 0 &&
		    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
		    ++c->h2->empty_data > 100)
			nghttp2_session_terminate_session(
			    ng, NGHTTP2_ENHANCE_YOUR_CALM);
		break;
	}
	return 0;
}

static int on_stream_close(
    nghttp2_session *ng, int32_t id, uint32_t code, void *arg)
{
	struct conn *c = arg;
	struct stream *s = nghttp2_session_get_stream_user_data(ng, id);

	(void)code;
	if (s == NULL)
		return 0;
	if (--c->h2->nopen == 0)
		h2_busy--;
	s->closed = 1;
	if (s->segs == 0)
		stream_free(c, s);
	return 0;
}

/* ---- the writer ---- */

enum { W_DONE, W_AGAIN, W_ERROR };

static void seg_done(struct conn *c)
{
	struct h2 *h = c->h2;
	struct seg *g = &h->segs[h->seg_head];
	struct stream *s = g->s;

	h->seg_head = (h->seg_head + 1) % H2_MAX_SEGS;
	h->nsegs--;
	if (--s->segs == 0 && s->closed)
		stream_free(c, s);
}

/* Userspace TLS: pack bytes and file ranges into 16 KiB records. */
static int write_packed(struct conn *c)
{
	struct h2 *h = c->h2;

	for (;;) {
		if (c->wpos < c->wlen) {
			/* more: conn_send gathers the records (issue 13) */
			ssize_t n = conn_send(c, c->wbuf + c->wpos,
			    c->wlen - c->wpos,
			    h->opos < h->olen || h->nsegs > 0);
			if (n < 0)
				return n == CONN_AGAIN ? W_AGAIN : W_ERROR;
			c->wpos += (size_t)n;
			continue;
		}
		if (h->opos == h->olen && h->nsegs == 0)
			return W_DONE;
		/* issue 13: bytes with no file range in them go from obuf
		 * itself, not copied into wbuf first: all of them when no
		 * range follows, else whole records up to the range (a retry
		 * after AGAIN finds the same bytes and length: nothing moves
		 * meanwhile); conn_send gathers the records */
		struct seg *g0 = h->nsegs ? &h->segs[h->seg_head] : NULL;
		size_t plain = (g0 ? g0->at : h->olen) - h->opos;
		if (g0 == NULL || plain >= KT_CHUNK) {
			size_t k = g0 ? plain - plain % KT_CHUNK : plain;
			ssize_t n = conn_send(
			    c, h->obuf + h->opos, k, g0 != NULL);
			if (n < 0)
				return n == CONN_AGAIN ? W_AGAIN : W_ERROR;
			h->opos += (size_t)n;
			continue;
		}
		c->wpos = c->wlen = 0;
		if (c->wbuf == NULL && (c->wbuf = malloc(KT_CHUNK)) == NULL)
			return W_ERROR;
		while (
		    c->wlen < KT_CHUNK && (h->opos < h->olen || h->nsegs > 0)) {
			struct seg *g = h->nsegs ? &h->segs[h->seg_head] : NULL;
			size_t upto = g ? g->at : h->olen;
			size_t room = KT_CHUNK - c->wlen;
			if (h->opos < upto) {
				size_t k = upto - h->opos < room
				    ? upto - h->opos
				    : room;
				memcpy(c->wbuf + c->wlen, h->obuf + h->opos, k);
				c->wlen += k;
				h->opos += k;
				continue;
			}
			size_t k = g->len < room ? (size_t)g->len : room;
			ssize_t n = pread(
			    g->s->r.fd, c->wbuf + c->wlen, k, (off_t)g->off);
			if (n <= 0)
				return W_ERROR;
			c->wlen += (size_t)n;
			g->off += (uint64_t)n;
			g->len -= (uint64_t)n;
			if (g->len == 0)
				seg_done(c);
		}
	}
}

/* kTLS TX: bytes by send(), payloads by SSL_sendfile, a frame a record. */
static int write_ktls(struct conn *c)
{
	struct h2 *h = c->h2;

	for (;;) {
		struct seg *g = h->nsegs ? &h->segs[h->seg_head] : NULL;
		ssize_t n;

		if (g == NULL && h->opos == h->olen)
			return W_DONE;
		if (g != NULL && h->opos == g->at) {
			n = conn_sendfile(
			    c, g->s->r.fd, g->off, (size_t)g->len);
			if (n < 0)
				return n == CONN_AGAIN ? W_AGAIN : W_ERROR;
			g->off += (uint64_t)n;
			g->len -= (uint64_t)n;
			if (g->len == 0)
				seg_done(c);
			continue;
		}
		/* up to a frame header: end the record; the header: more */
		size_t upto = g ? (h->opos < g->hdr_at ? g->hdr_at : g->at)
		                : h->olen;
		n = conn_send(c, h->obuf + h->opos, upto - h->opos,
		    g != NULL && upto == g->at);
		if (n < 0)
			return n == CONN_AGAIN ? W_AGAIN : W_ERROR;
		h->opos += (size_t)n;
	}
}

/* Serialize frames and write until done or blocked. */
static int flush(struct conn *c)
{
	struct h2 *h = c->h2;

	for (;;) {
		int w = c->mode.ktls_tx ? write_ktls(c) : write_packed(c);
		if (w != W_DONE)
			return w;
		h->opos = h->olen = 0;
		h->pf_s = NULL; /* what was read ahead is overwritten */
		if (!nghttp2_session_want_write(h->ng))
			return W_DONE;
		/* fill up to the low-water mark, then write it */
		while (h->olen < H2_OUT_LOW && h->nsegs < H2_MAX_SEGS) {
			const uint8_t *data;
			ssize_t n = nghttp2_session_mem_send(h->ng, &data);
			if (n < 0)
				return W_ERROR;
			if (n == 0)
				break;
			if (out_append(h, data, (size_t)n) < 0)
				return W_ERROR;
		}
		if (h->olen == 0 && h->nsegs == 0)
			return W_DONE;
	}
}

static int recv_input(struct conn *c)
{
	char buf[KT_CHUNK];

	for (;;) {
		ssize_t n = conn_recv(c, buf, sizeof(buf));
		if (n == CONN_AGAIN)
			return 0;
		if (n <= 0)
			return -1;
		if (nghttp2_session_mem_recv(
		        c->h2->ng, (uint8_t *)buf, (size_t)n) < 0)
			return -1;
	}
}

static void h2_shutdown(struct conn *c);

/* Decide what to wait for, and how long, after each turn. */
static void h2_next(struct conn *c, int w)
{
	struct h2 *h = c->h2;
	short what = EV_READ;

	if (w == W_ERROR) {
		conn_close(c);
		return;
	}
	if (!nghttp2_session_want_read(h->ng) &&
	    !nghttp2_session_want_write(h->ng) && w == W_DONE) {
		conn_finish(c, 1);
		return;
	}
	if (w == W_AGAIN) {
		what |= EV_WRITE;
		conn_deadline(c, c->cfg->send_timeout);
	} else if (h->goaway == GOAWAY_NOTICE &&
	    conn_now_us(c) >= h->notice_end_us) {
		goaway_final(c); /* no PING back in time */
		h2_next(c, flush(c));
		return;
	} else if (h->nopen == 0 && h->goaway != GOAWAY_NOTICE) {
		if (c->w->stopping || h->goaway) { /* GOAWAY went out: done */
			conn_finish(c, 1);
			return;
		}
		if (health_failing() && /* draining: after a stream, GOAWAY */
		    nghttp2_session_get_last_proc_stream_id(h->ng) > 0) {
			h2_shutdown(c);
			return;
		}
		conn_deadline(c, c->cfg->keepalive_timeout);
		free(c->wbuf); /* idle: hold no buffers */
		c->wbuf = NULL;
		free(h->obuf);
		h->obuf = NULL;
		h->ocap = 0;
	} else {
		/* a stalled window or a stream that waits on the client; or
		 * the notice, waiting for its PING: that ends on time */
		conn_deadline(c, c->cfg->send_timeout);
		if (h->goaway == GOAWAY_NOTICE &&
		    c->deadline_us > h->notice_end_us)
			c->deadline_us = h->notice_end_us;
	}
	conn_wait(c, what);
}

/* Idle or stalled past the deadline: say so, then go. */
static void h2_timeout(struct conn *c)
{
	if (c->h2->goaway == GOAWAY_NOTICE &&
	    c->deadline_us <= c->h2->notice_end_us) {
		h2_next(c, W_DONE); /* time is up: h2_next ends the notice */
		return;
	}
	nghttp2_session_terminate_session(c->h2->ng, NGHTTP2_NO_ERROR);
	flush(c);
	conn_finish(c, 0);
}

/* Readable or writable (timeouts go to h2_timeout). */
static void h2_io(struct conn *c, short what)
{
	int w;

	(void)what; /* read what came, write what can go: both, each turn */
	if (recv_input(c) < 0) {
		/* flush what nghttp2 queued (GOAWAY), then close */
		flush(c);
		conn_close(c);
		return;
	}
	w = flush(c);
	h2_next(c, w);
}

int h2_start(struct conn *c)
{
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		    (uint32_t)c->cfg->http2_max_streams },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
		    (uint32_t)c->cfg->max_request_head },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		/* issue 13: no RFC 7540 priority tree (RFC 9113 5.3.2
		 * deprecates it): nghttp2 schedules by RFC 9218 urgency,
		 * a stream costs no tree insertion and a closed one is not
		 * kept for the tree */
		{ NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
	};
	struct h2 *h = calloc(1, sizeof(*h));
	int rv = -1;

	if (h == NULL || nghttp2_session_callbacks_new(&cb) != 0 ||
	    nghttp2_option_new(&opt) != 0)
		goto fail;
	TAILQ_INIT(&h->streams);
	nghttp2_session_callbacks_set_on_begin_frame_callback(
	    cb, on_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(
	    cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cb, on_stream_close);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	/* rapid reset (CVE-2023-44487): a bucket of RST_STREAMs */
	nghttp2_option_set_stream_reset_rate_limit(opt,
	    2 * (uint64_t)c->cfg->http2_reset_burst,
	    2 * (uint64_t)c->cfg->http2_reset_rate);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_no_closed_streams(opt, 1);
	if (nghttp2_session_server_new3(&h->ng, cb, c, opt, H2_MEM) != 0)
		goto fail;
	c->h2 = h;
	h = NULL;
	if (nghttp2_submit_settings(c->h2->ng, NGHTTP2_FLAG_NONE, iv,
	        sizeof(iv) / sizeof(iv[0])) != 0)
		goto fail;
	rv = 0;
fail:
	if (cb != NULL)
		nghttp2_session_callbacks_del(cb);
	if (opt != NULL)
		nghttp2_option_del(opt);
	free(h);
	return rv;
}

/* Shutdown, reload or drain: GOAWAY in two steps, open streams finish. */
static void h2_shutdown(struct conn *c)
{
	struct h2 *h = c->h2;

	if (h->goaway != GOAWAY_NONE)
		return;
	h->goaway = GOAWAY_NOTICE;
	h->notice_end_us = conn_now_us(c) + KT_H2_NOTICE_MS * 1000;
	if (nghttp2_submit_ping(h->ng, NGHTTP2_FLAG_NONE, notice_ping) != 0 ||
	    nghttp2_submit_shutdown_notice(h->ng) != 0)
		goaway_final(c);
	h2_next(c, flush(c));
}

static void h2_free(struct conn *c)
{
	struct h2 *h = c->h2;
	struct stream *s;

	if (h == NULL)
		return;
	nghttp2_session_del(h->ng); /* may call on_stream_close: first */
	if (h->nopen > 0)
		h2_busy--;
	if (h2_busy == 0)
		h2_mem_trim();
	while ((s = TAILQ_FIRST(&h->streams)) != NULL)
		stream_free(c, s);
	free(h->obuf);
	free(h);
	c->h2 = NULL;
}

const struct conn_proto h2_proto = {
	.name = "h2",
	.start = h2_start,
	.io = h2_io,
	.timeout = h2_timeout,
	.shutdown = h2_shutdown,
	.free = h2_free,
};
