/*
 * mime.c: file extension -> Content-Type, from /etc/mime.types with a
 * built-in table underneath for when that file is missing or partial.
 * An open-addressing hash, built once per config, read without locks.
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_DEFAULT "application/octet-stream"

struct mime_ent {
	char *ext; /* lower case */
	char *type;
};

struct mime {
	struct mime_ent *tab;
	size_t cap; /* power of two */
	size_t n;
	uint64_t id; /* this table's, never another's (mime_id) */
};

static atomic_uint_fast64_t last_id;

static const char *const builtin[][2] = {
	{ "html", "text/html" },
	{ "htm", "text/html" },
	{ "css", "text/css" },
	{ "js", "text/javascript" },
	{ "mjs", "text/javascript" },
	{ "json", "application/json" },
	{ "txt", "text/plain" },
	{ "xml", "application/xml" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "avif", "image/avif" },
	{ "ico", "image/x-icon" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "wasm", "application/wasm" },
	{ "pdf", "application/pdf" },
	{ "mp4", "video/mp4" },
	{ "webm", "video/webm" },
	{ "mp3", "audio/mpeg" },
	{ "m3u8", "application/vnd.apple.mpegurl" },
	{ "ts", "video/mp2t" },
	{ "gz", "application/gzip" },
	{ "zip", "application/zip" },
	{ "tar", "application/x-tar" },
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)tolower((unsigned char)*s)) *
		    1099511628211ULL;
	return h;
}

static int grow(struct mime *m)
{
	struct mime_ent *old = m->tab;
	size_t oldcap = m->cap;

	m->cap = oldcap ? oldcap * 2 : 256;
	m->tab = calloc(m->cap, sizeof(*m->tab));
	if (m->tab == NULL)
		return -1;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].ext == NULL)
			continue;
		size_t j = hash(old[i].ext) & (m->cap - 1);
		while (m->tab[j].ext != NULL)
			j = (j + 1) & (m->cap - 1);
		m->tab[j] = old[i];
	}
	free(old);
	return 0;
}

/* Later entries win, so the file overrides the built-in table. */
static int add(struct mime *m, const char *ext, const char *type)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
		return -1;
	for (i = hash(ext) & (m->cap - 1); m->tab[i].ext != NULL;
	     i = (i + 1) & (m->cap - 1)) {
		if (strcasecmp(m->tab[i].ext, ext) == 0) {
			char *t = strdup(type);
			if (t == NULL)
				return -1;
			free(m->tab[i].type);
			m->tab[i].type = t;
			return 0;
		}
	}
	m->tab[i].ext = strdup(ext);
	m->tab[i].type = strdup(type);
	if (m->tab[i].ext == NULL || m->tab[i].type == NULL)
		return -1;
	for (char *p = m->tab[i].ext; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	m->n++;
	return 0;
}

/* Missing or unreadable file: the built-in table alone (not an error). */
struct mime *mime_load(const char *path)
{
	struct mime *m = calloc(1, sizeof(*m));
	char line[1024];
	FILE *f;

	if (m == NULL)
		return NULL;
	m->id = atomic_fetch_add(&last_id, 1) + 1;
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (add(m, builtin[i][0], builtin[i][1]) < 0)
			goto fail;
	f = path && *path ? fopen(path, "r") : NULL;
	if (f == NULL)
		return m;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *save, *type, *ext;
		if (line[0] == '#')
			continue;
		type = strtok_r(line, " \t\r\n", &save);
		if (type == NULL)
			continue;
		while ((ext = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
			if (add(m, ext, type) < 0) {
				fclose(f);
				goto fail;
			}
		}
	}
	fclose(f);
	return m;
fail:
	mime_free(m);
	return NULL;
}

void mime_free(struct mime *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		free(m->tab[i].ext);
		free(m->tab[i].type);
	}
	free(m->tab);
	free(m);
}

/*
 * A number no other table loaded by this process has, 0 for none: a
 * type found in table m stays valid, and right for the same path, as
 * long as the table with this id is the one asked (filecache.c keeps
 * one per file; a table freed and another allocated at its address
 * has another id).
 */
uint64_t mime_id(const struct mime *m)
{
	return m != NULL ? m->id : 0;
}

const char *mime_type(const struct mime *m, const char *path)
{
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');

	if (m == NULL || m->cap == 0 || dot == NULL ||
	    (slash != NULL && dot < slash) || dot[1] == '\0')
		return MIME_DEFAULT;
	for (size_t i = hash(dot + 1) & (m->cap - 1); m->tab[i].ext != NULL;
	     i = (i + 1) & (m->cap - 1))
		if (strcasecmp(m->tab[i].ext, dot + 1) == 0)
			return m->tab[i].type;
	return MIME_DEFAULT;
}
