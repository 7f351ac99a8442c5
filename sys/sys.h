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
/* Per-connection socket set-up (no Nagle delay). */
void sys_conn_setup(int fd);

/* send() with "more follows" (MSG_MORE / TCP_NOPUSH) when more != 0. */
ssize_t sys_send(int fd, const void *buf, size_t len, int more);
/* Plain sendfile from file fd at *off; advances *off. */
ssize_t sys_sendfile(int sock, int fd, uint64_t *off, size_t len);

int sys_ncpu(void);

#endif
