/*
 * h2ids.c: which client stream ids an HTTP/2 connection has opened, so
 * that HEADERS opening a stream below one already opened is a connection
 * error (RFC 9113 5.1.1: opening a stream implicitly closes every idle
 * stream with a lower id; such an id is "unexpected": PROTOCOL_ERROR).
 *
 * nghttp2 ignores these HEADERS by design (it keeps no record of old
 * ids), and the client waits for an answer that never comes. Client ids
 * rise, so a window of bits below the highest id opened tells the ids
 * that were opened (trailers on them, or frames racing our RST_STREAM,
 * stay nghttp2's business) from those skipped over (never opened: an
 * error). Below the window an id with no stream in nghttp2 is taken as
 * never opened: only trailers sent after H2IDS_WINDOW newer streams, on
 * a stream we reset, would be refused wrongly.
 */
#include "kttpd.h"

#include <string.h>

/* The window is a ring of bits, one per odd id: bit (id / 2) mod
 * H2IDS_WINDOW, meaningful for the H2IDS_WINDOW ids up to max. */
#define BIT(id)   (((uint32_t)(id) >> 1) & (H2IDS_WINDOW - 1))
#define GET(w, b) ((w)[(b) / 64] >> ((b) % 64) & 1)

static void clear(struct h2ids *t, uint32_t b)
{
	t->seen[b / 64] &= ~((uint64_t)1 << (b % 64));
	t->ended[b / 64] &= ~((uint64_t)1 << (b % 64));
}

/* HEADERS on stream id; open: nghttp2 still has a stream for it.
 * 0: nghttp2's business; -1: never opened (PROTOCOL_ERROR);
 * H2IDS_CLOSED: opened and ended by the client, now gone from nghttp2
 * (it keeps no closed streams): a new HEADERS there is the client's own
 * error whatever raced it (RFC 9113 5.1, half-closed remote / closed),
 * STREAM_CLOSED as nghttp2 says while it still holds the stream. */
int h2ids_check(struct h2ids *t, int32_t id, int open)
{
	uint32_t d, b;

	if (id <= 0 || (id & 1) == 0)
		return -1; /* clients open odd ids; we never push */
	if (id > t->max) {
		d = (uint32_t)(id - t->max) / 2;
		if (t->max == 0 || d >= H2IDS_WINDOW) {
			memset(t->seen, 0, sizeof(t->seen));
			memset(t->ended, 0, sizeof(t->ended));
		} else /* the ids skipped over, and id: not opened yet */
			for (int64_t k = (int64_t)t->max + 2; k <= id; k += 2)
				clear(t, BIT((uint32_t)k));
		b = BIT(id);
		t->seen[b / 64] |= (uint64_t)1 << (b % 64);
		t->max = id;
		return 0;
	}
	if (open)
		return 0;
	d = (uint32_t)(t->max - id) / 2;
	b = BIT(id);
	if (d < H2IDS_WINDOW && GET(t->seen, b))
		return GET(t->ended, b) ? H2IDS_CLOSED : 0;
	return -1;
}

/* The client ended stream id (END_STREAM on its HEADERS or DATA). */
void h2ids_ended(struct h2ids *t, int32_t id)
{
	uint32_t d;

	if (id <= 0 || id > t->max)
		return;
	d = (uint32_t)(t->max - id) / 2;
	if (d < H2IDS_WINDOW)
		t->ended[BIT(id) / 64] |= (uint64_t)1 << (BIT(id) % 64);
}
