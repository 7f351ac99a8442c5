/*
 * linux_ulp.c: where the Linux kernel does a connection's TLS crypto.
 *
 * Once OpenSSL has handed the keys to the kernel, the tls ULP runs each
 * direction in software (TLS_SW), on the NIC packet by packet (TLS_HW)
 * or fully on the NIC (TLS_HW_RECORD); see the kernel's
 * Documentation/networking/tls-offload.rst. OpenSSL's BIO_get_ktls_send
 * only says "the kernel took it". The one interface that says where is
 * sock_diag: the INET_DIAG_ULP_INFO attribute that `ss -tie` prints
 * (Linux 5.3+). We ask for exactly one socket, by its 4-tuple and cookie.
 *
 * Permissions: the kernel fills the TLS details only for a requester
 * with CAP_NET_ADMIN before Linux 6.15 (tcp_diag_get_aux, "net_admin");
 * since the March 2025 net-next change "tcp: ulp: diag: always print the
 * name if any" and its follow-up they are given to anyone. Without them
 * we answer EPERM, and the server logs the placement as unknown.
 */
#define _GNU_SOURCE
#include "sys.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* One netlink socket per worker thread: the request path takes no lock,
 * and opening a socket per query would double its cost. It lives as long
 * as the thread; a failed open is retried on the next call. */
static _Thread_local int nl_fd = -1;
static _Thread_local uint32_t nl_seq;

const char *sys_tls_conf_name(enum sys_tls_conf c)
{
	static const char *const names[] = { "none", "sw", "hw", "hw-record" };

	return (unsigned)c < 4 ? names[c] : "unknown";
}

static enum sys_tls_conf conf_from_kernel(uint16_t v)
{
	switch (v) {
	case TLS_CONF_SW: return SYS_TLS_SW;
	case TLS_CONF_HW: return SYS_TLS_HW;
	case TLS_CONF_HW_RECORD: return SYS_TLS_HW_RECORD;
	default: /* TLS_CONF_BASE: the ULP is on but this direction has no keys
	          */
		return SYS_TLS_NONE;
	}
}

static uint16_t attr_u16(const struct rtattr *a)
{
	uint16_t v = 0;

	if (RTA_PAYLOAD(a) >= sizeof(v))
		memcpy(&v, RTA_DATA(a), sizeof(v));
	return v;
}

/* INET_ULP_INFO_TLS: nested TLS_INFO_* (all u16 but the ZC flag). */
static void parse_tls(const struct rtattr *nest, struct sys_tls_placement *o)
{
	int len = (int)RTA_PAYLOAD(nest);

	for (const struct rtattr *a = RTA_DATA(nest); RTA_OK(a, len);
	     a = RTA_NEXT(a, len)) {
		switch (a->rta_type & NLA_TYPE_MASK) {
		case TLS_INFO_VERSION: o->version = attr_u16(a); break;
		case TLS_INFO_CIPHER: o->cipher = attr_u16(a); break;
		case TLS_INFO_TXCONF:
			o->tx = conf_from_kernel(attr_u16(a));
			break;
		case TLS_INFO_RXCONF:
			o->rx = conf_from_kernel(attr_u16(a));
			break;
		case TLS_INFO_ZC_RO_TX: o->zc_tx = 1; break;
		}
	}
}

/* INET_DIAG_ULP_INFO: INET_ULP_INFO_NAME, then INET_ULP_INFO_TLS. Returns
 * 1 when the ULP is tls and its details were there, 0 otherwise. */
static int parse_ulp(const struct rtattr *nest, struct sys_tls_placement *o)
{
	int len = (int)RTA_PAYLOAD(nest), is_tls = 0, have_info = 0;

	for (const struct rtattr *a = RTA_DATA(nest); RTA_OK(a, len);
	     a = RTA_NEXT(a, len)) {
		if ((a->rta_type & NLA_TYPE_MASK) == INET_ULP_INFO_NAME)
			is_tls = RTA_PAYLOAD(a) >= 4 &&
			    memcmp(RTA_DATA(a), "tls", 4) == 0;
		else if ((a->rta_type & NLA_TYPE_MASK) == INET_ULP_INFO_TLS) {
			parse_tls(a, o);
			have_info = 1;
		}
	}
	return is_tls && have_info;
}

/* Fill the request's socket id from the socket itself. The kernel's exact
 * lookup (inet_diag_find_one_icsk) wants src = local, dst = peer; the
 * cookie (SO_COOKIE) makes a reused 4-tuple find nothing (ENOENT)
 * instead of describing another socket. */
static int fill_id(int fd, struct inet_diag_req_v2 *r)
{
	struct sockaddr_storage loc, rem;
	socklen_t ll = sizeof(loc), rl = sizeof(rem), cl;
	uint64_t cookie;

	if (getsockname(fd, (struct sockaddr *)&loc, &ll) < 0 ||
	    getpeername(fd, (struct sockaddr *)&rem, &rl) < 0)
		return -1;
	r->sdiag_family = (uint8_t)loc.ss_family;
	if (loc.ss_family == AF_INET) {
		const struct sockaddr_in *l = (void *)&loc, *p = (void *)&rem;
		r->id.idiag_sport = l->sin_port;
		r->id.idiag_dport = p->sin_port;
		memcpy(r->id.idiag_src, &l->sin_addr, 4);
		memcpy(r->id.idiag_dst, &p->sin_addr, 4);
	} else if (loc.ss_family == AF_INET6) {
		const struct sockaddr_in6 *l = (void *)&loc, *p = (void *)&rem;
		r->id.idiag_sport = l->sin6_port;
		r->id.idiag_dport = p->sin6_port;
		memcpy(r->id.idiag_src, &l->sin6_addr, 16);
		memcpy(r->id.idiag_dst, &p->sin6_addr, 16);
		r->id.idiag_if = p->sin6_scope_id; /* link-local: the device */
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	cl = sizeof(cookie);
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &cl) == 0 &&
	    cl == sizeof(cookie)) {
		r->id.idiag_cookie[0] = (uint32_t)cookie;
		r->id.idiag_cookie[1] = (uint32_t)(cookie >> 32);
	} else
		r->id.idiag_cookie[0] = r->id.idiag_cookie[1] =
		    INET_DIAG_NOCOOKIE;
	return 0;
}

struct diag_req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 r;
};

/*
 * The netlink round trip. 0: the socket was found and *o filled (all
 * NONE when it has no tls ULP); *have set when the kernel gave the TLS
 * details. The kernel answers inside sendto() (sock_diag runs in the
 * sender's context), so a non-blocking recv never waits; a reply left
 * over from an earlier failed call is skipped by its sequence number.
 */
static int diag_send(
    struct diag_req *req, struct sys_tls_placement *o, int *have)
{
	union {
		struct nlmsghdr nlh;
		char buf[8192]; /* the reply is < 1 KiB: tcp_info + ULP info */
	} rep;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;

	memset(o, 0, sizeof(*o));
	*have = 0;
	if (nl_fd < 0) {
		nl_fd = socket(
		    AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
		if (nl_fd < 0)
			return -1;
	}
	req->nlh.nlmsg_len = sizeof(*req);
	req->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req->nlh.nlmsg_flags = NLM_F_REQUEST; /* one socket, not a dump */
	req->nlh.nlmsg_seq = ++nl_seq;
	req->r.sdiag_protocol = IPPROTO_TCP;
	req->r.idiag_states = ~0u;
	/* the ULP attribute rides on INET_DIAG_INFO (inet_sk_diag_fill) */
	req->r.idiag_ext = 1 << (INET_DIAG_INFO - 1);
	if (sendto(nl_fd, req, sizeof(*req), 0, (struct sockaddr *)&kernel,
	        sizeof(kernel)) < 0)
		return -1;
	for (int tries = 0; tries < 4; tries++) {
		n = recv(
		    nl_fd, rep.buf, sizeof(rep.buf), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0)
			return -1;
		if ((size_t)n > sizeof(rep.buf)) {
			errno = EMSGSIZE;
			return -1;
		}
		for (struct nlmsghdr *h = &rep.nlh; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != nl_seq)
				continue; /* stale */
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				errno = e->error ? -e->error : EPROTO;
				return -1;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
				continue;
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			int alen = (int)(h->nlmsg_len -
			    NLMSG_LENGTH(sizeof(*m)));
			for (const struct rtattr *a = (const void *)(m + 1);
			     RTA_OK(a, alen); a = RTA_NEXT(a, alen))
				if ((a->rta_type & NLA_TYPE_MASK) ==
				    INET_DIAG_ULP_INFO)
					*have = parse_ulp(a, o);
			return 0;
		}
	}
	errno = EPROTO;
	return -1;
}

/* The query for one socket, by its own addresses and cookie. */
static int diag_query(int fd, struct sys_tls_placement *o, int *have)
{
	struct diag_req req;

	memset(&req, 0, sizeof(req));
	if (fill_id(fd, &req.r) < 0)
		return -1;
	return diag_send(&req, o, have);
}

int sys_tls_placement(int fd, struct sys_tls_placement *out)
{
	char ulp[16] = "";
	socklen_t len = sizeof(ulp) - 1;
	int have;

	memset(out, 0, sizeof(*out));
	/* One cheap getsockopt answers "no kernel TLS" without netlink. */
	if (getsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, &len) < 0)
		return -1;
	if (strcmp(ulp, "tls") != 0) {
		errno = ENOPROTOOPT;
		return -1;
	}
	if (diag_query(fd, out, &have) < 0)
		return -1;
	if (!have) {
		errno = EPERM; /* tls is on, but the kernel kept the details */
		return -1;
	}
	return 0;
}
