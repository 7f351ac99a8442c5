/*
 * fuzz_http1: bytes from the network on a plain HTTP/1.x connection:
 * head scan, http-parser, limits, route_request (target, Host, path),
 * file_serve (conditionals, Range), the response writer, pipelining,
 * keep-alive and linger. The whole of conn_accept -> h1_proto -> close.
 */
#include "fuzz_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_run_conn(data, size, 0, 0);
	return 0;
}
