/*
 * listeners.c: the listening sockets, one SO_REUSEPORT socket per worker
 * for each address. They outlive config generations: a reload that keeps
 * an address keeps its sockets, so no queued connection is dropped.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct lsock {
	char key[80];
	int fds[KT_MAX_WORKERS];
	int used;
};

static struct lsock **socks; /* each entry stays put: configs point in */
static int nsocks, nworkers;

static void close_fds(struct lsock *l)
{
	for (int i = 0; i < nworkers; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
}

/* Open what cfg needs and lacks; point cfg's addresses at the sockets. */
int listeners_sync(struct config *cfg)
{
	struct lsock **grown;
	int first = nsocks;

	if (nworkers == 0)
		nworkers = cfg->workers;
	cfg->workers = nworkers; /* the thread count is fixed at start */
	grown = realloc(
	    socks, sizeof(*socks) * (size_t)(nsocks + cfg->nlistens));
	if (grown == NULL)
		return -1;
	socks = grown;
	for (int i = 0; i < nsocks; i++)
		socks[i]->used = 0;
	for (int k = 0; k < cfg->nlistens; k++) {
		struct listen_addr *la = &cfg->listens[k];
		struct lsock *l = NULL;

		for (int i = 0; i < nsocks; i++)
			if (strcmp(socks[i]->key, la->key) == 0)
				l = socks[i];
		if (l == NULL) {
			if ((l = calloc(1, sizeof(*l))) == NULL)
				goto fail;
			socks[nsocks++] = l;
			memcpy(l->key, la->key, sizeof(l->key));
			for (int w = 0; w < KT_MAX_WORKERS; w++)
				l->fds[w] = -1;
			for (int w = 0; w < nworkers; w++) {
				l->fds[w] = sys_listen(
				    (struct sockaddr *)&la->ss, la->sslen,
				    4096);
				if (l->fds[w] < 0) {
					log_error("listen %s: %s", la->spec,
					    strerror(errno));
					goto fail;
				}
			}
		}
		l->used = 1;
		la->fds = l->fds;
	}
	return 0;
fail:
	/* undo only what this call opened */
	for (int i = first; i < nsocks; i++) {
		close_fds(socks[i]);
		free(socks[i]);
	}
	nsocks = first;
	return -1;
}

/* After every worker moved to the new config: close what it dropped. */
void listeners_close_unused(void)
{
	int k = 0;

	for (int i = 0; i < nsocks; i++) {
		if (!socks[i]->used) {
			close_fds(socks[i]);
			free(socks[i]);
			continue;
		}
		socks[k++] = socks[i];
	}
	nsocks = k;
}
