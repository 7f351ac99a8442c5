/*
 * compress.c: content coding. A request that accepts br or gzip may get
 * a precompressed sibling (file.br, file.gz: gzip_static), or a gzip made
 * once on the fly and kept in a cache folder (gzip). Either way the
 * encoded variant is a plain file, so it leaves by sendfile and kTLS like
 * any other: nginx's on-the-fly gzip gives that up, we do not.
 *
 * The cache is keyed by path, inode, size and mtime (a changed file gets
 * a new entry), written as a temporary file then renamed (a reader never
 * sees half an entry), and bounded in size: past gzip_cache_size the
 * oldest entries are removed.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

static atomic_llong cache_bytes = -1; /* -1: not yet counted */

/* q-value (0..1000) the client gives coding, or -1 when it names none. */
int compress_accepts(struct span ae, const char *coding)
{
	const char *p = ae.p, *end = ae.p + ae.n;
	size_t clen = strlen(coding);
	int star = -1, mine = -1;

	while (p != NULL && p < end) {
		const char *tok, *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		size_t tlen;
		int q = 1000;

		while (p < stop && (*p == ' ' || *p == '\t'))
			p++;
		tok = p;
		while (p < stop && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		tlen = (size_t)(p - tok);
		for (const char *s = p; s < stop; s++) { /* ;q=0.5 */
			if ((*s == 'q' || *s == 'Q') && s + 1 < stop &&
			    s[1] == '=') {
				q = (int)(strtod(s + 2, NULL) * 1000 + 0.5);
				break;
			}
		}
		if (tlen == clen && strncasecmp(tok, coding, clen) == 0)
			mine = q;
		else if (tlen == 1 && *tok == '*')
			star = q;
		p = comma ? comma + 1 : NULL;
	}
	return mine >= 0 ? mine : star;
}

static int compressible(const struct config *cfg, const char *ctype)
{
	size_t n = strcspn(ctype, ";");

	for (int i = 0; i < cfg->ngzip_types; i++)
		if (strlen(cfg->gzip_types[i]) == n &&
		    strncasecmp(cfg->gzip_types[i], ctype, n) == 0)
			return 1;
	return 0;
}

/* Open path+suffix beneath the root, if it is a regular file. */
static int open_sibling(
    struct request *r, const char *path, const char *suffix, struct stat *st)
{
	char buf[4096];
	int fd;

	if (snprintf(buf, sizeof(buf), "%s%s", path, suffix) >=
	    (int)sizeof(buf))
		return -1;
	fd = sys_open_beneath(
	    r->loc->root_fd, buf, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Entries by age; remove the oldest until under 90% of the bound. */
struct entry {
	struct timespec mtime;
	off_t size;
	char name[80];
};

static int by_age(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return (x->mtime.tv_sec > y->mtime.tv_sec) -
		    (x->mtime.tv_sec < y->mtime.tv_sec);
	return (x->mtime.tv_nsec > y->mtime.tv_nsec) -
	    (x->mtime.tv_nsec < y->mtime.tv_nsec);
}

/* keep: the entry just made (a basename), never evicted by its maker */
static long long scan_cache(
    const char *dir, int evict_to, long long bound, const char *keep)
{
	DIR *d = opendir(dir);
	struct entry *e = NULL;
	size_t n = 0, cap = 0;
	long long total = 0;
	struct dirent *de;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode) || strlen(de->d_name) >= 80)
			continue;
		total += st.st_size;
		if (!evict_to ||
		    (keep != NULL && strcmp(de->d_name, keep) == 0))
			continue;
		if (n == cap) {
			struct entry *ne = realloc(
			    e, (cap = cap ? cap * 2 : 256) * sizeof(*e));
			if (ne == NULL)
				break;
			e = ne;
		}
		e[n].mtime = st.st_mtim;
		e[n].size = st.st_size;
		strcpy(e[n++].name, de->d_name);
	}
	if (evict_to) {
		qsort(e, n, sizeof(*e), by_age);
		for (size_t i = 0; i < n && total > bound * 9 / 10; i++)
			if (unlinkat(dirfd(d), e[i].name, 0) == 0)
				total -= e[i].size;
	}
	closedir(d);
	free(e);
	return total;
}

/* gzip src (size bytes) into a temporary file, then rename it to dst. */
static int deflate_to(int src, uint64_t size, const char *dir, const char *dst,
    int level, off_t *out_size)
{
	char tmp[4096], in[65536], out[65536];
	z_stream z = { 0 };
	uint64_t off = 0;
	int fd, zr = Z_OK, rv = -1;

	snprintf(tmp, sizeof(tmp), "%s/.tmp.XXXXXX", dir);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -1;
	if (deflateInit2(
	        &z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		goto fail;
	while (zr != Z_STREAM_END) {
		ssize_t n = 0;
		if (off < size) {
			n = pread(src, in, sizeof(in), (off_t)off);
			if (n <= 0)
				goto fail_z; /* shrank or failed: no entry */
			off += (uint64_t)n;
		}
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)n;
		do {
			z.next_out = (Bytef *)out;
			z.avail_out = sizeof(out);
			zr = deflate(&z, off < size ? Z_NO_FLUSH : Z_FINISH);
			size_t have = sizeof(out) - z.avail_out;
			if (have > 0 && write(fd, out, have) != (ssize_t)have)
				goto fail_z;
		} while (z.avail_out == 0);
	}
	*out_size = (off_t)z.total_out;
	if (rename(tmp, dst) == 0)
		rv = 0;
fail_z:
	deflateEnd(&z);
fail:
	close(fd);
	if (rv < 0)
		unlink(tmp);
	return rv;
}

/* The cache entry for this file version: found, or made now. */
static int cached_gzip(
    struct request *r, const char *path, const struct stat *st, int src)
{
	const struct config *cfg = r->vh->cfg;
	unsigned char md[32];
	unsigned int mdlen = sizeof(md);
	char key[4200], name[4200];
	int fd, n;
	off_t made;

	n = snprintf(key, sizeof(key), "%s\n%s\n%llu:%llu:%lld:%lld.%09ld",
	    r->loc->root, path, (unsigned long long)st->st_dev,
	    (unsigned long long)st->st_ino, (long long)st->st_size,
	    (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (n < 0 || n >= (int)sizeof(key) ||
	    EVP_Digest(key, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1)
		return -1;
	n = snprintf(name, sizeof(name), "%s/", cfg->gzip_cache);
	for (int i = 0; i < 16; i++)
		n += snprintf(
		    name + n, sizeof(name) - (size_t)n, "%02x", md[i]);
	snprintf(name + n, sizeof(name) - (size_t)n, ".gz");

	if ((fd = open(name, O_RDONLY | O_CLOEXEC)) >= 0)
		return fd;
	if (deflate_to(src, (uint64_t)st->st_size, cfg->gzip_cache, name,
	        (int)cfg->gzip_level, &made) < 0) {
		log_warn("gzip cache: cannot make an entry for %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (atomic_load(&cache_bytes) < 0)
		atomic_store(
		    &cache_bytes, scan_cache(cfg->gzip_cache, 0, 0, NULL));
	else if (atomic_fetch_add(&cache_bytes, made) + made >
	    cfg->gzip_cache_size)
		atomic_store(&cache_bytes,
		    scan_cache(cfg->gzip_cache, 1, cfg->gzip_cache_size,
		        strrchr(name, '/') + 1));
	return open(name, O_RDONLY | O_CLOEXEC);
}

/* The caller lets go of the original (it may be the open-file cache's). */
static void use(struct request *r, int *fd, struct stat *st, int nfd,
    const struct stat *nst, const char *coding)
{
	*fd = nfd;
	*st = *nst;
	r->encoding = coding;
}

/*
 * Maybe swap the file (*fd, *st) at path for an encoded variant. ctype is
 * the original's type, which the variant keeps.
 */
void compress_choose(struct request *r, const char *path, const char *ctype,
    int *fd, struct stat *st)
{
	const struct location *l = r->loc;
	const struct config *cfg = r->vh->cfg;
	struct stat vst;
	int vfd;

	if (!(l->gzip_static || (l->gzip && compressible(cfg, ctype))))
		return;
	r->vary = 1; /* the answer depends on Accept-Encoding */
	if (r->accept_encoding.p == NULL)
		return;
	if (l->gzip_static) {
		/* the higher q-value first; on a tie br (the smaller) */
		int qbr = compress_accepts(r->accept_encoding, "br");
		int qgz = compress_accepts(r->accept_encoding, "gzip");
		static const char *const sfx[2] = { ".br", ".gz" };
		static const char *const name[2] = { "br", "gzip" };
		int order[2] = { 0, 1 }, q[2] = { qbr, qgz };

		if (qgz > qbr)
			order[0] = 1, order[1] = 0;
		for (int i = 0; i < 2; i++) {
			int k = order[i];
			if (q[k] > 0 &&
			    (vfd = open_sibling(r, path, sfx[k], &vst)) >= 0) {
				use(r, fd, st, vfd, &vst, name[k]);
				return;
			}
		}
	}
	if (!l->gzip || !compressible(cfg, ctype) ||
	    compress_accepts(r->accept_encoding, "gzip") <= 0 ||
	    st->st_size < cfg->gzip_min_size ||
	    st->st_size > cfg->gzip_max_size)
		return;
	if ((vfd = cached_gzip(r, path, st, *fd)) < 0 || fstat(vfd, &vst) < 0) {
		if (vfd >= 0)
			close(vfd);
		return;
	}
	/* validators stay the original's: the entry is derived from it */
	vst.st_mtime = st->st_mtime;
	vst.st_mtim = st->st_mtim;
	use(r, fd, st, vfd, &vst, "gzip");
}
