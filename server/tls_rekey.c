/*
 * tls_rekey.c: a TLS 1.3 KeyUpdate with update_requested under kTLS TX.
 *
 * RFC 8446 4.6.3: the receiver of update_requested sends a KeyUpdate of
 * its own before its next application data, and seals everything after
 * it with new keys. Under kTLS TX our bytes bypass OpenSSL (send() and
 * SSL_sendfile), so OpenSSL never sends that KeyUpdate by itself; we
 * make it (SSL_key_update + SSL_do_handshake), and OpenSSL 3.2+ hands the
 * new keys to the kernel. Two things must hold, and both are found out,
 * not assumed from version numbers:
 *
 *   the kernel takes new TX keys   probed at start on a loopback pair
 *                                  (sys_ktls_rekey_probe: Linux 6.14+)
 *   OpenSSL gave them to it        after each answer, the kernel's record
 *                                  sequence must have restarted at 0
 *                                  (sys_ktls_tx_seq); OpenSSL 3.0 rekeys
 *                                  only itself and leaves the old keys
 *
 * Where the kernel cannot, the connection ends before anything is sent
 * (close_notify under the old keys, which the peer can still read). If a
 * KeyUpdate went out and the kernel still seals with the old keys, not
 * one byte more may leave: the connection is dropped without
 * close_notify, and no later connection is answered.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>

static int kernel_tx, kernel_rx;  /* set once at start, before workers */
static atomic_int library_broken; /* an answer left the kernel's keys */

void tls_rekey_probe(void)
{
	char why[160];

	if (sys_ktls_rekey_probe(&kernel_tx, &kernel_rx, why, sizeof(why)) < 0)
		kernel_tx = kernel_rx = 0;
	log_info("ktls: TLS 1.3 KeyUpdate: %s (%s)",
	    kernel_tx ? "update_requested answered under kTLS TX"
	              : "kTLS TX connections end on update_requested",
	    why);
}

int tls_rekey_rx_ok(void)
{
	return kernel_rx;
}

int tls_ktls_rekey(struct conn *c)
{
	SSL *ssl = c->ssl;
	uint64_t seq = 1;
	int r, e;

	if (!kernel_tx || atomic_load(&library_broken)) {
		log_info("%s: peer requested a TLS 1.3 KeyUpdate; %s: closing",
		    c->peer,
		    kernel_tx ? "OpenSSL did not rekey kTLS TX before"
		              : "the kernel cannot rekey kTLS TX");
		return -1;
	}
	if (!c->rekey_pending) {
		/* our KeyUpdate (not requested): OpenSSL sends it at the next
		 * handshake step, which is ours to take under kTLS TX */
		ERR_clear_error();
		if (SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1)
			goto fail;
		c->rekey_pending = 1;
	}
	ERR_clear_error();
	r = SSL_do_handshake(ssl);
	if (r != 1) {
		e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			/* nothing left: the next write tries again, and no
			 * application data goes before our KeyUpdate */
			c->want_write = e == SSL_ERROR_WANT_WRITE;
			ERR_clear_error();
			return 0;
		}
		goto fail;
	}
	c->rekey_pending = 0;
	if (sys_ktls_tx_seq(c->fd, &seq) < 0 || seq != 0) {
		atomic_store(&library_broken, 1);
		log_error("%s: answered a TLS 1.3 KeyUpdate, but the kernel "
		          "still seals with the old keys (record %llu): "
		          "dropping the connection; later ones end on "
		          "update_requested",
		    c->peer, (unsigned long long)seq);
		c->tls_failed = 1; /* not a byte more, not even close_notify */
		return -1;
	}
	log_debug("%s: TLS 1.3 KeyUpdate answered; kTLS TX rekeyed", c->peer);
	return 1;
fail : {
	char err[160];
	ERR_error_string_n(ERR_peek_error(), err, sizeof(err));
	log_info("%s: answering a TLS 1.3 KeyUpdate failed: %s", c->peer, err);
	ERR_clear_error();
	c->tls_failed = 1;
	return -1;
}
}
