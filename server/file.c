/*
 * file.c: the static file handler. Opens beneath the location's root
 * (the kernel refuses any escape), serves index files, redirects a
 * directory named without its slash, and answers conditionals and one
 * Range. The body stays a file range for body.c.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int errno_status(int e)
{
	switch (e) {
	case EACCES:
	case EPERM: return 403;
	case ENOENT:
	case ENOTDIR:
	case ENAMETOOLONG:
	case EXDEV: /* a symlink out of the root: as if absent */
	case ELOOP: return 404;
	case EMFILE:
	case ENFILE: /* out of descriptors: a passing state, not our fault */
		log_warn("open: %s", strerror(e));
		return 503;
	default: log_error("open: %s", strerror(e)); return 500;
	}
}

static int open_rel(
    struct location *l, const char *path, int *fd, struct stat *st)
{
	*fd = sys_open_beneath(
	    l->root_fd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (*fd < 0)
		return errno_status(errno);
	if (fstat(*fd, st) < 0) {
		int e = errno;
		close(*fd);
		*fd = -1;
		return errno_status(e);
	}
	return 0;
}

/* Percent-encode what may not stand in a Location path. */
static char *location_for(const char *path, struct span query)
{
	static const char ok[] = "-._~!$&'()*+,;=:@/";
	size_t n = strlen(path), o = 0;
	char *out = malloc(n * 3 + 2 + query.n + 2);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)path[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr(ok, ch) != NULL)
			out[o++] = (char)ch;
		else
			o += (size_t)sprintf(out + o, "%%%02X", ch);
	}
	out[o++] = '/';
	if (query.p != NULL) {
		out[o++] = '?';
		memcpy(out + o, query.p, query.n);
		o += query.n;
	}
	out[o] = '\0';
	return out;
}

/* A directory: its first index file that is a regular file. */
static int open_index(
    struct request *r, const char *dir, int *fd, struct stat *st, char **name)
{
	size_t dlen = strlen(dir);

	for (int i = 0; i < r->loc->nindex; i++) {
		size_t ilen = strlen(r->loc->index[i]);
		char *p = malloc(dlen + ilen + 1);
		int s;

		if (p == NULL)
			return 500;
		memcpy(p, dir, dlen);
		memcpy(p + dlen, r->loc->index[i], ilen + 1);
		s = open_rel(r->loc, p, fd, st);
		if (s == 0 && S_ISREG(st->st_mode)) {
			*name = p;
			return 0;
		}
		free(p);
		if (s == 0)
			close(*fd);
		*fd = -1;
		if (s != 404)
			return s;
	}
	return 403; /* no index, and listings are off */
}

/* The multipart body's closing delimiter. */
size_t file_tail(struct request *r, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "\r\n--%s--\r\n", r->boundary);

	return n < 0 ? 0 : (size_t)n;
}

/* Move to the next part: its range becomes the current one. 0 when none. */
int file_next_part(struct request *r)
{
	struct part *p;

	if (r->next_part >= r->nparts)
		return 0;
	p = &r->parts[r->next_part++];
	r->off = p->off;
	r->len = p->len;
	r->part_pos = 0;
	return 1;
}

/* Several ranges: part headers in one block, and the total length. */
static int multipart(struct request *r, const struct brange *br, int n)
{
	size_t each = 160 + strlen(r->ctype), used = 0;
	char tail[64], *block;

	snprintf(r->boundary, sizeof(r->boundary), "%08x%08x",
	    (unsigned)random(), (unsigned)random());
	r->parts = calloc((size_t)n, sizeof(*r->parts));
	block = malloc(each * (size_t)n);
	r->ctype_buf = malloc(64);
	if (r->parts == NULL || block == NULL || r->ctype_buf == NULL) {
		free(block);
		return -1;
	}
	snprintf(
	    r->ctype_buf, 64, "multipart/byteranges; boundary=%s", r->boundary);
	r->clen = 0;
	for (int i = 0; i < n; i++) {
		struct part *p = &r->parts[i];
		p->head = block + used;
		p->head_len = (size_t)snprintf(p->head, each,
		    "\r\n--%s\r\nContent-Type: %s\r\n"
		    "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
		    r->boundary, r->ctype, (unsigned long long)br[i].first,
		    (unsigned long long)br[i].last,
		    (unsigned long long)r->size);
		used += p->head_len;
		p->off = br[i].first;
		p->len = br[i].last - br[i].first + 1;
		r->clen += p->head_len + p->len;
	}
	r->nparts = n;
	r->clen += file_tail(r, tail, sizeof(tail));
	r->ctype = r->ctype_buf;
	r->off = r->len = 0; /* the writers start with part 0's head */
	return 0;
}

static void ranges(struct request *r)
{
	int max = (int)r->vh->cfg->max_ranges;
	struct brange br[max];
	int n = range_parse_set(r->range.p, r->range.n, r->size, br, max);

	if (n < 0) {
		r->status = 416;
	} else if (n == 1) {
		r->status = 206;
		r->partial = 1;
		r->off = br[0].first;
		r->clen = r->len = br[0].last - br[0].first + 1;
	} else if (n > 1) {
		r->status = multipart(r, br, n) == 0 ? 206 : 500;
	}
}

void file_serve(struct request *r, const char *path, struct span query)
{
	char *index = NULL; /* the index file's path, when path is a dir */
	const char *name = path;
	struct stat st;
	int fd, s;

	if (r->loc == NULL)
		r->loc = config_location(r->vh, path);
	if ((s = open_rel(r->loc, path, &fd, &st)) != 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		if (path[strlen(path) - 1] != '/') {
			r->location = location_for(path, query);
			s = r->location ? 301 : 500;
			goto fail;
		}
		if ((s = open_index(r, path, &fd, &st, &index)) != 0)
			goto fail;
		name = index;
	} else if (!S_ISREG(st.st_mode)) {
		close(fd);
		s = 404;
		goto fail;
	} else if (path[strlen(path) - 1] == '/') {
		close(fd); /* "/file.txt/" names no directory */
		s = 404;
		goto fail;
	}

	r->ctype = mime_type(r->vh->cfg->mime, name);
	compress_choose(r, name, r->ctype, &fd, &st);
	free(index);
	r->fd = fd;
	r->size = (uint64_t)st.st_size;
	r->mtime = st.st_mtime;
	/* each encoding is its own representation, with its own tag */
	snprintf(r->etag, sizeof(r->etag), "\"%llx-%llx%s%s\"",
	    (unsigned long long)st.st_mtime, (unsigned long long)st.st_size,
	    r->encoding ? "-" : "", r->encoding ? r->encoding : "");
	r->off = 0;
	r->clen = r->len = r->size;
	if (cond_not_modified(r)) {
		r->status = 304;
		return;
	}
	r->status = 200;
	if (r->range.p != NULL && cond_if_range(r))
		ranges(r);
	return;
fail:
	r->status = s;
}
