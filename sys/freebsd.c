/*
 * freebsd.c: the FreeBSD side of sys.h (FreeBSD 13.0 or later: kernel TLS,
 * ktls(4), and O_RESOLVE_BENEATH first appeared there).
 *
 * Written to the documented interfaces: ktls(4), sendfile(2), tcp(4),
 * open(2), setsockopt(2) (SO_REUSEPORT_LB), sysctlbyname(3). It has not
 * been compiled on FreeBSD yet: the project's machines run Linux.
 */
#include "sys.h"

#include <sys/param.h>
#include <sys/mman.h>
#include <sys/sysctl.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef O_RESOLVE_BENEATH
#error "kttpd needs FreeBSD 13.0 or later (O_RESOLVE_BENEATH, ktls(4))"
#endif

/* A sysctl that may be a bool (1 byte) or an int, depending on the
 * release; -1 when the node does not exist (kernel without KERN_TLS). */
static long sysctl_num(const char *name)
{
	union {
		uint8_t u8;
		uint32_t u32;
		uint64_t u64;
	} v;
	size_t len = sizeof(v);

	memset(&v, 0, sizeof(v));
	if (sysctlbyname(name, &v, &len, NULL, 0) < 0)
		return -1;
	return len == 1 ? v.u8 : len == 4 ? (long)v.u32 : (long)v.u64;
}

int sys_ktls_probe(int try_load, char *why, size_t whylen)
{
	long enable = sysctl_num("kern.ipc.tls.enable");
	long ext_pgs = sysctl_num("kern.ipc.mb_use_ext_pgs");

	/* Turning these on is the administrator's choice (sys/offload/),
	 * not the server's: try_load has nothing to load here. */
	(void)try_load;
	if (enable < 0)
		snprintf(why, whylen,
		    "kernel without options KERN_TLS "
		    "(no sysctl kern.ipc.tls.enable)");
	else if (enable == 0)
		snprintf(why, whylen, "kern.ipc.tls.enable=0");
	else if (ext_pgs == 0)
		snprintf(why, whylen,
		    "kern.ipc.mb_use_ext_pgs=0 (TLS "
		    "transmit needs unmapped mbufs)");
	else {
		snprintf(why, whylen, "kern.ipc.tls.enable=1");
		return 1;
	}
	return 0;
}

/*
 * FreeBSD counts active sessions per backend and cipher, not per
 * direction: kern.ipc.tls.sw.* and kern.ipc.tls.ifnet.* are both
 * directions together. They land in curr_tx_*; the totals Linux keeps
 * (TlsTxSw ...) have no FreeBSD counterpart and stay 0.
 */
int sys_tls_stat(struct sys_tls_stat *st)
{
	static const char *const ciphers[] = { "gcm", "cbc", "chacha20" };
	char name[64];
	long v;

	memset(st, 0, sizeof(*st));
	if (sysctl_num("kern.ipc.tls.enable") < 0)
		return -1;
	for (size_t i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++) {
		snprintf(name, sizeof(name), "kern.ipc.tls.sw.%s", ciphers[i]);
		if ((v = sysctl_num(name)) > 0)
			st->curr_tx_sw += (uint64_t)v;
		snprintf(
		    name, sizeof(name), "kern.ipc.tls.ifnet.%s", ciphers[i]);
		if ((v = sysctl_num(name)) > 0)
			st->curr_tx_dev += (uint64_t)v;
	}
	if ((v = sysctl_num("kern.ipc.tls.stats.corrupted_records")) > 0)
		st->decrypt_error = (uint64_t)v;
	return 0;
}

/*
 * O_RESOLVE_BENEATH (open(2), FreeBSD 13): the kernel refuses "..",
 * absolute paths and symlinks that leave dirfd, with ENOTCAPABLE. The
 * server reads EXDEV as "escapes the root" (as openat2 says on Linux).
 */
int sys_open_beneath(int dirfd, const char *rel, int flags)
{
	int fd;

	while (*rel == '/')
		rel++;
	if (*rel == '\0')
		rel = ".";
	fd = openat(dirfd, rel, flags | O_RESOLVE_BENEATH);
	if (fd < 0 && errno == ENOTCAPABLE)
		errno = EXDEV;
	return fd;
}

/* SO_REUSEPORT_LB (FreeBSD 12+) spreads new connections over the
 * workers' sockets, as SO_REUSEPORT does on Linux; plain SO_REUSEPORT on
 * FreeBSD would hand them all to the last socket bound. */
int sys_listen(const struct sockaddr *sa, socklen_t len, int backlog)
{
	int one = 1, saved;
	int fd = socket(
	    sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT_LB, &one, sizeof(one)) < 0)
		goto fail;
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/*
 * "More follows": FreeBSD has no MSG_MORE; TCP_NOPUSH (tcp(4)) holds
 * partial segments until it is cleared, and clearing it sends them.
 * Which sockets have it set is kept per thread (a worker owns its
 * connections, and sys_conn_setup runs on it): the bit is cleared for
 * each new socket, so a reused descriptor starts from the truth.
 * Note: under ktls(4) each send() still ends its own TLS records;
 * TCP_NOPUSH merges packets, not records (Linux's MSG_MORE merges both).
 */
#define NOPUSH_FDS 65536
static _Thread_local uint64_t nopush[NOPUSH_FDS / 64];

static void nopush_mark(int fd, int on)
{
	uint64_t bit = (uint64_t)1 << (fd % 64);

	if (fd >= 0 && fd < NOPUSH_FDS)
		nopush[fd / 64] = on ? nopush[fd / 64] | bit
		                     : nopush[fd / 64] & ~bit;
}

static void set_nopush(int fd, int on)
{
	int known = fd >= 0 && fd < NOPUSH_FDS;
	int is_on = known ? (nopush[fd / 64] & ((uint64_t)1 << (fd % 64))) != 0
	                  : !on;

	if (is_on == on)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NOPUSH, &on, sizeof(on)) < 0)
		return;
	nopush_mark(fd, on);
}

/* A new socket has TCP_NOPUSH off: forget what a closed socket that had
 * the same descriptor left marked, so its first "more follows" is held. */
void sys_conn_setup(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	nopush_mark(fd, 0);
}

void sys_cork(int fd, int on)
{
	set_nopush(fd, on);
}

ssize_t sys_send(int fd, const void *buf, size_t len, int more)
{
	ssize_t n;

	if (more)
		set_nopush(fd, 1);
	n = send(fd, buf, len, MSG_NOSIGNAL);
	if (!more) {
		int saved = errno;
		set_nopush(fd, 0); /* pushes out what was held */
		errno = saved;
	}
	return n;
}

/*
 * sendfile(2) with SF_NODISKIO: since FreeBSD 11 sendfile does not wait
 * for disk reads at all, and SF_NODISKIO makes it return EBUSY instead
 * of sleeping on a page another thread has busy. Bytes already queued
 * (sbytes) count as sent on EAGAIN, EINTR and EBUSY alike. On an EBUSY
 * that sent nothing we retry once without the flag: sendfile(2) advises
 * a retry, and a short sleep on a busy page beats spinning in the event
 * loop on a socket that stays writable.
 */
ssize_t sys_sendfile(int sock, int fd, uint64_t *off, size_t len)
{
	off_t sbytes = 0;
	int r;

	if (len == 0) /* FreeBSD would read 0 as "to the end of the file" */
		return 0;
	r = sendfile(fd, sock, (off_t)*off, len, NULL, &sbytes, SF_NODISKIO);
	if (r < 0 && errno == EBUSY && sbytes == 0)
		r = sendfile(fd, sock, (off_t)*off, len, NULL, &sbytes, 0);
	if (r < 0 && sbytes == 0)
		return -1;
	*off += (uint64_t)sbytes;
	return (ssize_t)sbytes;
}

int sys_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

/* ---- issue 7: per-connection placement, from tcp(4) ---- */

const char *sys_tls_conf_name(enum sys_tls_conf c)
{
	static const char *const names[] = { "none", "sw", "hw", "hw-record" };

	return (unsigned)c < 4 ? names[c] : "unknown";
}

static enum sys_tls_conf mode_conf(int fd, int opt)
{
	int mode = TCP_TLS_MODE_NONE;
	socklen_t len = sizeof(mode);

	if (getsockopt(fd, IPPROTO_TCP, opt, &mode, &len) < 0)
		return SYS_TLS_NONE;
	switch (mode) {
	case TCP_TLS_MODE_SW: return SYS_TLS_SW;
	case TCP_TLS_MODE_IFNET: /* NIC inline crypto, like Linux TLS_HW */
		return SYS_TLS_HW;
	case TCP_TLS_MODE_TOE: /* the NIC's TCP offload engine: TLS_HW_RECORD */
		return SYS_TLS_HW_RECORD;
	default: return SYS_TLS_NONE;
	}
}

/* ktls(4): TCP_TXTLS_MODE and TCP_RXTLS_MODE report each direction's
 * mode. FreeBSD does not say the version or cipher here: they stay 0
 * (the server has them from OpenSSL). */
int sys_tls_placement(int fd, struct sys_tls_placement *out)
{
	memset(out, 0, sizeof(*out));
	out->tx = mode_conf(fd, TCP_TXTLS_MODE);
#ifdef TCP_RXTLS_MODE
	out->rx = mode_conf(fd, TCP_RXTLS_MODE);
#endif
	if (out->tx == SYS_TLS_NONE && out->rx == SYS_TLS_NONE) {
		errno = ENOPROTOOPT;
		return -1;
	}
	return 0;
}

/* ---- issue 9: page cache residency and readahead ----
 * sendfile(2) itself never waits for the disk here (SF_NODISKIO above,
 * and since FreeBSD 11 its reads are asynchronous); the question matters
 * for the userspace-TLS path (pread) and SSL_sendfile's first pages.
 * FreeBSD has no RWF_NOWAIT nor cachestat: mincore(2) of a one-page
 * mapping answers for the first and the last page. Not compiled yet. */
static int page_in_memory(int fd, uint64_t off)
{
	long pg = getpagesize();
	off_t base = (off_t)(off & ~(uint64_t)(pg - 1));
	char vec = 0;
	void *p = mmap(NULL, (size_t)pg, PROT_READ, MAP_SHARED, fd, base);
	int r;

	if (p == MAP_FAILED)
		return -1;
	r = mincore(p, (size_t)pg, &vec);
	munmap(p, (size_t)pg);
	if (r < 0)
		return -1;
	return (vec & MINCORE_INCORE) != 0;
}

ssize_t sys_pread_nowait(int fd, void *buf, size_t len, uint64_t off)
{
	(void)fd;
	(void)buf;
	(void)len;
	(void)off;
	errno = EOPNOTSUPP; /* no RWF_NOWAIT: callers ask sys_in_memory */
	return -1;
}

ssize_t sys_preadv_nowait(
    int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
	(void)fd;
	(void)iov;
	(void)iovcnt;
	(void)off;
	errno = EOPNOTSUPP;
	return -1;
}

int sys_in_memory(int fd, uint64_t off, size_t len)
{
	int first = page_in_memory(fd, off);

	if (first <= 0 || len <= 4096)
		return first;
	return page_in_memory(fd, off + len - 1);
}

int sys_readahead(int fd, uint64_t off, size_t len, void *buf, size_t bufsz)
{
	(void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	while (len > 0) {
		ssize_t n = pread(
		    fd, buf, len < bufsz ? len : bufsz, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : 0;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- issue 13: change notification ----
 * Not here yet: kqueue EVFILT_VNODE (NOTE_WRITE, NOTE_EXTEND, NOTE_ATTRIB,
 * NOTE_DELETE, NOTE_RENAME) would need a descriptor held open for every
 * watched directory and file. Without it the open-file cache revalidates
 * each hit with a stat, as before. */
int sys_watch_open(void)
{
	errno = ENOSYS;
	return -1;
}

int sys_watch_dir(int wfd, int dirfd, const char *rel)
{
	(void)wfd;
	(void)dirfd;
	(void)rel;
	errno = ENOSYS;
	return -1;
}

int sys_watch_file(int wfd, int fd)
{
	(void)wfd;
	(void)fd;
	errno = ENOSYS;
	return -1;
}

void sys_watch_rm(int wfd, int id)
{
	(void)wfd;
	(void)id;
}

int sys_watch_read(int wfd,
    void (*fn)(void *arg, int id, const char *name, int what), void *arg)
{
	(void)wfd;
	(void)fn;
	(void)arg;
	return -1;
}

/* issue 14: FreeBSD's ktls(4) installs a direction's keys once (no TLS 1.3
 * rekey through TCP_TXTLS_ENABLE on an enabled socket): no probe needed. */
int sys_ktls_rekey_probe(int *tx, int *rx, char *why, size_t whylen)
{
	*tx = *rx = 0;
	snprintf(why, whylen, "FreeBSD ktls(4) takes keys once");
	return 0;
}

int sys_ktls_tx_seq(int fd, uint64_t *seq)
{
	errno = ENOTSUP;
	return -1;
}
