/*
 * sslmem.c: OpenSSL's record buffers, kept per thread between uses.
 *
 * issue 13: kttpd sets SSL_MODE_RELEASE_BUFFERS so that an idle
 * connection holds no 16 KiB+ read and write buffers (idle memory per
 * connection is half of what it would be). The price is that OpenSSL
 * mallocs and frees both buffers around every request, and at ~17-18
 * KiB they are far past glibc's thread cache: about 1,100 instructions
 * a keep-alive request (callgrind, W1), 1,700 on W2, spent in
 * _int_malloc/_int_free. Here each thread keeps up to SSLMEM_KEEP such
 * blocks that OpenSSL freed, and hands them back on its next request of
 * that size band. The blocks are plain malloc blocks of one size
 * (SSLMEM_BLOCK): realloc and free by anyone else stay correct, and a
 * block is recognised on free by its usable size alone. Everything
 * outside the band goes straight to malloc. A connection in use holds
 * the same two buffers it did (a few hundred bytes larger); the cache
 * adds at most SSLMEM_KEEP blocks per thread and is freed when the
 * thread exits. Under AddressSanitizer, or without glibc, OpenSSL's
 * own allocator is left alone (ASan sees every block).
 */
#include "kttpd.h"

#include <openssl/crypto.h>

#ifdef KT_BLOCK_CACHE
#include <malloc.h>
#include <pthread.h>

/* OpenSSL 3.0's record buffers: 16 KiB of plaintext plus header,
 * alignment and the encryption (and compression) overhead */
#define SSLMEM_LOW   (16 * 1024)
#define SSLMEM_BLOCK (20 * 1024)
#define SSLMEM_KEEP  8

struct sslblk {
	struct sslblk *next;
};

static __thread struct sslblk *sslmem_list;
static __thread unsigned sslmem_count;
static size_t sslmem_usable; /* malloc_usable_size of an SSLMEM_BLOCK */
static pthread_key_t sslmem_key;

static void *sslmem_malloc(size_t n, const char *file, int line)
{
	struct sslblk *b;

	(void)file, (void)line;
	if (n < SSLMEM_LOW || n > SSLMEM_BLOCK)
		return malloc(n);
	if ((b = sslmem_list) == NULL)
		return malloc(SSLMEM_BLOCK);
	sslmem_list = b->next;
	sslmem_count--;
	return b;
}

static void sslmem_free(void *p, const char *file, int line)
{
	(void)file, (void)line;
	if (p == NULL)
		return;
	if (sslmem_count >= SSLMEM_KEEP ||
	    malloc_usable_size(p) != sslmem_usable) {
		free(p);
		return;
	}
	if (sslmem_list == NULL)
		/* a value for the key, so that its destructor runs when this
		 * thread exits */
		(void)pthread_setspecific(sslmem_key, &sslmem_list);
	((struct sslblk *)p)->next = sslmem_list;
	sslmem_list = p;
	sslmem_count++;
}

static void *sslmem_realloc(void *p, size_t n, const char *file, int line)
{
	if (p == NULL)
		return sslmem_malloc(n, file, line);
	return realloc(p, n); /* every block is a malloc block */
}

/* the thread exits: the blocks it kept */
static void sslmem_thread_exit(void *unused)
{
	(void)unused;
	while (sslmem_list != NULL) {
		struct sslblk *b = sslmem_list;
		sslmem_list = b->next;
		free(b);
	}
	sslmem_count = 0;
}

/* Before OpenSSL allocates anything (CRYPTO_set_mem_functions refuses
 * once it has). Failure only costs the speed-up. */
void sslmem_init(void)
{
	void *probe = malloc(SSLMEM_BLOCK);

	if (probe == NULL)
		return;
	sslmem_usable = malloc_usable_size(probe);
	free(probe);
	if (pthread_key_create(&sslmem_key, sslmem_thread_exit) != 0)
		return;
	(void)CRYPTO_set_mem_functions(
	    sslmem_malloc, sslmem_realloc, sslmem_free);
}
#else
void sslmem_init(void)
{
}
#endif
