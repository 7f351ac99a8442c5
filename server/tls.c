/*
 * tls.c: OpenSSL contexts per server, certificate choice by SNI, ALPN,
 * session resumption, and what the kernel took after the handshake.
 *
 * The server is chosen in the ClientHello callback, before OpenSSL picks
 * a version or cipher, so each server's protocols and ciphers apply and
 * not only its certificate. Ticket keys (rotated, shared by every worker
 * and config generation) are ticket.c's.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

static int conn_idx = -1; /* SSL ex_data slot holding the struct conn */
static int kernel_ok;
static int kernel_no; /* ktls on, and no tls ULP even after modprobe */
static char kernel_why[192];

/* ALPN, in our order of preference */
static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_h1[] = "\x08http/1.1";

int tls_init(void)
{
	conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (conn_idx < 0)
		return -1;
	return 0;
}

void tls_ktls_probe(struct config *cfg)
{
	kernel_ok = sys_ktls_probe(cfg->ktls, kernel_why, sizeof(kernel_why));
	kernel_no = cfg->ktls && !kernel_ok;
	/* ktls = true on a kernel without the tls ULP (said below): OpenSSL
	 * would still try setsockopt(TCP_ULP, "tls") on every connection,
	 * two failing syscalls a handshake (issue 13). These contexts were
	 * made before the probe; those of a reload see kernel_no. */
	for (int i = 0; kernel_no && i < cfg->nvhosts; i++)
		if (cfg->vhosts[i].ssl_ctx != NULL)
			SSL_CTX_clear_options(
			    cfg->vhosts[i].ssl_ctx, SSL_OP_ENABLE_KTLS);
	if (!cfg->ktls)
		log_info("ktls: disabled by config (ktls = false); TLS stays "
		         "in userspace");
	else if (kernel_ok) {
		log_info("ktls: available: %s; sessions go to the kernel after "
		         "the handshake",
		    kernel_why);
		tls_rekey_probe(); /* issue 14 */
	} else
		log_info("ktls: unavailable: %s; TLS stays in userspace",
		    kernel_why);
}

static void ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s", what, e ? buf : "failed");
	ERR_clear_error();
}

void *tls_ctx_new(const struct tls_params *tp, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		ssl_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	        SSL_OP_NO_COMPRESSION);
	/* A client closing TCP without close_notify is an EOF, not a TLS
	 * error: OpenSSL 3 would otherwise fail the connection and drop its
	 * session from the cache (no resumption after a browser's close).
	 * No truncation risk: a request head is complete or not served. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* release buffers while idle; SSL_write may be retried from a
	 * different address (our chunk buffer is reused) */
	SSL_CTX_set_mode(ctx,
	    SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Send the chain as the certificate file gives it (as nginx does).
	 * Without this, every handshake of a certificate file holding no
	 * chain runs X509_verify_cert against the context's store (~7,000
	 * instructions, issue 13), and that store is always empty here (no
	 * CA file is ever loaded): it can only ever find the leaf alone. */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	if (!SSL_CTX_set_min_proto_version(ctx, tp->min) ||
	    !SSL_CTX_set_max_proto_version(ctx, tp->max)) {
		ssl_err(err, errlen, "protocols");
		goto fail;
	}
	if (SSL_CTX_set_cipher_list(ctx, tp->ciphers) != 1) {
		ssl_err(err, errlen, "ciphers");
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, tp->suites) != 1) {
		ssl_err(err, errlen, "ciphersuites");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, tp->cert) != 1) {
		ssl_err(err, errlen, tp->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, tp->key, SSL_FILETYPE_PEM) != 1) {
		ssl_err(err, errlen, tp->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_err(err, errlen, "key does not match the certificate");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}

/* ClientHello: pick the server by SNI, then apply its TLS settings. */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	struct conn *c = SSL_get_ex_data(ssl, conn_idx);
	const unsigned char *p;
	size_t len, n;
	struct vhost *vh;

	(void)arg;
	(void)alert;
	if (c == NULL ||
	    !SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
		return SSL_CLIENT_HELLO_SUCCESS; /* no SNI: the default */
	/* server_name_list: u16 length, then type 0 (host_name), u16, name */
	if (len < 5 || (size_t)(p[0] << 8 | p[1]) + 2 != len || p[2] != 0)
		return SSL_CLIENT_HELLO_SUCCESS;
	n = (size_t)(p[3] << 8 | p[4]);
	if (n + 5 > len)
		return SSL_CLIENT_HELLO_SUCCESS;
	vh = vhost_by_name(c->la, (const char *)p + 5, n);
	if (vh == NULL || vh == c->vh || vh->ssl_ctx == NULL)
		return SSL_CLIENT_HELLO_SUCCESS;
	c->vh = vh;
	SSL_set_SSL_CTX(ssl, vh->ssl_ctx);
	/* SSL_set_SSL_CTX swaps the certificate only; the rest by hand */
	SSL_set_min_proto_version(
	    ssl, SSL_CTX_get_min_proto_version((SSL_CTX *)vh->ssl_ctx));
	SSL_set_max_proto_version(
	    ssl, SSL_CTX_get_max_proto_version((SSL_CTX *)vh->ssl_ctx));
	SSL_set_options(ssl, SSL_CTX_get_options((SSL_CTX *)vh->ssl_ctx));
	SSL_set_cipher_list(ssl, vh->tls_ciphers);
	SSL_set_ciphersuites(ssl, vh->tls_suites);
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	struct conn *c = SSL_get_ex_data(ssl, conn_idx);
	int h2 = c != NULL && c->vh->http2;

	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen,
	        h2 ? alpn_h2 : alpn_h1,
	        h2 ? sizeof(alpn_h2) - 1 : sizeof(alpn_h1) - 1, in,
	        inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without */
}

/* Issue 13: about to write a TLS 1.3 session ticket, the first thing
 * after the handshake: hold the segments (conn.c says until when). */
static void info_cb(const SSL *ssl, int where, int ret)
{
	struct conn *c;

	(void)ret;
	if ((where & SSL_CB_ACCEPT_LOOP) &&
	    SSL_get_state(ssl) == TLS_ST_SW_SESSION_TICKET &&
	    SSL_version(ssl) == TLS1_3_VERSION &&
	    (c = SSL_get_ex_data(ssl, conn_idx)) != NULL)
		conn_cork(c);
}

int tls_vhost_setup(
    struct config *cfg, struct vhost *vh, const struct tls_params *tp)
{
	unsigned char sid[32];
	unsigned int sidlen = sizeof(sid);
	char err[256];
	SSL_CTX *ctx;

	if ((ctx = tls_ctx_new(tp, err, sizeof(err))) == NULL) {
		log_error("server %s: %s", vh->name, err);
		return -1;
	}
	vh->ssl_ctx = ctx;
	vh->tls_ciphers = strdup(tp->ciphers);
	vh->tls_suites = strdup(tp->suites);
	if (vh->tls_ciphers == NULL || vh->tls_suites == NULL)
		return -1;
	if (cfg->ktls && !kernel_no)
		SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	/* a session resumes only on the server it was made for */
	EVP_Digest(
	    vh->name, strlen(vh->name), sid, &sidlen, EVP_sha256(), NULL);
	SSL_CTX_set_session_id_context(ctx, sid, sidlen);
	SSL_CTX_set_timeout(ctx, cfg->session_timeout);
	if (cfg->session_cache > 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, cfg->session_cache);
	} else
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (cfg->session_tickets)
		ticket_ctx_setup(ctx); /* keys shared and rotated: ticket.c */
	else
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* TLS 1.3 sends two NewSessionTickets by default, stateful ones
	 * under SSL_OP_NO_TICKET; with no cache and no tickets they can
	 * never resume anything: send none */
	if (!cfg->session_tickets && cfg->session_cache == 0)
		SSL_CTX_set_num_tickets(ctx, 0);
	if (tp->ocsp != NULL && ocsp_setup(ctx, vh->name, tp->ocsp) < 0)
		return -1;
	return 0;
}

void *tls_new(struct conn *c)
{
	SSL *ssl = SSL_new(c->la->def->ssl_ctx);

	if (ssl == NULL)
		return NULL;
	if (SSL_set_fd(ssl, c->fd) != 1 ||
	    SSL_set_ex_data(ssl, conn_idx, c) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	SSL_set_info_callback(ssl, info_cb); /* the session's: SNI keeps it */
	/* Without kTLS, read what the socket has in one read() rather than
	 * a record header and then its body. Not under kTLS: OpenSSL will not
	 * hand the kernel a session whose next records it already buffered. */
	if (!c->cfg->ktls || !kernel_ok)
		SSL_set_read_ahead(ssl, 1);
	return ssl;
}

/* 1 done, 0 waiting (c->want_write says for what), -1 failed. */
int tls_handshake(struct conn *c)
{
	int r, e;

	/* ERR_clear_error walks all 16 slots (~840 instructions); looking
	 * first is enough, as in conn.c */
	if (ERR_peek_error() != 0)
		ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1)
		return 1;
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->want_write = e == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	if (e == SSL_ERROR_SSL) {
		char buf[160];
		ERR_error_string_n(ERR_peek_error(), buf, sizeof(buf));
		log_debug("%s: handshake failed: %s", c->peer, buf);
	} else if (e == SSL_ERROR_SYSCALL)
		log_debug("%s: handshake failed: %s", c->peer,
		    errno != 0 ? strerror(errno) : "peer closed");
	ERR_clear_error();
	c->tls_failed = 1;
	return -1;
}

const char *const tls_why[WHY_COUNT] = { "", "disabled", "kernel-no-tls-ulp",
	"cipher-not-offloaded", "openssl-no-tls13-rx", "rx-not-offloaded" };

/* NIC or CPU: what the kernel says about this connection's crypto (one
 * netlink round trip on Linux: about 2 us idle, 6-16 us on a busy
 * 2-core VM, once per kTLS connection). Before Linux 6.15 the
 * kernel tells it to CAP_NET_ADMIN only (EPERM): logged once. */
static void record_placement(struct conn *c)
{
	static atomic_int told;
	struct sys_tls_placement pl;

	if (sys_tls_placement(c->fd, &pl) < 0) {
		METRIC_ADD(&c->w->m, place_unknown, 1);
		if (atomic_exchange(&told, 1) == 0)
			log_info("ktls: crypto placement unknown: %s%s",
			    strerror(errno),
			    errno == EPERM ? " (before Linux 6.15 the kernel "
			                     "shows it to CAP_NET_ADMIN only)"
			        : errno == ENOENT
			        ? " (no sock_diag for TCP: is "
			          "the tcp_diag module loaded?)"
			        : "");
		return;
	}
	c->mode.place_known = 1;
	c->mode.tx_place = pl.tx & 3;
	c->mode.rx_place = pl.rx & 3;
	METRIC_ADD(&c->w->m, place[0][pl.tx & 3], 1);
	METRIC_ADD(&c->w->m, place[1][pl.rx & 3], 1);
}

void tls_record_mode(struct conn *c)
{
	SSL *ssl = c->ssl;

	c->mode.tls = 1;
	c->mode.ktls_tx = BIO_get_ktls_send(SSL_get_wbio(ssl)) ? 1 : 0;
	c->mode.ktls_rx = BIO_get_ktls_recv(SSL_get_rbio(ssl)) ? 1 : 0;
	if (!c->cfg->ktls)
		c->mode.why = WHY_DISABLED;
	else if (!kernel_ok)
		c->mode.why = WHY_KERNEL;
	else if (!c->mode.ktls_tx)
		c->mode.why = WHY_CIPHER;
	else if (!c->mode.ktls_rx && SSL_version(ssl) == TLS1_3_VERSION &&
	    OpenSSL_version_num() < 0x30200000L)
		c->mode.why = WHY_TLS13_RX;
	else if (!c->mode.ktls_rx)
		c->mode.why = WHY_RX;
	else
		c->mode.why = WHY_NONE;
	if ((c->mode.ktls_tx || c->mode.ktls_rx) && c->cfg->ktls_placement)
		record_placement(c);
}

int tls_alpn_h2(struct conn *c)
{
	const unsigned char *p;
	unsigned int len;

	SSL_get0_alpn_selected(c->ssl, &p, &len);
	return len == 2 && memcmp(p, "h2", 2) == 0;
}

int tls_pending(struct conn *c)
{
	return SSL_has_pending(c->ssl);
}

const char *tls_version(struct conn *c)
{
	return c->ssl ? SSL_get_version(c->ssl) : "-";
}

const char *tls_cipher(struct conn *c)
{
	return c->ssl ? SSL_get_cipher_name((SSL *)c->ssl) : "-";
}

static void ktls_field(const struct conn *c, char *out, size_t len)
{
	if (!c->mode.tls)
		snprintf(out, len, "-");
	else if (c->mode.ktls_tx && c->mode.ktls_rx)
		snprintf(out, len, "tx+rx");
	else if (c->mode.ktls_tx)
		snprintf(out, len, "tx(rx:%s)", tls_why[c->mode.why]);
	else
		snprintf(out, len, "off(%s)", tls_why[c->mode.why]);
}

/* "tx:hw,rx:sw": where the kernel runs the crypto; "-" without kTLS */
static void place_field(const struct conn *c, char *out, size_t len)
{
	if (!c->mode.ktls_tx && !c->mode.ktls_rx)
		snprintf(out, len, "-");
	else if (!c->mode.place_known)
		snprintf(out, len, "unknown");
	else
		snprintf(out, len, "tx:%s,rx:%s",
		    sys_tls_conf_name(c->mode.tx_place),
		    sys_tls_conf_name(c->mode.rx_place));
}

/* What an access line says about the connection's TLS (log.c). */
void tls_describe(struct conn *c, struct log_conn *lc)
{
	lc->tls_version = tls_version(c);
	lc->tls_cipher = tls_cipher(c);
	ktls_field(c, lc->ktls, sizeof(lc->ktls));
	place_field(c, lc->place, sizeof(lc->place));
}
