/*
 * sys.h: the only operating-system interface the server includes.
 * Everything kernel-specific (sendfile, openat2, the kTLS probe and
 * counters, socket options that differ by kernel) lives behind it.
 */
#ifndef KTTPD_SYS_H
#define KTTPD_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Can this kernel take TLS sessions? 1 yes, 0 no with *why filled. */
int sys_ktls_probe(int try_load, char *why, size_t whylen);

/* kTLS counters from the kernel (Linux /proc/net/tls_stat). */
struct sys_tls_stat {
	uint64_t curr_tx_sw, curr_rx_sw, curr_tx_dev, curr_rx_dev;
	uint64_t tx_sw, rx_sw, tx_dev, rx_dev, decrypt_error;
};
int sys_tls_stat(struct sys_tls_stat *);

/* Open rel beneath dirfd: no "..", no absolute or escaping symlinks. */
int sys_open_beneath(int dirfd, const char *rel, int flags);

/* A listening TCP socket that shares its port across workers. */
int sys_listen(const struct sockaddr *, socklen_t, int backlog);
/* Per-connection socket set-up (no Nagle delay; on Linux the listener
 * has it, and accepted sockets inherit it). */
void sys_conn_setup(int fd);

/* Hold partial segments (on) until cleared (off: sends what is held):
 * TCP_CORK, TCP_NOPUSH on FreeBSD. */
void sys_cork(int fd, int on);

/* send() with "more follows" (MSG_MORE / TCP_NOPUSH) when more != 0. */
ssize_t sys_send(int fd, const void *buf, size_t len, int more);
/* Plain sendfile from file fd at *off; advances *off. */
ssize_t sys_sendfile(int sock, int fd, uint64_t *off, size_t len);

int sys_ncpu(void);

/* ---- issue 7: per-connection TLS crypto placement ---------------------
 * sys/linux_ulp.c (sock_diag INET_DIAG_ULP_INFO) and sys/freebsd.c
 * (TCP_TXTLS_MODE / TCP_RXTLS_ENABLE). Where the kernel does each
 * direction's crypto once OpenSSL has handed it the keys. */
enum sys_tls_conf {
	SYS_TLS_NONE,      /* no keys in this direction: userspace TLS */
	SYS_TLS_SW,        /* kernel, CPU crypto */
	SYS_TLS_HW,        /* kernel, NIC encrypts/decrypts per packet */
	SYS_TLS_HW_RECORD, /* NIC owns the whole TLS (TOE / chelsio) */
};
struct sys_tls_placement {
	uint16_t version; /* 0x0303 TLS 1.2, 0x0304 TLS 1.3; 0 not told */
	uint16_t cipher;  /* kernel's id (Linux TLS_CIPHER_*); 0 not told */
	enum sys_tls_conf tx, rx;
	unsigned zc_tx : 1; /* TX zero-copy sendfile (TLS_TX_ZEROCOPY_RO) */
};
/* 0 and *out filled; -1 with errno: ENOPROTOOPT the socket carries no
 * kernel TLS, EPERM the kernel hides the details (Linux < 6.15 without
 * CAP_NET_ADMIN), other values from the kernel. Costs a few syscalls. */
int sys_tls_placement(int fd, struct sys_tls_placement *out);
/* "none", "sw", "hw", "hw-record": the words `ss -tie` prints */
const char *sys_tls_conf_name(enum sys_tls_conf);
/* ---- end issue 7 ---- */

/* ---- issue 9: never block an event loop on disk ----------------------
 * Are the bytes [off, off + len) of fd in memory, so that sendfile() or
 * pread() of them will not wait for the disk? Looks at the first and the
 * last page only (a readahead fills a range front to back), never
 * blocks, costs one or two syscalls. 1 yes, 0 no, -1 cannot tell (the
 * caller sends as it would without the question). */
int sys_in_memory(int fd, uint64_t off, size_t len);
/* Read [off, off + len) into the page cache, through scratch (bufsz
 * bytes). Blocks on the disk: for I/O threads only. 0 or -1. */
int sys_readahead(int fd, uint64_t off, size_t len, void *buf, size_t bufsz);
/* pread() that never waits for the disk: the bytes read, or -1 (EAGAIN:
 * not all in memory; EOPNOTSUPP: this file or kernel cannot say). */
ssize_t sys_pread_nowait(int fd, void *buf, size_t len, uint64_t off);
/* The same into several buffers (issue 13: one read for several HTTP/2
 * frames' payloads, which sit between their 9-byte headers). */
ssize_t sys_preadv_nowait(
    int fd, const struct iovec *iov, int iovcnt, uint64_t off);
/* ---- end issue 9 ---- */

/* ---- issue 13: change notification for the open-file cache -----------
 * One instance per worker: Linux inotify. FreeBSD has none here yet
 * (kqueue EVFILT_VNODE would need a descriptor held open per watched
 * directory and file): sys_watch_open fails with ENOSYS there, and the
 * cache revalidates every hit with a stat instead.
 *
 * sys_watch_open: a non-blocking descriptor to poll for reading, or -1.
 * sys_watch_dir: watch the directory rel beneath dirfd ("" or "." is
 * dirfd itself) for names created, deleted, moved in or out, or changed
 * in their attributes, and for the directory itself going. sys_watch_file:
 * watch the file fd is open on (whatever path it is reached by) for
 * writes, truncation, attribute changes, deletion and moves. Both return
 * the watch's id (>= 0; the same id when the object is already watched),
 * or -1 with errno: ENOSPC the per-user limit (fs.inotify.max_user_watches),
 * ELOOP a symbolic link on the way (sys_watch_dir), EOPNOTSUPP a
 * filesystem whose changes may not all be seen (network, FUSE), others.
 * sys_watch_read hands every pending event to fn(arg, id, name, what):
 * name is the entry within a watched directory, or NULL for the watched
 * object itself; returns 0 once the queue is empty, -1 on error. */
enum {
	SYS_WATCH_GONE = 1,     /* the watch is removed (object deleted or
	                         * unmounted): its id means nothing now */
	SYS_WATCH_OVERFLOW = 2, /* events were lost: trust nothing */
};
int sys_watch_open(void);
int sys_watch_dir(int wfd, int dirfd, const char *rel);
int sys_watch_file(int wfd, int fd);
void sys_watch_rm(int wfd, int id);
int sys_watch_read(int wfd,
    void (*fn)(void *arg, int id, const char *name, int what), void *arg);
/* ---- end issue 13 ---- */

/* ---- issue 14: TLS 1.3 KeyUpdate under kTLS ------------------------
 * sys/linux_rekey.c. Does the kernel take new keys on a kTLS socket that
 * has some (Linux 6.14+ for TLS 1.3)? Tried once on a loopback TCP pair:
 * *tx and *rx 1 where it does; 0, or -1 when the probe could not run;
 * why says what was seen. */
int sys_ktls_rekey_probe(int *tx, int *rx, char *why, size_t whylen);
/* The sequence number of the next record fd's kTLS TX will seal (0 just
 * after new keys). 0, or -1 with errno. */
int sys_ktls_tx_seq(int fd, uint64_t *seq);
/* ---- end issue 14 ---- */

#endif
