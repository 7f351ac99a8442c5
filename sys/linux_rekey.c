/*
 * linux_rekey.c: can the kernel take new kTLS keys on a TLS 1.3 socket,
 * and which record number will it seal next?
 *
 * A TLS 1.3 KeyUpdate replaces a direction's keys mid-connection. Before
 * Linux 6.14 the tls ULP takes keys once per direction (a second TLS_TX
 * or TLS_RX setsockopt is EBUSY); from 6.14 it takes new TLS 1.3 keys of
 * the same cipher. Which one a kernel is cannot be told from its version
 * (distributions backport), so we try: a loopback TCP pair, the tls ULP,
 * dummy TLS 1.3 AES-128-GCM keys in both directions, then new ones.
 * Nothing is sent over the pair; it is closed at once.
 *
 * After a rekey the kernel's record sequence restarts at 0; TLS_TX read
 * back by getsockopt says where it stands (sys_ktls_tx_seq), so the
 * caller can check that its TLS library really handed the kernel the
 * new keys.
 */
#define _GNU_SOURCE
#include "sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* fds[0] connected to fds[1] over 127.0.0.1; 0 or -1 */
static int tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	fds[0] = fds[1] = -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0)
		return -1;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		goto fail;
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0)
		goto fail;
	close(l);
	return 0;
fail:
	if (fds[0] >= 0)
		close(fds[0]);
	close(l);
	fds[0] = -1;
	return -1;
}

int sys_ktls_rekey_probe(int *tx, int *rx, char *why, size_t whylen)
{
	struct tls12_crypto_info_aes_gcm_128 ci;
	int fds[2], r = -1, etx, erx;

	*tx = *rx = 0;
	if (tcp_pair(fds) < 0) {
		snprintf(
		    why, whylen, "no loopback TCP pair: %s", strerror(errno));
		return -1;
	}
	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_3_VERSION;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	if (setsockopt(fds[0], SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0 ||
	    setsockopt(fds[0], SOL_TLS, TLS_TX, &ci, sizeof(ci)) < 0 ||
	    setsockopt(fds[0], SOL_TLS, TLS_RX, &ci, sizeof(ci)) < 0) {
		snprintf(
		    why, whylen, "TLS 1.3 keys refused: %s", strerror(errno));
		goto out;
	}
	ci.key[0] = 1; /* the next generation of keys */
	*tx = setsockopt(fds[0], SOL_TLS, TLS_TX, &ci, sizeof(ci)) == 0;
	etx = errno;
	*rx = setsockopt(fds[0], SOL_TLS, TLS_RX, &ci, sizeof(ci)) == 0;
	erx = errno;
	snprintf(why, whylen, "new TLS 1.3 keys: tx %s, rx %s",
	    *tx ? "taken" : strerror(etx), *rx ? "taken" : strerror(erx));
	r = 0;
out:
	close(fds[0]);
	close(fds[1]);
	return r;
}

int sys_ktls_tx_seq(int fd, uint64_t *seq)
{
	/* the biggest crypto_info; every one ends with its 8-byte rec_seq */
	union {
		struct tls_crypto_info info;
		struct tls12_crypto_info_aes_gcm_128 g128;
		struct tls12_crypto_info_aes_gcm_256 g256;
		struct tls12_crypto_info_chacha20_poly1305 cc;
		struct tls12_crypto_info_aes_ccm_128 ccm;
	} u;
	socklen_t len = sizeof(u.info);
	const unsigned char *rs;

	/* first the header alone, then exactly its cipher's size (the
	 * kernel wants the length to match) */
	if (getsockopt(fd, SOL_TLS, TLS_TX, &u, &len) < 0)
		return -1;
	switch (u.info.cipher_type) {
	case TLS_CIPHER_AES_GCM_128:
		len = sizeof(u.g128);
		rs = u.g128.rec_seq;
		break;
	case TLS_CIPHER_AES_GCM_256:
		len = sizeof(u.g256);
		rs = u.g256.rec_seq;
		break;
	case TLS_CIPHER_CHACHA20_POLY1305:
		len = sizeof(u.cc);
		rs = u.cc.rec_seq;
		break;
	case TLS_CIPHER_AES_CCM_128:
		len = sizeof(u.ccm);
		rs = u.ccm.rec_seq;
		break;
	default: errno = ENOTSUP; return -1;
	}
	if (getsockopt(fd, SOL_TLS, TLS_TX, &u, &len) < 0)
		return -1;
	*seq = 0;
	for (int i = 0; i < 8; i++) /* big-endian on the wire and here */
		*seq = *seq << 8 | rs[i];
	return 0;
}
