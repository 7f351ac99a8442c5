/*
 * filecache.c: a per-worker cache of open files (fd and stat), bounded,
 * least recently used out first, that never serves a file that changed.
 *
 * Watched entries (Linux inotify, sys_watch_*): every directory from the
 * root down to the file is watched for names created, deleted, moved or
 * changed in their attributes, and the file's inode itself for writes,
 * truncation and attribute changes (through any path: a hard link
 * elsewhere too). The worker reads the events from its loop, at a higher
 * priority than connections, and drops what they name: an entry, a
 * directory's whole subtree, or everything when the kernel says events
 * were lost (IN_Q_OVERFLOW). A hit on a watched entry makes no system
 * call at all, and a small body (open_file_cache_body, at most
 * open_file_cache_memory in all) is kept in memory with the fixed part of
 * its response head, so that a hit is sent from memory.
 *
 * Unwatched entries (no inotify, the watch limit reached, a symbolic link
 * on the path, a network or FUSE filesystem, open_file_cache_watch off)
 * are revalidated against the path on every hit with one fstatat(), as
 * before: another inode, size or time and the entry is dropped. They keep
 * no body in memory: a snapshot read during a write would look valid.
 *
 * Why a watched entry is never stale:
 * - order: the directories are watched, then the file's inode, and only
 *   then is the path checked to still name the inode we hold (lstat,
 *   so a link at its end is refused too). A change before that check is
 *   seen by the check; a change after it queues an event.
 * - a body is read after the watches and checked against a second
 *   fstat(): a write in between changed the times (the kernel stamps
 *   them before it copies data), so the snapshot is refused; a write in
 *   the same clock tick queues an event that drops it.
 * - events are queued by the kernel before the writer's syscall returns,
 *   so a request sent after a change completed finds the event readable
 *   no later than its own bytes: the event is handled first (priority).
 *   A request the worker reads within the same turn as one that was
 *   already waiting may still be answered from before the change, as if
 *   it had arrived a moment earlier; its head and body are one
 *   consistent version (ETag and bytes from the same snapshot).
 * - a file truncated under a response that is sent from its fd (not
 *   from memory) ends that response short and closes the connection
 *   (body.c, conn_sendfile: "file shrank"); it never hangs or pads.
 * Not seen: writes through a shared mmap (no event, and times change
 * late) and a filesystem mounted over a watched directory; a reload
 * does not help there, a restart does.
 *
 * Entries are counted references: a response holds its entry until it is
 * sent, and an entry evicted or found stale meanwhile is closed when its
 * last response lets go. One worker owns its cache: no locks.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIN_MAX 16 /* directory nodes one watch may stand for */

struct fc_dir;

/* One inotify watch: a directory, or a cached file's inode. */
struct fc_watch {
	struct fc_watch *next; /* in the id hash */
	int id;
	int gone;  /* the kernel removed it: no sys_watch_rm */
	int users; /* directory nodes, entries, pins */
	TAILQ_HEAD(, fc_dir) dirs;
	TAILQ_HEAD(, fc_entry) files;
};

/* A watched directory, by path under a root: "/", "/a/", "/a/b/". */
struct fc_dir {
	struct fc_dir *next_hash;
	TAILQ_ENTRY(fc_dir) wlink;
	struct fc_watch *w;
	struct fc_dir *parent; /* NULL for the root */
	int refs;              /* entries and subdirectories on it, pins */
	uint64_t hash;
	dev_t rdev;
	ino_t rino;
	size_t len;
	char path[];
};

struct fc_entry {
	struct fc_entry *next_hash;
	TAILQ_ENTRY(fc_entry) lru;
	TAILQ_ENTRY(fc_entry) blru;  /* with a body in memory, by use */
	TAILQ_ENTRY(fc_entry) wlink; /* on its inode's watch */
	struct filecache *fc;
	struct fc_watch *w; /* NULL: not watched */
	struct fc_dir *dir; /* NULL: not watched */
	uint64_t hash;
	dev_t rdev; /* the root's inode: locations share entries */
	ino_t rino;
	int fd;
	int refs;
	int cached;  /* still in the table */
	int watched; /* w and dir set and the path checked: no stat per hit */
	struct stat st;
	char *body; /* st_size bytes, or NULL */
	char *head; /* "Content-Type: ..ETag: ..\r\n", then its ctype */
	size_t head_len;
	struct fc_headvals hv; /* the values inside head */
	uint64_t mime_id;      /* ctype is mime_type from this table */
	const char *ctype;
	char path[];
};

TAILQ_HEAD(fc_lru, fc_entry);

struct filecache {
	struct fc_entry **tab;
	struct fc_dir **dtab;
	struct fc_watch **wtab;
	size_t cap; /* buckets of each table, a power of two */
	long n, max;
	struct fc_lru lru;  /* most recently used first */
	struct fc_lru blru; /* entries with a body, most recent first */
	size_t body_max, mem, mem_max;
	int wfd; /* inotify, or -1 */
	int overflow;
	struct event *wev;
	uint64_t hits, misses, stale;
};

static uint64_t hash(dev_t dev, ino_t ino, const char *path)
{
	/* the root's dev and inode as two words, not sixteen FNV steps
	 * (issue 13: a hash per hit); the path's bytes as before */
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ULL) ^
	    ((uint64_t)ino * 0xc2b2ae3d27d4eb4fULL) ^ 1469598103934665603ULL;

	for (const char *s = path; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct fc_entry *find(
    struct filecache *fc, dev_t dev, ino_t ino, const char *path)
{
	uint64_t h = hash(dev, ino, path);
	struct fc_entry *e;

	for (e = fc->tab[h & (fc->cap - 1)]; e != NULL; e = e->next_hash)
		if (e->hash == h && e->rino == ino && e->rdev == dev &&
		    strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

static struct fc_dir *dir_find(
    struct filecache *fc, dev_t dev, ino_t ino, const char *path)
{
	uint64_t h = hash(dev, ino, path);
	struct fc_dir *d;

	for (d = fc->dtab[h & (fc->cap - 1)]; d != NULL; d = d->next_hash)
		if (d->hash == h && d->rino == ino && d->rdev == dev &&
		    strcmp(d->path, path) == 0)
			return d;
	return NULL;
}

/* ---- watches ---- */

static struct fc_watch *watch_find(struct filecache *fc, int id)
{
	struct fc_watch *w = fc->wtab[(size_t)id & (fc->cap - 1)];

	while (w != NULL && w->id != id)
		w = w->next;
	return w;
}

/* The watch with this id, made if new, with one more user. */
static struct fc_watch *watch_use(struct filecache *fc, int id)
{
	struct fc_watch *w = watch_find(fc, id);

	if (w == NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return NULL;
		w->id = id;
		TAILQ_INIT(&w->dirs);
		TAILQ_INIT(&w->files);
		w->next = fc->wtab[(size_t)id & (fc->cap - 1)];
		fc->wtab[(size_t)id & (fc->cap - 1)] = w;
	}
	w->users++;
	return w;
}

static void watch_unuse(struct filecache *fc, struct fc_watch *w)
{
	struct fc_watch **pp = &fc->wtab[(size_t)w->id & (fc->cap - 1)];

	if (--w->users > 0)
		return;
	while (*pp != w)
		pp = &(*pp)->next;
	*pp = w->next;
	if (!w->gone && fc->wfd >= 0)
		sys_watch_rm(fc->wfd, w->id);
	free(w);
}

/* A watch that failed: say so when it is the limit (once a second). */
static void watch_failed(int e)
{
	static struct log_limit lim;
	long more;

	if (e == ENOSPC && log_limited(&lim, &more))
		log_warn("open_file_cache: inotify watch limit reached "
		         "(fs.inotify.max_user_watches): files past it are "
		         "revalidated with a stat on every hit (%ld more "
		         "since the last such line)",
		    more);
	else if (e != ENOSPC)
		log_debug("open_file_cache: not watched: %s", strerror(e));
}

/* ---- directory nodes ---- */

static void dir_unref(struct filecache *fc, struct fc_dir *d)
{
	while (d != NULL && --d->refs == 0) {
		struct fc_dir **pp = &fc->dtab[d->hash & (fc->cap - 1)];
		struct fc_dir *parent = d->parent;

		while (*pp != d)
			pp = &(*pp)->next_hash;
		*pp = d->next_hash;
		TAILQ_REMOVE(&d->w->dirs, d, wlink);
		watch_unuse(fc, d->w);
		free(d);
		d = parent;
	}
}

/* A new node for directory buf under l's root, holding parent's
 * reference (taken over from the caller). NULL: it cannot be watched. */
static struct fc_dir *dir_new(struct filecache *fc, const struct location *l,
    const char *buf, size_t len, struct fc_dir *parent)
{
	struct fc_watch *w;
	struct fc_dir *d;
	int id;

	if ((id = sys_watch_dir(fc->wfd, l->root_fd, buf)) < 0) {
		watch_failed(errno);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d) + len + 1)) == NULL ||
	    (w = watch_use(fc, id)) == NULL) {
		free(d);
		return NULL; /* a watch nobody uses: gone with the instance */
	}
	memcpy(d->path, buf, len + 1);
	d->len = len;
	d->rdev = l->root_dev;
	d->rino = l->root_ino;
	d->hash = hash(d->rdev, d->rino, d->path);
	d->parent = parent;
	d->refs = 1;
	d->w = w;
	TAILQ_INSERT_TAIL(&w->dirs, d, wlink);
	d->next_hash = fc->dtab[d->hash & (fc->cap - 1)];
	fc->dtab[d->hash & (fc->cap - 1)] = d;
	return d;
}

/*
 * The watched node of directory path[0..len) (ending in '/') under l's
 * root, made root first when new, with a reference taken. NULL: it
 * cannot be watched (the limit, a link on the way, a filesystem whose
 * changes we might not see).
 */
static struct fc_dir *dir_get(struct filecache *fc, const struct location *l,
    const char *path, size_t len)
{
	char *buf = malloc(len + 1);
	struct fc_dir *d = NULL, *up = NULL; /* up: we hold a reference */

	if (buf == NULL)
		return NULL;
	memcpy(buf, path, len);
	buf[len] = '\0';
	if ((d = dir_find(fc, l->root_dev, l->root_ino, buf)) != NULL) {
		d->refs++;
		goto done;
	}
	for (size_t end = 1; end <= len; end++) {
		if (path[end - 1] != '/')
			continue;
		buf[end] = '\0';
		if ((d = dir_find(fc, l->root_dev, l->root_ino, buf)) != NULL) {
			d->refs++;
			dir_unref(fc, up); /* d holds its own on its parent */
		} else if ((d = dir_new(fc, l, buf, end, up)) == NULL) {
			dir_unref(fc, up);
			goto done;
		}
		up = d;
		buf[end] = path[end];
	}
done:
	free(buf);
	return d;
}

/* ---- entries ---- */

static void entry_unwatch(struct filecache *fc, struct fc_entry *e)
{
	if (e->w != NULL) {
		TAILQ_REMOVE(&e->w->files, e, wlink);
		watch_unuse(fc, e->w);
		e->w = NULL;
	}
	dir_unref(fc, e->dir);
	e->dir = NULL;
	e->watched = 0;
}

static void entry_free(struct fc_entry *e)
{
	if (e->body != NULL)
		e->fc->mem -= (size_t)e->st.st_size;
	close(e->fd);
	free(e->body);
	free(e->head);
	free(e);
}

static void drop(struct fc_entry *e)
{
	struct filecache *fc = e->fc;
	struct fc_entry **pp = &fc->tab[e->hash & (fc->cap - 1)];

	while (*pp != e)
		pp = &(*pp)->next_hash;
	*pp = e->next_hash;
	TAILQ_REMOVE(&fc->lru, e, lru);
	if (e->body != NULL) /* kept for a response in flight */
		TAILQ_REMOVE(&fc->blru, e, blru);
	fc->n--;
	e->cached = 0;
	entry_unwatch(fc, e);
	if (e->refs == 0)
		entry_free(e);
}

void fc_put(struct fc_entry *e)
{
	if (--e->refs == 0 && !e->cached)
		entry_free(e);
}

static void drop_all(struct filecache *fc)
{
	struct fc_entry *e;

	while ((e = TAILQ_FIRST(&fc->lru)) != NULL)
		drop(e);
}

/* Every entry at or below directory node d. */
static void drop_subtree(struct filecache *fc, struct fc_dir *d)
{
	struct fc_entry *e, *next;

	for (e = TAILQ_FIRST(&fc->lru); e != NULL; e = next) {
		next = TAILQ_NEXT(e, lru);
		for (struct fc_dir *x = e->dir; x != NULL; x = x->parent)
			if (x == d) {
				drop(e);
				break;
			}
	}
}

/* ---- events ---- */

/* Name changed in directory d: that entry, and that subdirectory's tree. */
static void name_changed(
    struct filecache *fc, struct fc_dir *d, const char *name)
{
	size_t n = strlen(name);
	char *p = malloc(d->len + n + 2);
	struct fc_entry *e;
	struct fc_dir *sub;

	if (p == NULL) {
		drop_subtree(fc, d);
		return;
	}
	memcpy(p, d->path, d->len);
	memcpy(p + d->len, name, n + 1);
	if ((e = find(fc, d->rdev, d->rino, p)) != NULL)
		drop(e);
	memcpy(p + d->len + n, "/", 2);
	if ((sub = dir_find(fc, d->rdev, d->rino, p)) != NULL)
		drop_subtree(fc, sub);
	free(p);
}

static void on_event(void *arg, int id, const char *name, int what)
{
	struct filecache *fc = arg;
	struct fc_dir *pin[PIN_MAX], *d;
	struct fc_watch *w;
	struct fc_entry *e;
	int npin = 0;

	if (what & SYS_WATCH_OVERFLOW) {
		fc->overflow = 1;
		return;
	}
	if (fc->overflow || (w = watch_find(fc, id)) == NULL)
		return; /* everything goes anyway; or nothing cached on it */
	if (what & SYS_WATCH_GONE)
		w->gone = 1;
	w->users++; /* held while what hangs on it goes */
	while ((e = TAILQ_FIRST(&w->files)) != NULL)
		drop(e); /* the file itself changed */
	TAILQ_FOREACH(d, &w->dirs, wlink)
	{
		if (npin == PIN_MAX) {
			fc->overflow = 1; /* absurd; be safe */
			break;
		}
		d->refs++;
		pin[npin++] = d;
	}
	for (int i = 0; i < npin; i++) {
		if (name != NULL && !(what & SYS_WATCH_GONE))
			name_changed(fc, pin[i], name);
		else /* the directory itself moved, went or changed mode */
			drop_subtree(fc, pin[i]);
	}
	for (int i = 0; i < npin; i++)
		dir_unref(fc, pin[i]);
	watch_unuse(fc, w);
}

static void on_events(evutil_socket_t fd, short what, void *arg)
{
	struct filecache *fc = arg;

	(void)fd;
	(void)what;
	fc->overflow = 0;
	if (sys_watch_read(fc->wfd, on_event, fc) < 0) {
		log_warn("open_file_cache: reading inotify events: %s; every "
		         "hit is revalidated with a stat from now on",
		    strerror(errno));
		drop_all(fc);
		event_del(fc->wev);
		close(fc->wfd);
		fc->wfd = -1;
		return;
	}
	if (fc->overflow) {
		log_info("open_file_cache: inotify events were lost; the "
		         "worker's cache starts over");
		drop_all(fc);
	}
}

/* ---- the cache ---- */

struct filecache *fc_new(struct config *cfg, struct event_base *base)
{
	struct filecache *fc;

	if (cfg->open_file_cache <= 0 || (fc = calloc(1, sizeof(*fc))) == NULL)
		return NULL;
	for (fc->cap = 64; (long)fc->cap < cfg->open_file_cache; fc->cap *= 2)
		;
	fc->tab = calloc(fc->cap, sizeof(*fc->tab));
	fc->dtab = calloc(fc->cap, sizeof(*fc->dtab));
	fc->wtab = calloc(fc->cap, sizeof(*fc->wtab));
	if (fc->tab == NULL || fc->dtab == NULL || fc->wtab == NULL) {
		free(fc->tab);
		free(fc->dtab);
		free(fc->wtab);
		free(fc);
		return NULL;
	}
	fc->max = cfg->open_file_cache;
	fc->body_max = (size_t)cfg->open_file_cache_body;
	fc->mem_max = (size_t)cfg->open_file_cache_memory;
	TAILQ_INIT(&fc->lru);
	TAILQ_INIT(&fc->blru);
	fc->wfd = -1;
	if (!cfg->open_file_cache_watch)
		return fc;
	/*
	 * Events before connections: a request sent after a change finds
	 * the change's event handled before its own bytes. Priorities must
	 * be set before the base has any event: the worker calls us first.
	 */
	if ((fc->wfd = sys_watch_open()) < 0 ||
	    event_base_priority_init(base, 2) < 0 ||
	    (fc->wev = event_new(
	         base, fc->wfd, EV_READ | EV_PERSIST, on_events, fc)) == NULL ||
	    event_priority_set(fc->wev, 0) < 0 ||
	    event_add(fc->wev, NULL) < 0) {
		log_warn("open_file_cache: no change notification (%s): "
		         "every hit is revalidated with a stat",
		    strerror(errno));
		if (fc->wev != NULL)
			event_free(fc->wev);
		fc->wev = NULL;
		if (fc->wfd >= 0)
			close(fc->wfd);
		fc->wfd = -1;
	}
	return fc;
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
	if (fc->wev != NULL)
		event_free(fc->wev);
	if (fc->wfd >= 0)
		close(fc->wfd);
	free(fc->tab);
	free(fc->dtab);
	free(fc->wtab);
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

/* Room for n more body bytes: bodies no response holds go, oldest first. */
static int body_room(struct filecache *fc, size_t n)
{
	struct fc_entry *e = TAILQ_LAST(&fc->blru, fc_lru), *prev;

	for (; fc->mem + n > fc->mem_max && e != NULL; e = prev) {
		prev = TAILQ_PREV(e, fc_lru, blru);
		if (e->refs > 0)
			continue;
		TAILQ_REMOVE(&fc->blru, e, blru);
		fc->mem -= (size_t)e->st.st_size;
		free(e->body);
		e->body = NULL;
	}
	return fc->mem + n <= fc->mem_max;
}

/*
 * A watched small file's bytes into memory, when the page cache has them
 * all (the worker never waits on the disk: otherwise the response reads
 * them the usual way and a later hit tries again). The snapshot is taken
 * between two stats that agree, so its bytes are the ones its ETag names;
 * a file that changed meanwhile is tried again with its new stat (the
 * change's event drops the entry soon anyway).
 */
static void body_load(struct filecache *fc, struct fc_entry *e)
{
	struct stat cur = e->st, now;
	char *b = NULL;

	if (e->body != NULL || !e->watched)
		return;
	for (int tries = 0; tries < 3; tries++, cur = now) {
		size_t n = (size_t)cur.st_size;
		ssize_t got = 0;
		char *nb;
		if (cur.st_size < 0 || n > fc->body_max || !body_room(fc, n) ||
		    (nb = realloc(b, n ? n : 1)) == NULL)
			break;
		b = nb;
		if (n > 0 && (got = sys_pread_nowait(e->fd, b, n, 0)) < 0 &&
		    errno == EOPNOTSUPP)
			got = pread(e->fd, b, n, 0); /* it cannot say */
		if (got < 0 || fstat(e->fd, &now) < 0)
			break; /* cold: the usual way this time */
		if (got == (ssize_t)n && same_file(&now, &cur)) {
			if (!same_file(&cur, &e->st)) { /* its head is old */
				free(e->head);
				e->head = NULL;
			}
			e->st = cur;
			e->body = b;
			fc->mem += n;
			TAILQ_INSERT_HEAD(&fc->blru, e, blru);
			return;
		}
	}
	free(b);
}

/*
 * A cached, still valid file at path under l's root: its fd and stat,
 * with a reference taken. NULL on a miss (stale entries are dropped).
 */
struct fc_entry *fc_get(struct filecache *fc, const struct location *l,
    const char *path, int *fd, struct stat *st)
{
	struct fc_entry *e;
	struct stat now;

	if (fc == NULL)
		return NULL;
	if ((e = find(fc, l->root_dev, l->root_ino, path)) == NULL) {
		fc->misses++;
		return NULL;
	}
	/* not watched: the path, as it is now: the same inode, size, times?
	 */
	if (!e->watched &&
	    (fstatat(l->root_fd, path[1] ? path + 1 : ".", &now, 0) < 0 ||
	        !same_file(&now, &e->st))) {
		fc->stale++;
		drop(e);
		return NULL;
	}
	fc->hits++;
	TAILQ_REMOVE(&fc->lru, e, lru);
	TAILQ_INSERT_HEAD(&fc->lru, e, lru);
	if (e->body != NULL) {
		TAILQ_REMOVE(&fc->blru, e, blru);
		TAILQ_INSERT_HEAD(&fc->blru, e, blru);
	} else
		body_load(fc, e); /* e->st may move on with it */
	e->refs++;
	*fd = e->fd;
	*st = e->st;
	return e;
}

/*
 * Watch a new entry: its directories, then its inode, then check that
 * the path still names that inode (so nothing changed unseen since the
 * open). e->st becomes the inode's stat as of the check.
 */
static void watch_entry(
    struct filecache *fc, const struct location *l, struct fc_entry *e)
{
	const char *slash = strrchr(e->path, '/');
	struct fc_watch *w;
	struct stat now;
	int id;

	if (slash == NULL ||
	    (e->dir = dir_get(fc, l, e->path, (size_t)(slash - e->path) + 1)) ==
	        NULL)
		return;
	if ((id = sys_watch_file(fc->wfd, e->fd)) < 0) {
		watch_failed(errno);
		entry_unwatch(fc, e);
		return;
	}
	if ((w = watch_use(fc, id)) == NULL) {
		sys_watch_rm(fc->wfd, id);
		entry_unwatch(fc, e);
		return;
	}
	e->w = w;
	TAILQ_INSERT_TAIL(&w->files, e, wlink);
	if (fstatat(l->root_fd, e->path[1] ? e->path + 1 : ".", &now,
	        AT_SYMLINK_NOFOLLOW) < 0 ||
	    now.st_ino != e->st.st_ino || now.st_dev != e->st.st_dev) {
		entry_unwatch(fc, e); /* changed, or a link: stat per hit */
		return;
	}
	e->st = now;
	e->watched = 1;
	body_load(fc, e);
}

/* Cache a regular file just opened; the caller keeps a reference. */
struct fc_entry *fc_add(struct filecache *fc, const struct location *l,
    const char *path, int fd, struct stat *st)
{
	size_t plen = strlen(path);
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
	if ((e = calloc(1, sizeof(*e) + plen + 1)) == NULL)
		return NULL;
	memcpy(e->path, path, plen + 1);
	e->rdev = l->root_dev;
	e->rino = l->root_ino;
	e->hash = hash(e->rdev, e->rino, path);
	e->fc = fc;
	e->fd = fd;
	e->refs = 1;
	e->cached = 1;
	e->st = *st;
	e->next_hash = fc->tab[e->hash & (fc->cap - 1)];
	fc->tab[e->hash & (fc->cap - 1)] = e;
	TAILQ_INSERT_HEAD(&fc->lru, e, lru);
	fc->n++;
	if (fc->wfd >= 0)
		watch_entry(fc, l, e);
	*st = e->st; /* as of the check after the watches, when watched */
	return e;
}

/* The file's bytes in memory (st_size of them), or NULL. */
const char *fc_body(const struct fc_entry *e)
{
	return e->body;
}

/* n bytes of s at *p, moving it on; where they went. */
static struct span put(char **p, const char *s, size_t n)
{
	struct span sp = { *p, n };

	memcpy(*p, s, n);
	*p += n;
	return sp;
}

#define PUT_LIT(p, s) put(p, "" s, sizeof(s) - 1)
/* fc_head's text between the values, whose total size is known */
#define H_CT  "Content-Type: "
#define H_CL  "\r\nContent-Length: "
#define H_LM  "\r\nAccept-Ranges: bytes\r\nLast-Modified: "
#define H_ET  "\r\nETag: "
#define H_END "\r\n"

/*
 * The head fields of a 200 for this file that do not change between
 * requests, built once (again when the Content-Type differs: another
 * configuration), with where each value is in it (fc_head_vals, for
 * HTTP/2). NULL when out of memory: the caller formats them.
 */
const char *fc_head(
    struct fc_entry *e, const char *ctype, const char *etag, size_t *len)
{
	char lm[40], num[24];
	size_t clen, elen, lmlen, nlen;
	struct fc_headvals hv;
	char *h, *p;

	if (e->head != NULL && strcmp(e->head + e->head_len + 1, ctype) == 0) {
		*len = e->head_len;
		return e->head;
	}
	clen = strlen(ctype);
	elen = strlen(etag);
	if ((lmlen = date_format(e->st.st_mtime, lm, sizeof(lm))) == 0)
		return NULL;
	nlen = (size_t)(date_u64(num, (uint64_t)e->st.st_size, 10) - num);
	/* the head, its NUL, then the ctype it was built for */
	if ((h = malloc(sizeof(H_CT H_CL H_LM H_ET H_END) + clen + nlen +
	         lmlen + elen + clen + 1)) == NULL)
		return NULL;
	p = h;
	PUT_LIT(&p, H_CT);
	hv.ctype = put(&p, ctype, clen);
	PUT_LIT(&p, H_CL);
	hv.clen = put(&p, num, nlen);
	PUT_LIT(&p, H_LM);
	hv.lm = put(&p, lm, lmlen);
	PUT_LIT(&p, H_ET);
	hv.etag = put(&p, etag, elen);
	PUT_LIT(&p, H_END);
	*p = '\0';
	memcpy(p + 1, ctype, clen + 1);
	free(e->head);
	e->head = h;
	e->hv = hv;
	*len = e->head_len = (size_t)(p - h);
	return h;
}

/* The values in the head fc_head last returned for e: valid as long as
 * that head (until fc_head builds another, or the entry changes). */
const struct fc_headvals *fc_head_vals(const struct fc_entry *e)
{
	return &e->hv;
}

/*
 * mime_type(m, path) for this entry's file (path: the name it was looked
 * up by), remembered with m's id: a file's type changes only with the
 * table, and an id is never another table's, so the pointer into m is
 * used only while m is the table asked, which the caller holds.
 */
const char *fc_mime(struct fc_entry *e, const struct mime *m, const char *path)
{
	uint64_t id = mime_id(m);

	if (id == 0 || id != e->mime_id) {
		e->ctype = mime_type(m, path);
		e->mime_id = id;
	}
	return e->ctype;
}
