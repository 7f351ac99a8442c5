/*
 * fuzz_wrap.c: linked into every fuzz target with
 * -Wl,--wrap=SSL_write,--wrap=SSL_get_error,--wrap=SSL_sendfile.
 * http2.c's writers call these on c->ssl even for a connection without
 * TLS (which only the fuzzer makes: HTTP/2 needs ALPN); with ssl == NULL
 * they write to the connection's socket instead. Any SSL object goes to
 * OpenSSL unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/ssl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

int fz_fd = -1;

/* ---- the TLS calls http2.c makes, for a connection without TLS ---- */

int __real_SSL_write(SSL *, const void *, int);
int __real_SSL_get_error(const SSL *, int);
ssize_t __real_SSL_sendfile(SSL *, int, off_t, size_t, int);

int __wrap_SSL_write(SSL *s, const void *buf, int n);
int __wrap_SSL_write(SSL *s, const void *buf, int n)
{
	if (s != NULL)
		return __real_SSL_write(s, buf, n);
	return (int)send(fz_fd, buf, (size_t)n, MSG_NOSIGNAL);
}

int __wrap_SSL_get_error(const SSL *s, int ret);
int __wrap_SSL_get_error(const SSL *s, int ret)
{
	if (s != NULL)
		return __real_SSL_get_error(s, ret);
	return errno == EAGAIN ? SSL_ERROR_WANT_WRITE : SSL_ERROR_SYSCALL;
}

ssize_t __wrap_SSL_sendfile(SSL *s, int fd, off_t off, size_t n, int flags);
ssize_t __wrap_SSL_sendfile(SSL *s, int fd, off_t off, size_t n, int flags)
{
	if (s != NULL)
		return __real_SSL_sendfile(s, fd, off, n, flags);
	return sendfile(fz_fd, fd, &off, n);
}

