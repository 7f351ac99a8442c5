/*
 * fuzz_http2: HTTP/2 frames (preface, SETTINGS, HEADERS/HPACK,
 * CONTINUATION, DATA, RST_STREAM, WINDOW_UPDATE, GOAWAY...) fed to the
 * real nghttp2 session of http2.c through a socketpair connection.
 * The first input byte picks the writer: bit 0 set = the kTLS TX writer
 * (send + sendfile per DATA frame), clear = the userspace one (packed
 * 16 KiB writes). The rest is what the client sends.
 */
#include "fuzz_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fz_run_conn(data + 1, size - 1, 1, data[0] & 1);
	return 0;
}
