/*
 * file.c: the static file handler. Opens beneath the location's root
 * (the kernel refuses any escape), serves index files, redirects a
 * directory named without its slash, and answers conditionals and one
 * Range. The body stays a file range for body.c.
 */
#define _GNU_SOURCE
#include "kttpd.h"
#include "../sys/sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTING_DONE 1 /* open_index answered with a listing */

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
	{
		static struct log_limit lim;
		long more;
		if (log_limited(&lim, &more))
			log_warn("open: %s (answered 503; %ld more since the "
			         "last such line)",
			    strerror(e), more);
	}
		return 503;
	default: log_error("open: %s", strerror(e)); return 500;
	}
}

/* Let go of a file from open_rel. */
static void drop_file(int fd, struct fc_entry *fce)
{
	if (fce != NULL)
		fc_put(fce);
	else if (fd >= 0)
		close(fd);
}

/* Open path beneath l's root, through the worker's open-file cache. */
static int open_rel(struct request *r, struct location *l, const char *path,
    int *fd, struct stat *st, struct fc_entry **fce)
{
	if ((*fce = fc_get(r->w ? r->w->fc : NULL, l, path, fd, st)) != NULL)
		return 0;
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
	*fce = fc_add(r->w ? r->w->fc : NULL, l, path, *fd, st);
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

/* Append s HTML-escaped, or percent-encoded for an href. */
static void put_escaped(FILE *f, const char *s, int href)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (href &&
		    !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		        (ch >= '0' && ch <= '9') || strchr("-._~/", ch)))
			fprintf(f, "%%%02X", ch);
		else if (!href && ch == '<')
			fputs("&lt;", f);
		else if (!href && ch == '>')
			fputs("&gt;", f);
		else if (!href && ch == '&')
			fputs("&amp;", f);
		else if (!href && ch == '"')
			fputs("&quot;", f);
		else if (!href && ch == '\'')
			fputs("&#39;", f);
		else
			fputc(ch, f);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* An HTML listing of dir (autoindex): names escaped, dotfiles left out. */
static int listing(struct request *r, const char *dir)
{
	int dfd = sys_open_beneath(
	    r->loc->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **names = NULL, *html = NULL;
	size_t n = 0, cap = 0, len = 0;
	struct dirent *de;
	DIR *d;
	FILE *f;
	int status = 500;

	if (dfd < 0)
		return errno_status(errno);
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return 500;
	}
	while ((de = readdir(d)) != NULL && n < KT_LISTING_MAX) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn = realloc(
			    names, (cap = cap ? cap * 2 : 64) * sizeof(*names));
			if (nn == NULL)
				goto fail;
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto fail;
		n++;
	}
	qsort(names, n, sizeof(*names), by_name);
	if ((f = open_memstream(&html, &len)) == NULL)
		goto fail;
	fputs("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
	      "<title>Index of ",
	    f);
	put_escaped(f, dir, 0);
	fputs("</title></head>\n<body><h1>Index of ", f);
	put_escaped(f, dir, 0);
	fputs("</h1>\n<pre>\n<a href=\"../\">../</a>\n", f);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		char when[40];
		int isdir;
		if (fstatat(dirfd(d), names[i], &st, 0) < 0)
			continue;
		isdir = S_ISDIR(st.st_mode);
		date_format(st.st_mtime, when, sizeof(when));
		fputs("<a href=\"", f);
		put_escaped(f, names[i], 1);
		fputs(isdir ? "/\">" : "\">", f);
		put_escaped(f, names[i], 0);
		fprintf(f, "%s</a>  %s  %lld\n", isdir ? "/" : "", when,
		    isdir ? -1LL : (long long)st.st_size);
	}
	fputs("</pre>\n</body></html>\n", f);
	if (fclose(f) == 0 &&
	    req_set_body(r, html, len, "text/html; charset=utf-8") == 0) {
		html = NULL;
		status = LISTING_DONE;
	}
fail:
	free(html);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return status;
}

/* A directory: its first index file that is a regular file. */
static int open_index(struct request *r, const char *dir, int *fd,
    struct stat *st, struct fc_entry **fce, char **name)
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
		s = open_rel(r, r->loc, p, fd, st, fce);
		if (s == 0 && S_ISREG(st->st_mode)) {
			*name = p;
			return 0;
		}
		free(p);
		if (s == 0)
			drop_file(*fd, *fce);
		*fd = -1;
		*fce = NULL;
		if (s != 404)
			return s;
	}
	return r->loc->autoindex ? listing(r, dir) : 403;
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

/*
 * "mtime-size" in hex at p, returning the end. A worker mostly serves
 * the same few files: the last one is kept per thread, as date_format
 * keeps its date (issue 13: two hex conversions a request otherwise).
 */
static char *etag_base(char *p, uint64_t mtime, uint64_t size)
{
	static __thread uint64_t last_m = UINT64_MAX, last_s;
	static __thread char last[40]; /* 16 + 1 + 16 hex digits */
	static __thread size_t last_n;

	if (mtime != last_m || size != last_s) {
		char *q = date_u64(last, mtime, 16);
		*q++ = '-';
		q = date_u64(q, size, 16);
		last_n = (size_t)(q - last);
		last_m = mtime;
		last_s = size;
	}
	memcpy(p, last, last_n);
	return p + last_n;
}

void file_serve(struct request *r, const char *path, struct span query)
{
	char *index = NULL; /* the index file's path, when path is a dir */
	const char *name = path;
	struct fc_entry *fce = NULL;
	struct stat st;
	int fd, vfd, s;

	if (r->loc == NULL)
		r->loc = vhost_location(r->vh, path);
	if ((s = open_rel(r, r->loc, path, &fd, &st, &fce)) != 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		drop_file(fd, fce);
		if (path[strlen(path) - 1] != '/') {
			r->location = location_for(path, query);
			s = r->location ? 301 : 500;
			goto fail;
		}
		if ((s = open_index(r, path, &fd, &st, &fce, &index)) ==
		    LISTING_DONE) {
			r->status = 200;
			return;
		}
		if (s != 0)
			goto fail;
		name = index;
	} else if (!S_ISREG(st.st_mode) || path[strlen(path) - 1] == '/') {
		drop_file(fd, fce); /* "/file.txt/" names no directory */
		s = 404;
		goto fail;
	}

	r->ctype = fce != NULL /* issue 13: found once per file */
	    ? fc_mime(fce, r->vh->cfg->mime, name)
	    : mime_type(r->vh->cfg->mime, name);
	vfd = fd;
	compress_choose(r, name, r->ctype, &vfd, &st);
	if (vfd != fd) { /* an encoded variant: not the cached original */
		drop_file(fd, fce);
		fce = NULL;
	}
	free(index);
	r->fd = vfd;
	r->fce = fce;
	r->size = (uint64_t)st.st_size;
	r->mtime = st.st_mtime;
	/* each encoding is its own representation, with its own tag */
	{ /* "mtime-size[-coding]" in hex, as nginx; no printf per request */
		char *p = r->etag;
		*p++ = '"';
		p = etag_base(p, (uint64_t)st.st_mtime, (uint64_t)st.st_size);
		if (r->encoding != NULL) {
			*p++ = '-';
			p = stpcpy(p, r->encoding);
		}
		*p++ = '"';
		*p = '\0';
	}
	r->off = 0;
	r->clen = r->len = r->size;
	if (cond_not_modified(r)) {
		r->status = 304;
		return;
	}
	r->status = 200;
	if (r->range.p != NULL && cond_if_range(r))
		ranges(r);
	if (fce != NULL) { /* issue 13: bytes and head fields from memory */
		r->fbody = fc_body(fce);
		if (r->status == 200)
			r->head_fixed = fc_head(
			    fce, r->ctype, r->etag, &r->head_fixed_len);
	}
	return;
fail:
	r->status = s;
}
