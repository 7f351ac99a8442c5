/*
 * linux.c: the Linux side of sys.h.
 */
#define _GNU_SOURCE
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/sendfile.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int ulp_has_tls(char *list, size_t len)
{
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
	int found = 0;

	list[0] = '\0';
	if (f == NULL)
		return -1;
	if (fgets(list, (int)len, f) != NULL) {
		list[strcspn(list, "\n")] = '\0';
		for (char *save, *t = strtok_r(list, " ", &save); t != NULL;
		     t = strtok_r(NULL, " ", &save)) {
			if (strcmp(t, "tls") == 0)
				found = 1;
			if (t != list)
				t[-1] = ' '; /* undo strtok's cut */
		}
	}
	fclose(f);
	return found;
}

/* modprobe tls, quietly; only root can, and only where kmod exists. */
static void load_tls_module(void)
{
	pid_t pid;

	if (geteuid() != 0 || access("/sbin/modprobe", X_OK) != 0)
		return;
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execl("/sbin/modprobe", "modprobe", "-q", "tls", (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int sys_ktls_probe(int try_load, char *why, size_t whylen)
{
	char list[256];
	int r = ulp_has_tls(list, sizeof(list));

	if (r == 0 && try_load) {
		load_tls_module();
		r = ulp_has_tls(list, sizeof(list));
	}
	if (r < 0)
		snprintf(
		    why, whylen, "no /proc/sys/net/ipv4/tcp_available_ulp");
	else if (r == 0)
		snprintf(why, whylen,
		    "kernel has no tls ULP (tcp_available_ulp: %s%s)",
		    list[0] ? list : "empty",
		    geteuid() == 0 ? "; modprobe tls failed" : "; not root");
	else
		snprintf(why, whylen, "tls ULP available");
	return r == 1;
}

int sys_tls_stat(struct sys_tls_stat *st)
{
	static const struct {
		const char *name;
		size_t off;
	} keys[] = {
		{ "TlsCurrTxSw", offsetof(struct sys_tls_stat, curr_tx_sw) },
		{ "TlsCurrRxSw", offsetof(struct sys_tls_stat, curr_rx_sw) },
		{ "TlsCurrTxDevice",
		    offsetof(struct sys_tls_stat, curr_tx_dev) },
		{ "TlsCurrRxDevice",
		    offsetof(struct sys_tls_stat, curr_rx_dev) },
		{ "TlsTxSw", offsetof(struct sys_tls_stat, tx_sw) },
		{ "TlsRxSw", offsetof(struct sys_tls_stat, rx_sw) },
		{ "TlsTxDevice", offsetof(struct sys_tls_stat, tx_dev) },
		{ "TlsRxDevice", offsetof(struct sys_tls_stat, rx_dev) },
		{ "TlsDecryptError",
		    offsetof(struct sys_tls_stat, decrypt_error) },
	};
	char name[64];
	unsigned long long v;
	FILE *f = fopen("/proc/net/tls_stat", "r");

	memset(st, 0, sizeof(*st));
	if (f == NULL)
		return -1;
	while (fscanf(f, "%63s %llu", name, &v) == 2) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcmp(name, keys[i].name) == 0)
				*(uint64_t *)((char *)st + keys[i].off) = v;
	}
	fclose(f);
	return 0;
}

/*
 * openat2(RESOLVE_BENEATH) makes the kernel refuse any resolution that
 * leaves dirfd: "..", absolute paths and symlinks pointing out. Kernels
 * before 5.6 lack it; there we refuse symlinks altogether (O_NOFOLLOW on
 * every component), which is stricter but never unsafe.
 */
static int open_nofollow_walk(int dirfd, const char *rel, int flags)
{
	char buf[4096], *save, *comp, *next;
	int fd = dirfd, nfd;

	if (strlen(rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, rel);
	comp = strtok_r(buf, "/", &save);
	if (comp == NULL)
		return openat(dirfd, ".", flags);
	for (; comp != NULL; comp = next) {
		next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, "..") == 0) {
			errno = EXDEV;
			nfd = -1;
		} else
			nfd = openat(fd, comp,
			    next ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
			         : flags | O_NOFOLLOW);
		if (fd != dirfd)
			close(fd);
		if (nfd < 0)
			return -1;
		fd = nfd;
	}
	return fd;
}

int sys_open_beneath(int dirfd, const char *rel, int flags)
{
	static int have_openat2 = 1;
	struct open_how how = {
		.flags = (uint64_t)flags,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	while (*rel == '/')
		rel++;
	if (*rel == '\0')
		rel = ".";
	if (have_openat2) {
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0 || errno != ENOSYS)
			return fd;
		have_openat2 = 0;
	}
	return open_nofollow_walk(dirfd, rel, flags);
}

/* Linux copies TCP_NODELAY from a listener to the sockets it accepts:
 * set once there, it costs no setsockopt per connection (issue 13).
 * Set when a listener could not take it: then per connection. */
static atomic_int nodelay_each;

int sys_listen(const struct sockaddr *sa, socklen_t len, int backlog)
{
	int one = 1;
	int fd = socket(
	    sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		atomic_store(&nodelay_each, 1);
	if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:;
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

void sys_conn_setup(int fd)
{
	int one = 1;

	if (atomic_load_explicit(&nodelay_each, memory_order_relaxed))
		(void)setsockopt(
		    fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void sys_cork(int fd, int on)
{
	(void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
}

ssize_t sys_send(int fd, const void *buf, size_t len, int more)
{
	return send(fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
}

ssize_t sys_sendfile(int sock, int fd, uint64_t *off, size_t len)
{
	off_t o = (off_t)*off;
	ssize_t n = sendfile(sock, fd, &o, len);

	if (n > 0)
		*off = (uint64_t)o;
	return n;
}

int sys_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

/* ---- issue 9: page cache residency and readahead ---- */

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same number on every architecture */
#endif
struct kt_cachestat_range {
	uint64_t off, len;
};
struct kt_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted,
	    nr_recently_evicted;
};

/*
 * One page: a 1-byte preadv2(RWF_NOWAIT) answers EAGAIN unless the page
 * is cached and up to date (a page still being read counts as absent),
 * and starts no I/O. Filesystems that do not support it (FUSE, some
 * network ones: EOPNOTSUPP) get cachestat(2) on the page (Linux 6.5+),
 * which counts a page still under read as present. Measured here on a
 * cached 2 MiB window (ext4, 6.18): 2 x RWF_NOWAIT 1.4 us, 2 x
 * cachestat of a page 0.9 us, cachestat of all 2 MiB 3-15 us,
 * mmap + mincore + munmap 35 us (and it takes the mm lock).
 */
static int page_in_memory(int fd, uint64_t off)
{
	static atomic_int no_cachestat;
	char b;
	struct iovec v = { &b, 1 };
	struct kt_cachestat_range cr = { off & ~(uint64_t)4095, 4096 };
	struct kt_cachestat cs;

	if (preadv2(fd, &v, 1, (off_t)off, RWF_NOWAIT) >= 0)
		return 1; /* 0: past the end, nothing to wait for */
	if (errno == EAGAIN)
		return 0;
	if (errno != EOPNOTSUPP || atomic_load(&no_cachestat))
		return -1;
	if (syscall(__NR_cachestat, fd, &cr, &cs, 0) < 0) {
		if (errno == ENOSYS)
			atomic_store(&no_cachestat, 1);
		return -1;
	}
	return cs.nr_cache > 0;
}

ssize_t sys_pread_nowait(int fd, void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { buf, len };

	return preadv2(fd, &iov, 1, (off_t)off, RWF_NOWAIT);
}

ssize_t sys_preadv_nowait(
    int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return preadv2(fd, iov, iovcnt, (off_t)off, RWF_NOWAIT);
}

int sys_in_memory(int fd, uint64_t off, size_t len)
{
	int first = page_in_memory(fd, off), last;

	if (first <= 0 || len <= 4096)
		return first;
	last = page_in_memory(fd, off + len - 1);
	return last;
}

/*
 * WILLNEED queues the whole range's reads at once (the disk sees them
 * together, not one page per round trip); the preads then wait for them
 * and read what the kernel skipped (it may trim WILLNEED under memory
 * pressure). The copy into scratch costs far less than the disk.
 */
int sys_readahead(int fd, uint64_t off, size_t len, void *buf, size_t bufsz)
{
	(void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	while (len > 0) {
		ssize_t n = pread(
		    fd, buf, len < bufsz ? len : bufsz, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : 0; /* 0: the file is shorter */
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- issue 13: inotify for the open-file cache ---- */

/*
 * Filesystems where every change goes through this kernel, so inotify
 * sees it. On network filesystems (NFS, SMB, 9p) and FUSE another
 * machine or process may change files without an event here.
 */
static int fs_is_local(int fd)
{
	static const unsigned long local[] = { EXT4_SUPER_MAGIC,
		XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, TMPFS_MAGIC, RAMFS_MAGIC,
		F2FS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, 0x2fc12fc1 /* zfs */ };
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return 0;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if ((unsigned long)sf.f_type == local[i])
			return 1;
	return 0;
}

/* A watch on exactly the inode fd is open on: through /proc/self/fd,
 * so that no path is resolved twice. */
static int watch_fd(int wfd, int fd, uint32_t mask)
{
	char p[40];

	if (!fs_is_local(fd)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return inotify_add_watch(wfd, p, mask);
}

int sys_watch_open(void)
{
	return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int sys_watch_dir(int wfd, int dirfd, const char *rel)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		    RESOLVE_NO_MAGICLINKS,
	};
	int fd, wd, e;

	while (*rel == '/')
		rel++;
	if (*rel == '\0')
		rel = ".";
	fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS) /* before 5.6: no link on the way */
		fd = open_nofollow_walk(
		    dirfd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	wd = watch_fd(wfd, fd,
	    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
	        IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
	e = errno;
	close(fd);
	errno = e;
	return wd;
}

int sys_watch_file(int wfd, int fd)
{
	return watch_fd(wfd, fd,
	    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF |
	        IN_MOVE_SELF);
}

void sys_watch_rm(int wfd, int id)
{
	(void)inotify_rm_watch(wfd, id);
}

int sys_watch_read(int wfd,
    void (*fn)(void *arg, int id, const char *name, int what), void *arg)
{
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(wfd, buf, sizeof(buf));
		if (n < 0)
			return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -1;
		if (n == 0)
			return -1;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			int what = 0;
			if (ev->mask & IN_Q_OVERFLOW)
				what = SYS_WATCH_OVERFLOW;
			else if (ev->mask & IN_IGNORED)
				what = SYS_WATCH_GONE;
			fn(arg, ev->wd, ev->len ? ev->name : NULL, what);
			p += sizeof(*ev) + ev->len;
		}
	}
}
