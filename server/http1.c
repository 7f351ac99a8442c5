/*
 * http1.c: HTTP/1.x on a connection: read a request head, parse it with
 * http-parser, hand it to the shared request code, write the response
 * head, let body.c send the body, then keep-alive or close.
 *
 * The head is collected whole before http-parser sees it. The collecting
 * scan is where the strict rules live that http-parser is lenient about:
 * bare LF or CR, NUL, obs-fold. Whatever follows the head (a body we do
 * not read, or pipelined requests) waits in the buffer; a request with a
 * body ends the connection after its response, so its bytes are never
 * taken for a request (no smuggling).
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <event2/event.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RBUF_START 2048

struct h1p {
	http_parser p;
	struct conn *c;
	struct request *r;
	int status; /* our own verdict, beats http-parser's */
	long nfields;
	struct span field;  /* current header name */
	struct span *value; /* where its value goes, or NULL */
	struct span skip;
	int in_field, has_cl, has_te;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct h1p *h = p->data;

	if (h->r->target.p == NULL)
		h->r->target.p = at;
	h->r->target.n += len;
	if (h->r->target.n > (size_t)h->c->cfg->max_uri) {
		h->status = 414;
		return -1;
	}
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct h1p *h = p->data;

	if (h->in_field && at == h->field.p + h->field.n) {
		h->field.n += len; /* the same name, delivered in pieces */
		return 0;
	}
	if (++h->nfields > h->c->cfg->max_headers) {
		h->status = 431;
		return -1;
	}
	h->field.p = at;
	h->field.n = len;
	h->in_field = 1;
	return 0;
}

/* s[0..n) is lower (lowercase ASCII, n bytes) in any case: what
 * strncasecmp says in the C locale, without its call (issue 13) */
static int lower_eq(const char *lower, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)lower[i],
		              b = (unsigned char)s[i];
		if (a != b && (a < 'a' || a > 'z' || a != (b | 0x20)))
			return 0;
	}
	return 1;
}

static struct span *value_slot(struct h1p *h)
{
	static const struct {
		const char *name;
		size_t len, off;
	} known[] = {
#define K(n, f) { n, sizeof(n) - 1, offsetof(struct request, f) }
		K("host", host),
		K("if-none-match", if_none_match),
		K("if-modified-since", if_modified_since),
		K("range", range),
		K("if-range", if_range),
		K("user-agent", user_agent),
		K("referer", referer),
		K("accept-encoding", accept_encoding),
#undef K
	};
	struct span *slot;

	if (h->field.n == 17 && lower_eq("transfer-encoding", h->field.p, 17))
		h->has_te = 1; /* http-parser checks it ends in chunked */
	if (h->field.n == 14 && lower_eq("content-length", h->field.p, 14))
		h->has_cl = 1;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (known[i].len != h->field.n ||
		    !lower_eq(known[i].name, h->field.p, h->field.n))
			continue;
		slot = (struct span *)((char *)h->r + known[i].off);
		if (slot->p != NULL) {
			if (i == 0)
				h->status = 400; /* two Host headers */
			return NULL; /* keep the first of the others */
		}
		return slot;
	}
	return NULL;
}

/* RFC 9110 5.6.2 tchar; and the bytes a field value may not hold: CTLs
 * but HTAB (5.5). Tables, not tests per byte (issue 13) */
static const unsigned char tchar[256] = {
	['0' ... '9'] = 1,
	['A' ... 'Z'] = 1,
	['a' ... 'z'] = 1,
	['!'] = 1,
	['#'] = 1,
	['$'] = 1,
	['%'] = 1,
	['&'] = 1,
	['\''] = 1,
	['*'] = 1,
	['+'] = 1,
	['-'] = 1,
	['.'] = 1,
	['^'] = 1,
	['_'] = 1,
	['`'] = 1,
	['|'] = 1,
	['~'] = 1,
};
static const unsigned char value_ctl[256] = {
	[0x00 ... 0x08] = 1,
	[0x0a ... 0x1f] = 1,
	[0x7f] = 1,
};

static int is_token(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!tchar[(unsigned char)s[i]])
			return 0;
	return n > 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct h1p *h = p->data;

	for (size_t i = 0; i < len; i++)
		if (value_ctl[(unsigned char)at[i]]) {
			h->status = 400;
			return -1;
		}
	if (h->in_field) {
		/* a name is a token up to its colon: "Host : x" is refused */
		if (h->field.p[h->field.n] != ':' ||
		    !is_token(h->field.p, h->field.n)) {
			h->status = 400;
			return -1;
		}
		h->in_field = 0;
		h->value = value_slot(h);
		if (h->status)
			return -1;
		if (h->value == NULL)
			h->value = &h->skip;
		h->value->p = at;
		h->value->n = len;
		return 0;
	}
	h->value->n += len;
	return 0;
}

static void trim(struct span *s)
{
	while (s->n > 0 && (s->p[s->n - 1] == ' ' || s->p[s->n - 1] == '\t'))
		s->n--;
	while (s->n > 0 && (s->p[0] == ' ' || s->p[0] == '\t')) {
		s->p++;
		s->n--;
	}
}

static int on_headers_complete(http_parser *p)
{
	struct h1p *h = p->data;
	struct request *r = h->r;

	if (h->has_te && h->has_cl) {
		h->status = 400; /* the classic smuggling pair */
		return -1;
	}
	if (h->has_te && !(p->flags & F_CHUNKED)) {
		h->status = 501; /* a transfer coding we do not know */
		return -1;
	}
	r->http_major = p->http_major;
	r->http_minor = p->http_minor;
	r->method = p->method == HTTP_GET ? M_GET
	    : p->method == HTTP_HEAD      ? M_HEAD
	                                  : M_OTHER;
	r->has_body = h->has_te || (p->flags & F_CHUNKED) ||
	    ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
	h->c->keepalive = http_should_keep_alive(p) ? 1 : 0;
	trim(&r->host);
	trim(&r->if_none_match);
	trim(&r->if_modified_since);
	trim(&r->range);
	trim(&r->if_range);
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
};

/*
 * The request line is exactly "method SP target SP HTTP/d.d": http-parser
 * lets more by (runs of spaces, other version spellings).
 */
static int version_ok(const char *head, size_t len)
{
	const char *eol = memchr(head, '\r', len), *v, *sp;

	if (eol == NULL || eol - head < 9)
		return 0;
	v = eol - 9; /* " HTTP/d.d": the second space */
	if (memcmp(v, " HTTP/", 6) != 0 || eol[-3] < '0' || eol[-3] > '9' ||
	    eol[-2] != '.' || eol[-1] < '0' || eol[-1] > '9')
		return 0;
	/* the first: one space before v, not first, not next to it (issue
	 * 13: memchr, not a loop over the line's bytes) */
	sp = memchr(head, ' ', (size_t)(v - head));
	return sp != NULL && sp != head && sp + 1 < v &&
	    memchr(sp + 1, ' ', (size_t)(v - sp - 1)) == NULL;
}

/* Parse the head in c->rbuf[0..len). 0, or the status to answer with. */
static int parse(struct conn *c, struct request *r, size_t len)
{
	struct h1p h = { .c = c, .r = r };
	const char *sp = memchr(c->rbuf, ' ', len);
	size_t n;

	r->method_str.p = c->rbuf;
	r->method_str.n = sp ? (size_t)(sp - c->rbuf) : 0;
	http_parser_init(&h.p, HTTP_REQUEST);
	h.p.data = &h;
	n = http_parser_execute(&h.p, &settings, c->rbuf, len);
	if (h.status)
		return h.status;
	if (HTTP_PARSER_ERRNO(&h.p) != HPE_PAUSED) {
		log_debug("%s: bad request: %s", c->peer,
		    http_errno_name(HTTP_PARSER_ERRNO(&h.p)));
		return 400;
	}
	if (n + 1 < len) /* paused on the head's last byte */
		return 400;
	if (!version_ok(c->rbuf, len))
		return 400;
	if (r->http_major != 1)
		return 505;
	if (r->http_minor == 1 && r->host.p == NULL)
		return 400;
	return 0;
}

/* The bytes scan() has a rule about; what is between them is skipped in
 * a tight loop (issue 13: a per-byte test of every rule cost ~14
 * instructions a byte, ~550 a request) */
static const unsigned char head_special[256] = {
	['\0'] = 1,
	['\n'] = 1,
	['\r'] = 1,
};

/*
 * Look for the end of the head from where the last scan stopped. Returns
 * the head's length, 0 for "need more", or -status.
 */
static ssize_t scan(struct conn *c)
{
	const unsigned char *b = (const unsigned char *)c->rbuf;
	size_t n;

	/* empty lines before a request line are allowed (RFC 9112 2.2) */
	while (
	    c->scanned == 0 && c->rlen >= 2 && b[0] == '\r' && b[1] == '\n') {
		memmove(c->rbuf, c->rbuf + 2, c->rlen - 2);
		c->rlen -= 2;
	}
	n = c->rlen;
	for (size_t i = c->scanned; i < n; i++) {
		unsigned char ch = b[i];
		/* no rule is about a byte that is not special and follows
		 * one that is not: skip the run of them */
		if (!head_special[ch] && (i == 0 || !head_special[b[i - 1]])) {
			while (i + 1 < n && !head_special[b[i + 1]])
				i++;
			continue;
		}
		if (ch == '\n') {
			if (i == 0 || b[i - 1] != '\r')
				return -400; /* bare LF */
			if (i >= 3 && b[i - 2] == '\n' && b[i - 3] == '\r')
				return (ssize_t)i + 1;
		} else if (i > 0 && b[i - 1] == '\r')
			return -400; /* bare CR */
		else if (ch == '\0')
			return -400;
		else if ((ch == ' ' || ch == '\t') && i > 0 && b[i - 1] == '\n')
			return -400; /* obs-fold */
	}
	c->scanned = n;
	return 0;
}

static int too_large(struct conn *c)
{
	return memchr(c->rbuf, '\n', c->rlen) == NULL ? 414 : 431;
}

static int rbuf_grow(struct conn *c)
{
	size_t max = (size_t)c->cfg->max_request_head;
	size_t cap = c->rcap ? c->rcap * 2 : RBUF_START;
	char *nb;

	if (c->rcap >= max)
		return -1;
	if (cap > max)
		cap = max;
	if (c->rbuf == NULL && cap == RBUF_START && c->w->spare_rbuf) {
		c->rbuf = c->w->spare_rbuf; /* issue 13: no malloc */
		c->w->spare_rbuf = NULL;
		c->rcap = cap;
		return 0;
	}
	if ((nb = realloc(c->rbuf, cap)) == NULL)
		return -1;
	c->rbuf = nb;
	c->rcap = cap;
	return 0;
}

static void append(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*n >= cap)
		return;
	va_start(ap, fmt);
	r = vsnprintf(buf + *n, cap - *n, fmt, ap);
	va_end(ap);
	*n += r < 0 ? 0 : (size_t)r;
}

/* A fixed string: the common head fields without vsnprintf (issue 13).
 * Like append, *n passes cap when it does not fit. */
static void put(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n < cap && len < cap - *n)
		memcpy(buf + *n, s, len);
	*n += len;
}
#define PUT(buf, cap, n, lit) put(buf, cap, n, lit, sizeof(lit) - 1)

static void put_status(char *buf, size_t cap, size_t *n, int status)
{
	char line[64], *p = line;
	const char *reason;
	size_t rn;

	if (status == 200) { /* issue 13: the usual one, no formatting */
		PUT(buf, cap, n, "HTTP/1.1 200 OK\r\n");
		return;
	}
	reason = req_reason(status);
	rn = strlen(reason);
	memcpy(p, "HTTP/1.1 ", 9);
	p = date_u64(p + 9, (uint64_t)(status > 0 ? status : 0), 10);
	*p++ = ' ';
	if (rn > sizeof(line) - (size_t)(p - line) - 2)
		rn = sizeof(line) - (size_t)(p - line) - 2;
	memcpy(p, reason, rn);
	p += rn;
	*p++ = '\r';
	*p++ = '\n';
	put(buf, cap, n, line, (size_t)(p - line));
}

static void h1_write(struct conn *c);

/* Build the response head in c->wbuf, then start sending. */
static void respond(struct conn *c)
{
	struct request *r = c->req;
	char date[40];
	size_t n = 0, cap = KT_CHUNK;
	int file = r->fd >= 0 && (r->status == 200 || r->status == 206);
	int body = r->method != M_HEAD && r->status != 304;
	struct location *l = r->loc;

	/* issue 13: a body from the cache leaves with its head in one write */
	if (file && body && r->fbody != NULL && r->nparts == 0 &&
	    r->len + KT_HEAD_ROOM > cap)
		cap = (size_t)r->len + KT_HEAD_ROOM;
	if (c->wbuf == NULL && cap == KT_CHUNK && c->w->spare_wbuf) {
		c->wbuf = c->w->spare_wbuf; /* issue 13: no malloc */
		c->w->spare_wbuf = NULL;
	} else if (c->wbuf == NULL || cap > KT_CHUNK) {
		char *nb = realloc(c->wbuf, cap);
		if (nb == NULL) {
			conn_close(c);
			return;
		}
		c->wbuf = nb;
	}
	put_status(c->wbuf, cap, &n, r->status);
	if (c->cfg->server_tokens)
		PUT(c->wbuf, cap, &n, "Server: kttpd\r\n");
	PUT(c->wbuf, cap, &n, "Date: ");
	{
		size_t dn;
		const char *d = conn_date(c, &dn);
		put(c->wbuf, cap, &n, d, dn);
	}
	PUT(c->wbuf, cap, &n, "\r\n");
	if (r->head_fixed != NULL && r->status == 200 &&
	    n + r->head_fixed_len < cap) { /* issue 13: built once per file */
		memcpy(c->wbuf + n, r->head_fixed, r->head_fixed_len);
		n += r->head_fixed_len;
	} else if (r->status != 304)
		append(c->wbuf, cap, &n,
		    "Content-Type: %s\r\nContent-Length: %llu\r\n", r->ctype,
		    (unsigned long long)r->clen);
	if ((file || r->status == 304) &&
	    (r->head_fixed == NULL || r->status != 200)) {
		date_format(r->mtime, date, sizeof(date));
		append(c->wbuf, cap, &n, "%sLast-Modified: %s\r\nETag: %s\r\n",
		    file ? "Accept-Ranges: bytes\r\n" : "", date, r->etag);
	}
	if (file || r->status == 304) {
		if (r->partial)
			append(c->wbuf, cap, &n,
			    "Content-Range: bytes %llu-%llu/%llu\r\n",
			    (unsigned long long)r->off,
			    (unsigned long long)(r->off + r->len - 1),
			    (unsigned long long)r->size);
		if (r->encoding)
			append(c->wbuf, cap, &n, "Content-Encoding: %s\r\n",
			    r->encoding);
		if (r->vary)
			append(c->wbuf, cap, &n, "Vary: Accept-Encoding\r\n");
		if (l && l->cache_control)
			append(c->wbuf, cap, &n, "Cache-Control: %s\r\n",
			    l->cache_control);
		if (l && l->expires > 0) {
			date_format(
			    time(NULL) + l->expires, date, sizeof(date));
			append(c->wbuf, cap, &n, "Expires: %s\r\n", date);
		}
	}
	if (r->status == 416)
		append(c->wbuf, cap, &n, "Content-Range: bytes */%llu\r\n",
		    (unsigned long long)r->size);
	if (r->status == 405)
		append(c->wbuf, cap, &n, "Allow: GET, HEAD\r\n");
	if (r->location)
		append(c->wbuf, cap, &n, "Location: %s\r\n", r->location);
	if (r->retry_after > 0)
		append(c->wbuf, cap, &n, "Retry-After: %d\r\n", r->retry_after);
	n = headers_h1(c, r, c->wbuf, cap, n);
	if (!c->keepalive)
		PUT(c->wbuf, cap, &n, "Connection: close\r\n");
	else if (r->http_minor == 0)
		PUT(c->wbuf, cap, &n, "Connection: keep-alive\r\n");
	PUT(c->wbuf, cap, &n, "\r\n");
	if (n >= cap) { /* only a huge Location can do this */
		log_error("%s: response head too large", c->peer);
		conn_close(c);
		return;
	}
	c->wlen = r->head_len = n;
	c->wpos = 0;
	if (!body || !file) { /* a memory body, if any, is not a file's */
		r->len = 0;
		r->nparts = 0;
	}
	if (!body)
		r->mem_off = r->mem_len;
	c->state = CS_WRITE;
	conn_deadline(c, c->cfg->send_timeout);
	/* a small body that the page cache holds: read with the head */
	if (r->len > 0 && r->len <= cap - n && r->nparts == 0) {
		size_t len = (size_t)r->len;
		if (aio_read_now(c, r, c->wbuf + n, len))
			c->wlen += len;
	}
	/* a cold file: wait before the head, so that neither the pread
	 * below nor a head sent with MSG_MORE waits on the disk */
	if (r->len > 0 &&
	    !aio_ready(c, r, r->len < KT_CHUNK ? r->len : KT_CHUNK)) {
		c->state = CS_AIO;
		conn_sleep(c);
		return;
	}
	if (body_fill(c, cap - n) < 0) {
		conn_close(c);
		return;
	}
	/* the send deadline set above stands: the loop's clock is the
	 * same until this callback returns */
	h1_write(c);
}

/* A complete head of len bytes is in c->rbuf. */
static void request(struct conn *c, size_t len, int status)
{
	struct request *r = c->w->spare_req;

	if (r != NULL) { /* issue 13: the worker's last one, no calloc */
		c->w->spare_req = NULL;
		memset(r, 0, sizeof(*r));
	} else
		r = calloc(1, sizeof(*r));
	if (r == NULL) {
		conn_close(c);
		return;
	}
	r->fd = -1;
	r->http_major = r->http_minor = 1;
	r->start_us = date_mono_us();
	r->vh = c->vh;
	c->req = r;
	c->head_len = len;
	c->nreq++;
	if (status == 0)
		status = parse(c, r, len);
	if (status == 0)
		route_request(c, r);
	else
		r->status = status;
	req_finish(r);
	/* after a malformed request we cannot trust where the next starts */
	if (r->has_body || r->status == 400 || r->status == 414 ||
	    r->status == 431 || r->status == 501 || r->status == 505 ||
	    c->w->stopping || health_failing() ||
	    c->nreq >= (unsigned)c->cfg->keepalive_requests ||
	    c->cfg->keepalive_timeout == 0)
		c->keepalive = 0;
	respond(c);
}

static void h1_read(struct conn *c)
{
	for (;;) {
		ssize_t n = c->rbuf ? scan(c) : 0;

		if (n != 0) {
			request(c, n > 0 ? (size_t)n : c->rlen,
			    n > 0 ? 0 : (int)-n);
			return;
		}
		if (c->rlen == c->rcap && rbuf_grow(c) < 0) {
			request(c, c->rlen, too_large(c));
			return;
		}
		n = conn_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n > 0) {
			if (c->rlen == 0) /* a request starts: its head's clock
			                   */
				conn_deadline(c, c->cfg->header_timeout);
			c->rlen += (size_t)n;
			continue;
		}
		if (n == CONN_AGAIN) {
			conn_wait(c, c->want_write ? EV_WRITE : EV_READ);
			return;
		}
		if (n == CONN_EOF) /* close_notify (or FIN): answer it with */
			conn_finish(c, 0); /* ours, RFC 8446 6.1, 5246 7.2.1 */
		else
			conn_close(c); /* error between or inside heads */
		return;
	}
}

/* The response went out: log it, then the next request or the close. */
static void done(struct conn *c)
{
	struct request *r = c->req;
	int linger = r->has_body || r->status >= 400;

	req_log(c, r);
	if (c->w->spare_req == NULL) {
		req_release(r); /* issue 13: kept for the next request */
		c->w->spare_req = r;
	} else
		req_free(r);
	c->req = NULL;
	c->rlen -= c->head_len;
	memmove(c->rbuf, c->rbuf + c->head_len, c->rlen);
	c->head_len = 0;
	c->scanned = 0;
	if (!c->keepalive) {
		conn_finish(c, linger || c->rlen > 0);
		return;
	}
	c->state = CS_READ;
	if (c->rlen > 0) { /* pipelined */
		conn_deadline(c, c->cfg->header_timeout);
		h1_read(c);
		return;
	}
	/* idle: hold no buffers (the worker keeps one of each for the
	 * next request of any connection) */
	if (c->w->spare_rbuf == NULL && c->rcap == RBUF_START)
		c->w->spare_rbuf = c->rbuf;
	else
		free(c->rbuf);
	if (c->w->spare_wbuf == NULL && c->wbuf != NULL)
		c->w->spare_wbuf = c->wbuf;
	else
		free(c->wbuf);
	c->rbuf = c->wbuf = NULL;
	c->rcap = 0;
	conn_deadline(c, c->cfg->keepalive_timeout);
	if (c->ssl && tls_pending(c))
		h1_read(c);
	else
		conn_wait(c, EV_READ);
}

static void h1_write(struct conn *c)
{
	switch (body_send(c)) {
	case BODY_DONE: done(c); break;
	case BODY_AGAIN_WRITE: conn_wait(c, EV_WRITE); break;
	case BODY_AGAIN_READ: conn_wait(c, EV_READ); break;
	case BODY_AGAIN_AIO:
		c->state = CS_AIO;
		conn_sleep(c);
		break;
	case BODY_ERROR: conn_close(c); break;
	}
}

/* conn.c calls us in our states: reading a head, writing a response, and
 * waiting for the readahead pool (only its completion wakes CS_AIO: the
 * connection sleeps on no socket meanwhile). */
static void h1_io(struct conn *c, short what)
{
	(void)what;
	switch (c->state) {
	case CS_READ: h1_read(c); break;
	case CS_AIO:
		c->state = CS_WRITE;
		h1_write(c);
		break;
	default: h1_write(c);
	}
}

static void h1_free(struct conn *c)
{
	if (c->req != NULL)
		req_free(c->req);
	c->req = NULL;
}

const struct conn_proto h1_proto = {
	.name = "http/1.1",
	.io = h1_io,
	.free = h1_free,
};
