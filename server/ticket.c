/*
 * ticket.c: TLS session ticket keys: made here and rotated every
 * session_ticket_rotate seconds, or read from session_ticket_key_file
 * (nginx's format) so that a fleet behind one balancer shares them.
 *
 * A ticket is sealed (AES-256-CBC + HMAC-SHA256, as OpenSSL's own) with
 * the first key of the live set; the others only open tickets, which are
 * then re-issued under the first (the callback returns 2). Made keys: the
 * set is {current, previous}; a rotation makes a new current and drops
 * the old previous, so a ticket is accepted for one to two periods and a
 * stolen key opens at most two periods of sessions (forward secrecy).
 *
 * Every worker reads the same set, published through one atomic pointer:
 * a handshake loads it (acquire), copies the key it needs into OpenSSL's
 * contexts and lets go, never locking. Writers (the rotation thread, and
 * the main thread on a reload) take a mutex among themselves only. A set
 * taken out of use is wiped and freed KT_TICKET_GRACE_S later, long after
 * the last callback that could have loaded it returned (a callback makes
 * no blocking call).
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KT_TICKET_GRACE_S 10  /* a retired set is freed this much later */
#define TICK_MS           100 /* the rotation thread's clock */

struct tkey {
	unsigned char name[16], hmac[32], aes[32]; /* nginx's order */
};

struct keyset {
	struct keyset *next; /* retired list */
	int64_t retired_us;
	int n;
	struct tkey k[];
};

static _Atomic(struct keyset *) live;
static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER; /* writers only */
static struct keyset *retired;
static int from_file;          /* keys from the file: no rotation */
static atomic_long period_s;   /* session_ticket_rotate */
static int64_t last_rotate_us; /* under wlock */
static int thread_started;
static atomic_uint_fast64_t rotations, issued, resumed, renewed, unknown;
/* AES-256-CBC fetched once: EVP_aes_256_cbc() is a legacy object that
 * EVP_CipherInit_ex fetches from the provider again on every ticket
 * (~2,600 instructions each, two tickets a handshake: issue 13). Set
 * once before the workers start, never freed (contexts take no ref). */
static EVP_CIPHER *aes_cbc;

static struct keyset *set_new(int n)
{
	struct keyset *ks = calloc(
	    1, sizeof(*ks) + (size_t)n * sizeof(ks->k[0]));

	if (ks != NULL)
		ks->n = n;
	return ks;
}

static void set_free(struct keyset *ks)
{
	OPENSSL_cleanse(ks->k, (size_t)ks->n * sizeof(ks->k[0]));
	free(ks);
}

/* Under wlock: wipe and free the retired sets that had their grace. */
static void sweep(void)
{
	int64_t now = date_mono_us();

	for (struct keyset **p = &retired; *p != NULL;) {
		struct keyset *r = *p;
		if (now - r->retired_us >= KT_TICKET_GRACE_S * 1000000LL) {
			*p = r->next;
			set_free(r);
		} else
			p = &r->next;
	}
}

/* Under wlock: make ks the live set; the old one is freed later. */
static void publish(struct keyset *ks)
{
	struct keyset *old = atomic_exchange_explicit(
	    &live, ks, memory_order_acq_rel);

	if (old != NULL) {
		old->retired_us = date_mono_us();
		old->next = retired;
		retired = old;
	}
	sweep();
}

/* Under wlock: a fresh current key; the current first key (made, or the
 * file's when a reload drops the file) decrypts for one more period. */
static int rotate(void)
{
	struct keyset *cur = atomic_load(&live);
	struct keyset *ks = set_new(cur != NULL ? 2 : 1);

	if (ks == NULL ||
	    RAND_bytes((unsigned char *)&ks->k[0], sizeof(ks->k[0])) != 1) {
		if (ks != NULL)
			set_free(ks);
		return -1;
	}
	if (ks->n == 2) {
		ks->k[1] = cur->k[0];
		atomic_fetch_add(&rotations, 1);
	}
	publish(ks);
	last_rotate_us = date_mono_us();
	return 0;
}

static void *rotator(void *arg)
{
	struct timespec ts = { 0, TICK_MS * 1000000L };
	sigset_t all;

	(void)arg;
	sigfillset(&all); /* signals are for the main thread's sigwait */
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&wlock);
		if (!from_file &&
		    date_mono_us() - last_rotate_us >=
		        atomic_load(&period_s) * 1000000LL) {
			if (rotate() < 0)
				log_error("tls: session ticket keys: cannot "
				          "make a new key; the old one stays");
			else
				log_debug("tls: session ticket keys rotated");
		}
		sweep();
		pthread_mutex_unlock(&wlock);
	}
	return NULL;
}

/*
 * At start and after each reload: the file's keys when the config names
 * one (republished on every reload: the file was read again), else made
 * keys, kept across reloads and rotated on the configured period.
 */
int ticket_configure(struct config *cfg)
{
	int r = 0;

	pthread_mutex_lock(&wlock);
	if (!thread_started) /* at start only; NULL: evp_cb uses the legacy */
		aes_cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	atomic_store(&period_s, cfg->session_ticket_rotate);
	if (cfg->nticket_keys > 0) {
		struct keyset *ks = set_new(cfg->nticket_keys);
		if (ks == NULL)
			r = -1;
		else {
			memcpy(ks->k, cfg->ticket_keys,
			    (size_t)cfg->nticket_keys * sizeof(ks->k[0]));
			from_file = 1;
			publish(ks);
			log_info("tls: %d session ticket key%s from %s", ks->n,
			    ks->n > 1 ? "s" : "", cfg->session_ticket_key_file);
		}
	} else if (from_file || atomic_load(&live) == NULL) {
		from_file = 0;
		r = rotate();
	} /* else made keys go on, the period counted from the last key */
	if (r == 0 && !thread_started) {
		pthread_t t;
		if (pthread_create(&t, NULL, rotator, NULL) != 0)
			r = -1;
		else {
			pthread_detach(t);
			thread_started = 1;
		}
	}
	pthread_mutex_unlock(&wlock);
	return r;
}

/*
 * OpenSSL's ticket callback: enc seals with the first key; else find the
 * ticket's key by name: 1 the first (use), 2 another (use, and issue a
 * new ticket under the first), 0 none (a full handshake, still served).
 */
static int evp_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
	struct keyset *ks = atomic_load_explicit(&live, memory_order_acquire);
	const struct tkey *k = NULL;
	int r = 1;

	(void)ssl;
	if (ks == NULL) /* ticket_configure not called: no tickets */
		return 0;
	if (enc) {
		k = &ks->k[0];
		memcpy(name, k->name, sizeof(k->name));
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
			return -1;
		atomic_fetch_add_explicit(&issued, 1, memory_order_relaxed);
	} else {
		for (int i = 0; i < ks->n && k == NULL; i++)
			if (memcmp(name, ks->k[i].name, sizeof(k->name)) == 0) {
				k = &ks->k[i];
				r = i == 0 ? 1 : 2;
			}
		if (k == NULL) {
			atomic_fetch_add_explicit(
			    &unknown, 1, memory_order_relaxed);
			return 0;
		}
		atomic_fetch_add_explicit(
		    r == 1 ? &resumed : &renewed, 1, memory_order_relaxed);
	}
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(
		    OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
		OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_CipherInit_ex(ectx, aes_cbc ? aes_cbc : EVP_aes_256_cbc(), NULL,
	        k->aes, iv, enc) != 1 ||
	    EVP_MAC_CTX_set_params(hctx, params) != 1)
		return -1;
	return r;
}

void ticket_ctx_setup(void *ctx)
{
	SSL_CTX_set_tlsext_ticket_key_evp_cb((SSL_CTX *)ctx, evp_cb);
}

void ticket_stats(struct ticket_stats *st)
{
	struct keyset *ks;

	/* the set may be retired meanwhile, but is freed only after the
	 * grace: reading its count here is as safe as a handshake */
	ks = atomic_load_explicit(&live, memory_order_acquire);
	st->keys = ks ? ks->n : 0;
	st->rotations = atomic_load(&rotations);
	st->issued = atomic_load(&issued);
	st->resumed = atomic_load(&resumed);
	st->renewed = atomic_load(&renewed);
	st->unknown = atomic_load(&unknown);
}
