/*
 * unit_h2ids.c: h2ids_check, the record of client stream ids opened.
 */
#include "unit.h"

int main(void)
{
	struct h2ids t = { 0 };

	CHECK_INT("first_1", h2ids_check(&t, 1, 0), 0);
	CHECK_INT("even", h2ids_check(&t, 2, 0), -1);
	CHECK_INT("zero", h2ids_check(&t, 0, 0), -1);
	CHECK_INT("skip_to_7", h2ids_check(&t, 7, 0), 0);
	CHECK_INT("skipped_3", h2ids_check(&t, 3, 0), -1);
	CHECK_INT("skipped_5_open_in_ng", h2ids_check(&t, 5, 1), 0);
	CHECK_INT("opened_1_again", h2ids_check(&t, 1, 0), 0);
	CHECK_INT("opened_7_again", h2ids_check(&t, 7, 0), 0);
	/* ended by the client and gone from nghttp2: STREAM_CLOSED */
	h2ids_ended(&t, 7);
	h2ids_ended(&t, 3); /* never opened: stays a PROTOCOL_ERROR */
	CHECK_INT("ended_7", h2ids_check(&t, 7, 0), H2IDS_CLOSED);
	CHECK_INT("ended_7_open_in_ng", h2ids_check(&t, 7, 1), 0);
	CHECK_INT("ended_skipped_3", h2ids_check(&t, 3, 0), -1);
	/* across a word boundary of the window: 7 + 2 * 70 = 147 */
	CHECK_INT("jump_147", h2ids_check(&t, 147, 0), 0);
	CHECK_INT("kept_ended_7", h2ids_check(&t, 7, 0), H2IDS_CLOSED);
	CHECK_INT("kept_1", h2ids_check(&t, 1, 0), 0);
	CHECK_INT("skipped_9", h2ids_check(&t, 9, 0), -1);
	CHECK_INT("skipped_145", h2ids_check(&t, 145, 0), -1);
	/* every id opened in turn: each stays known within the window */
	for (int32_t id = 149; id < 149 + 2 * 300; id += 2)
		if (h2ids_check(&t, id, 0) != 0)
			FAIL(tname("run_%d", id), "refused a rising id");
	CHECK_INT("run_back_1", h2ids_check(&t, 747 - 2 * 255, 0), 0);
	CHECK_INT("run_below_window", h2ids_check(&t, 747 - 2 * 256, 0), -1);
	CHECK_INT("below_window_open", h2ids_check(&t, 747 - 2 * 256, 1), 0);
	/* a jump past the whole window forgets it */
	CHECK_INT("far_jump", h2ids_check(&t, 100001, 0), 0);
	CHECK_INT("after_far_jump", h2ids_check(&t, 747, 0), -1);
	CHECK_INT("max_id", h2ids_check(&t, 0x7fffffff, 0), 0);
	CHECK_INT("max_id_again", h2ids_check(&t, 0x7fffffff, 0), 0);
	return unit_done();
}
