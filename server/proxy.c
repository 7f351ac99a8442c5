/*
 * proxy.c: the PROXY protocol (v1 text, v2 binary), as HAProxy defines
 * it, on listeners marked "proxy": behind an L4 load balancer the logs and
 * allow lists see the real client. The header is read with MSG_PEEK so
 * that not one byte past it (the TLS ClientHello) is taken off the socket.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V1_MAX 107 /* the longest v1 line, CRLF included */
#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

static int v1(
    const char *b, size_t len, struct sockaddr_storage *src, size_t *used)
{
	char line[V1_MAX + 1], proto[8], sa[48], da[48];
	const char *eol = memchr(b, '\n', len < V1_MAX ? len : V1_MAX);
	unsigned sp, dp;
	int n;

	if (eol == NULL)
		return len >= V1_MAX ? -1 : 0;
	if (eol == b || eol[-1] != '\r')
		return -1;
	memcpy(line, b, (size_t)(eol - b - 1));
	line[eol - b - 1] = '\0';
	*used = (size_t)(eol - b + 1);
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0)
		return 1; /* the balancer's own check: keep the socket's peer */
	if (sscanf(line, "PROXY %7s %47s %47s %u %u%n", proto, sa, da, &sp, &dp,
	        &n) != 5 ||
	    line[n] != '\0' || sp > 65535 || dp > 65535)
		return -1;
	memset(src, 0, sizeof(*src));
	if (strcmp(proto, "TCP4") == 0) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)src;
		struct in_addr tmp;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)sp);
		if (inet_pton(AF_INET, sa, &s4->sin_addr) != 1 ||
		    inet_pton(AF_INET, da, &tmp) != 1)
			return -1;
		return 2;
	}
	if (strcmp(proto, "TCP6") == 0) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)src;
		struct in6_addr tmp;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)sp);
		if (inet_pton(AF_INET6, sa, &s6->sin6_addr) != 1 ||
		    inet_pton(AF_INET6, da, &tmp) != 1)
			return -1;
		return 2;
	}
	return -1;
}

static int v2(const unsigned char *b, size_t len, struct sockaddr_storage *src,
    size_t *used)
{
	size_t body;

	if (len < 16)
		return 0;
	body = (size_t)b[14] << 8 | b[15];
	if ((b[12] & 0xf0) != 0x20 || body > 512)
		return -1; /* version 2 only; a bounded TLV area */
	if (len < 16 + body)
		return 0;
	*used = 16 + body;
	if ((b[12] & 0x0f) == 0x00)
		return 1; /* LOCAL: the balancer itself */
	if ((b[12] & 0x0f) != 0x01)
		return -1;
	memset(src, 0, sizeof(*src));
	switch (b[13]) {
	case 0x11: { /* TCP over IPv4 */
		struct sockaddr_in *s4 = (struct sockaddr_in *)src;
		if (body < 12)
			return -1;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, b + 16, 4);
		memcpy(&s4->sin_port, b + 24, 2);
		return 2;
	}
	case 0x21: { /* TCP over IPv6 */
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)src;
		if (body < 36)
			return -1;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b + 16, 16);
		memcpy(&s6->sin6_port, b + 48, 2);
		return 2;
	}
	case 0x00: return 1; /* UNSPEC: keep the socket's peer */
	default: return -1;  /* UDP, unix sockets: not for an HTTPS server */
	}
}

/*
 * Parse a PROXY header at the start of buf. Returns 0 for "need more",
 * -1 for malformed, 1 for a header that names no client (LOCAL, UNKNOWN),
 * 2 with the client in *src; *used is the header's length.
 */
int proxy_parse(const unsigned char *buf, size_t len,
    struct sockaddr_storage *src, size_t *used)
{
	size_t k = len < 12 ? len : 12;

	if (memcmp(buf, V2_SIG, k) == 0)
		return len < 12 ? 0 : v2(buf, len, src, used);
	k = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", k) == 0)
		return len < 6 ? 0 : v1((const char *)buf, len, src, used);
	return -1;
}
