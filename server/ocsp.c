/*
 * ocsp.c: OCSP stapling from a DER response file the operator refreshes
 * (`tls { ocsp_response = "FILE" }`); kttpd fetches nothing itself.
 *
 * The file is read when the config is built, so at start and on every
 * SIGHUP. It is stapled only when it is a successful response, signed by
 * the certificate's issuer (or a responder the issuer delegated to), for
 * this very certificate, with status good and inside its validity
 * period; otherwise a warning says why and the server serves without a
 * staple. A response whose nextUpdate passes while serving is no longer
 * stapled (a warning, once a second at most). The response belongs to
 * its SSL_CTX (ex_data), so it lives and dies with the context.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OCSP_SKEW_S   300       /* clock skew allowed on thisUpdate */
#define OCSP_FILE_MAX (1 << 20) /* a response file, read whole */

struct ocsp {
	unsigned char *der;
	long len;
	time_t next_update; /* 0: the response gives none */
	char *server;       /* for messages */
};

static int ctx_idx = -1;

static void ocsp_free(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct ocsp *o = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (o == NULL)
		return;
	free(o->der);
	free(o->server);
	free(o);
}

static int status_cb(SSL *ssl, void *arg)
{
	static struct log_limit lim;
	struct ocsp *o = arg;
	unsigned char *copy;
	long more;

	if (o == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (o->next_update != 0 && time(NULL) > o->next_update) {
		if (log_limited(&lim, &more))
			log_warn(
			    "server %s: ocsp_response has expired; not "
			    "stapling until a fresh one is loaded (SIGHUP) "
			    "(%ld more since the last such line)",
			    o->server, more);
		return SSL_TLSEXT_ERR_NOACK;
	}
	if ((copy = OPENSSL_memdup(o->der, (size_t)o->len)) == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, o->len) != 1) {
		OPENSSL_free(copy);
		return SSL_TLSEXT_ERR_NOACK;
	}
	return SSL_TLSEXT_ERR_OK;
}

static unsigned char *read_file(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t n;

	if (f == NULL)
		return NULL;
	if ((buf = malloc(OCSP_FILE_MAX + 1)) != NULL) {
		n = fread(buf, 1, OCSP_FILE_MAX + 1, f);
		if (ferror(f) || n == 0 || n > OCSP_FILE_MAX) {
			free(buf);
			buf = NULL;
			errno = n > OCSP_FILE_MAX ? EFBIG : EINVAL;
		} else
			*len = (long)n;
	}
	fclose(f);
	return buf;
}

/* The certificate's issuer, from the chain in the certificate file. */
static X509 *find_issuer(SSL_CTX *ctx, X509 *leaf)
{
	STACK_OF(X509) *chain = NULL;

	if (SSL_CTX_get0_chain_certs(ctx, &chain) != 1 || chain == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(chain); i++)
		if (X509_check_issued(sk_X509_value(chain, i), leaf) ==
		    X509_V_OK)
			return sk_X509_value(chain, i);
	return NULL;
}

/* NULL when bs holds a good, current answer for leaf; else why not. */
static const char *check(
    OCSP_BASICRESP *bs, SSL_CTX *ctx, X509 *leaf, X509 *issuer, time_t *next)
{
	ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL;
	STACK_OF(X509) *chain = NULL, *certs = NULL;
	X509_STORE *store = NULL;
	const char *why = NULL;
	int found = 0, status = -1, reason;

	for (int i = 0; i < OCSP_resp_count(bs) && !found; i++) {
		OCSP_SINGLERESP *sr = OCSP_resp_get0(bs, i);
		const OCSP_CERTID *cid = OCSP_SINGLERESP_get0_id(sr);
		ASN1_OBJECT *md_oid = NULL;
		const EVP_MD *md;
		OCSP_CERTID *ours;

		if (OCSP_id_get0_info(
		        NULL, &md_oid, NULL, NULL, (OCSP_CERTID *)cid) != 1 ||
		    (md = EVP_get_digestbyobj(md_oid)) == NULL ||
		    (ours = OCSP_cert_to_id(md, leaf, issuer)) == NULL)
			continue;
		if (OCSP_id_cmp(ours, cid) == 0) {
			found = 1;
			status = OCSP_single_get0_status(
			    sr, &reason, NULL, &thisupd, &nextupd);
		}
		OCSP_CERTID_free(ours);
	}
	if (!found)
		return "it is not for this certificate";
	if (status != V_OCSP_CERTSTATUS_GOOD)
		return status == V_OCSP_CERTSTATUS_REVOKED
		    ? "the certificate is revoked"
		    : "the certificate's status is unknown";
	if (OCSP_check_validity(thisupd, nextupd, OCSP_SKEW_S, -1) != 1)
		return nextupd != NULL && X509_cmp_time(nextupd, NULL) < 0
		    ? "it has expired (nextUpdate is past)"
		    : "it is not valid yet, or its dates are malformed";
	/* signed by the issuer, or by a responder it certified */
	store = X509_STORE_new();
	certs = sk_X509_new_null();
	if (store == NULL || certs == NULL ||
	    X509_STORE_add_cert(store, issuer) != 1 ||
	    sk_X509_push(certs, issuer) == 0) {
		why = "out of memory";
		goto fail;
	}
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && chain != NULL)
		for (int i = 0; i < sk_X509_num(chain); i++)
			sk_X509_push(certs, sk_X509_value(chain, i));
	if (OCSP_basic_verify(bs, certs, store, 0) != 1)
		why = "its signature does not verify against the issuer";
	else if (nextupd != NULL) {
		struct tm tm;
		if (ASN1_TIME_to_tm(nextupd, &tm) == 1)
			*next = timegm(&tm);
	}
fail:
	ERR_clear_error();
	sk_X509_free(certs);
	X509_STORE_free(store);
	return why;
}

int ocsp_setup(void *sslctx, const char *server, const char *path)
{
	SSL_CTX *ctx = sslctx;
	const unsigned char *p;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	struct ocsp *o = NULL;
	const char *why = NULL;
	X509 *leaf = SSL_CTX_get0_certificate(ctx), *issuer;
	time_t next = 0;
	int rv = -1;

	if (ctx_idx < 0 &&
	    (ctx_idx = SSL_CTX_get_ex_new_index(
	         0, NULL, NULL, NULL, ocsp_free)) < 0)
		return -1;
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->server = strdup(server)) == NULL)
		goto fail;
	if ((o->der = read_file(path, &o->len)) == NULL) {
		why = strerror(errno);
		goto warn;
	}
	p = o->der;
	if ((resp = d2i_OCSP_RESPONSE(NULL, &p, o->len)) == NULL ||
	    p != o->der + o->len) {
		why = "not a DER OCSP response";
		goto warn;
	}
	if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		why = OCSP_response_status_str(OCSP_response_status(resp));
		goto warn;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		why = "no basic response in it";
		goto warn;
	}
	if (leaf == NULL || (issuer = find_issuer(ctx, leaf)) == NULL) {
		why = "the certificate file holds no issuer of the "
		      "certificate (put the chain after it)";
		goto warn;
	}
	if ((why = check(bs, ctx, leaf, issuer, &next)) != NULL)
		goto warn;
	o->next_update = next;
	if (SSL_CTX_set_ex_data(ctx, ctx_idx, o) != 1)
		goto fail;
	SSL_CTX_set_tlsext_status_cb(ctx, status_cb);
	SSL_CTX_set_tlsext_status_arg(ctx, o);
	o = NULL;
	rv = 0;
	goto fail;
warn:
	log_warn(
	    "server %s: ocsp_response %s: %s; not stapling", server, path, why);
	rv = 0;
fail:
	ERR_clear_error();
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	if (o != NULL)
		ocsp_free(NULL, o, NULL, 0, 0, NULL);
	return rv;
}
