/*
 * filecache.c: a per-worker cache of open files (fd and stat), bounded,
 * least recently used out first. A hit costs one fstatat() instead of
 * openat2() + fstat() + close(), and every hit is revalidated against
 * the path: a file renamed over, truncated, rewritten or deleted has
 * another inode, size or mtime, so it is never served from a stale fd.
 * (A change during a transfer is body.c's "file shrank" case.)
 *
 * Entries are counted references: a response holds its entry until it is
 * sent, and an entry evicted or found stale meanwhile is closed when its
 * last response lets go. One worker owns its cache: no locks.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fc_entry {
	struct fc_entry *next_hash;
	TAILQ_ENTRY(fc_entry) lru;
	struct filecache *fc;
	uint64_t hash;
	int fd;
	int refs;
	int cached; /* still in the table */
	struct stat st;
	char key[]; /* root "\0" path */
};

TAILQ_HEAD(fc_lru, fc_entry);

struct filecache {
	struct fc_entry **tab;
	size_t cap; /* buckets, a power of two */
	long n, max;
	struct fc_lru lru; /* most recently used first */
	uint64_t hits, misses, stale;
};

static uint64_t hash(const char *root, const char *path)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *s = root; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const char *s = path; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct filecache *fc_new(long max)
{
	struct filecache *fc;

	if (max <= 0 || (fc = calloc(1, sizeof(*fc))) == NULL)
		return NULL;
	for (fc->cap = 64; (long)fc->cap < max; fc->cap *= 2)
		;
	if ((fc->tab = calloc(fc->cap, sizeof(*fc->tab))) == NULL) {
		free(fc);
		return NULL;
	}
	fc->max = max;
	TAILQ_INIT(&fc->lru);
	return fc;
}

static void drop(struct fc_entry *e)
{
	struct filecache *fc = e->fc;
	struct fc_entry **pp = &fc->tab[e->hash & (fc->cap - 1)];

	while (*pp != e)
		pp = &(*pp)->next_hash;
	*pp = e->next_hash;
	TAILQ_REMOVE(&fc->lru, e, lru);
	fc->n--;
	e->cached = 0;
	if (e->refs == 0) {
		close(e->fd);
		free(e);
	}
}

void fc_put(struct fc_entry *e)
{
	if (--e->refs == 0 && !e->cached) {
		close(e->fd);
		free(e);
	}
}

void fc_free(struct filecache *fc)
{
	struct fc_entry *e;

	if (fc == NULL)
		return;
	while ((e = TAILQ_FIRST(&fc->lru)) != NULL) {
		e->refs = 0; /* the worker is gone: no response holds it */
		drop(e);
	}
	free(fc->tab);
	free(fc);
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * A cached, still valid file at path under l's root: its fd and stat,
 * with a reference taken. NULL on a miss (stale entries are dropped).
 */
struct fc_entry *fc_get(struct filecache *fc, const struct location *l,
    const char *path, int *fd, struct stat *st)
{
	uint64_t h = hash(l->root, path);
	size_t rlen = strlen(l->root);
	struct fc_entry *e;
	struct stat now;

	if (fc == NULL)
		return NULL;
	for (e = fc->tab[h & (fc->cap - 1)]; e != NULL; e = e->next_hash)
		if (e->hash == h && strcmp(e->key, l->root) == 0 &&
		    strcmp(e->key + rlen + 1, path) == 0)
			break;
	if (e == NULL) {
		fc->misses++;
		return NULL;
	}
	/* the path, as it is now: the same inode, size and times? */
	if (fstatat(l->root_fd, path[1] ? path + 1 : ".", &now, 0) < 0 ||
	    !same_file(&now, &e->st)) {
		fc->stale++;
		drop(e);
		return NULL;
	}
	fc->hits++;
	TAILQ_REMOVE(&fc->lru, e, lru);
	TAILQ_INSERT_HEAD(&fc->lru, e, lru);
	e->refs++;
	*fd = e->fd;
	*st = e->st;
	return e;
}

/* Cache a regular file just opened; the caller keeps a reference. */
struct fc_entry *fc_add(struct filecache *fc, const struct location *l,
    const char *path, int fd, const struct stat *st)
{
	size_t rlen = strlen(l->root), plen = strlen(path);
	struct fc_entry *e, *old;

	if (fc == NULL || !S_ISREG(st->st_mode))
		return NULL;
	if (fc->n >= fc->max) { /* the least recent one not in use goes */
		for (old = TAILQ_LAST(&fc->lru, fc_lru); old != NULL;
		     old = TAILQ_PREV(old, fc_lru, lru))
			if (old->refs == 0)
				break;
		if (old == NULL)
			return NULL; /* all busy: serve uncached */
		drop(old);
	}
	if ((e = malloc(sizeof(*e) + rlen + plen + 2)) == NULL)
		return NULL;
	memcpy(e->key, l->root, rlen + 1);
	memcpy(e->key + rlen + 1, path, plen + 1);
	e->hash = hash(l->root, path);
	e->fc = fc;
	e->fd = fd;
	e->refs = 1;
	e->cached = 1;
	e->st = *st;
	e->next_hash = fc->tab[e->hash & (fc->cap - 1)];
	fc->tab[e->hash & (fc->cap - 1)] = e;
	TAILQ_INSERT_HEAD(&fc->lru, e, lru);
	fc->n++;
	return e;
}
