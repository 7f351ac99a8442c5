/*
 * vhost.c: finding the server a request is for (Host header, or the TLS
 * session's SNI name) among a listener's, and the location a path falls
 * in. Lookups over the built config, apart from config.c that builds it,
 * so that tls.c, redirect.c and the router need not call into config.c
 * (which calls them when it loads).
 */
#define _GNU_SOURCE
#include "kttpd.h"

#include <string.h>

/* name (NUL-terminated, from the config) is s[0..len), ASCII case
 * folded: no strlen and no locale-aware strncasecmp per request. Equal
 * bytes are the usual case (issue 13: folded only where they differ) */
static int name_eq(const char *name, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char a = (unsigned char)name[i],
		              b = (unsigned char)s[i];
		if (a == b) {
			if (a == '\0')
				return 0; /* name ends before len */
			continue;
		}
		/* different bytes match only as the two cases of a letter
		 * (which also stops at name's NUL) */
		a |= 0x20;
		if (a != (b | 0x20) || a < 'a' || a > 'z')
			return 0;
	}
	return name[len] == '\0';
}

/* Host header or SNI name -> one of the listener's servers, or NULL. */
struct vhost *vhost_by_name(
    struct listen_addr *la, const char *name, size_t len)
{
	const char *colon;

	if (len > 0 && name[0] == '[')
		return NULL; /* an IPv6 literal names no server */
	if (len > 0 && (colon = memchr(name, ':', len)) != NULL)
		len = (size_t)(colon - name); /* drop the port */
	if (len > 0 && name[len - 1] == '.')
		len--;
	for (int v = 0; v < la->nvhosts; v++) {
		struct vhost *vh = la->vhosts[v];
		if (name_eq(vh->name, name, len))
			return vh;
		for (int a = 0; a < vh->naliases; a++)
			if (name_eq(vh->aliases[a], name, len))
				return vh;
	}
	return NULL;
}

/* path (NUL-terminated) starts with prefix[0..len): strncmp's answer
 * without its call, and most prefixes differ in their first bytes
 * (issue 13: two calls a request were ~50 instructions) */
static int has_prefix(const char *path, const char *prefix, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (path[i] != prefix[i])
			return 0; /* also at path's NUL: prefix has none */
	return 1;
}

struct location *vhost_location(struct vhost *vh, const char *path)
{
	for (int i = 0; i < vh->nlocs; i++)
		if (has_prefix(
		        path, vh->locs[i].prefix, vh->locs[i].prefix_len))
			return &vh->locs[i];
	return &vh->locs[vh->nlocs - 1];
}
