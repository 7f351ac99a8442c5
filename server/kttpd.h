/*
 * kttpd: an HTTPS static file server that hands TLS sessions to the kernel.
 *
 * One header for the whole server: shared structs first, then the
 * prototypes grouped by the file that defines them (OpenBSD httpd style).
 */
#ifndef KTTPD_H
#define KTTPD_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* Our block caches in front of glibc's malloc (http2.c, sslmem.c): not
 * without glibc, and not under AddressSanitizer, which must see every
 * block. */
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define KT_ASAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define KT_ASAN 1
#endif
#endif
#if defined(__GLIBC__) && !defined(KT_ASAN)
#define KT_BLOCK_CACHE 1
#endif

#define KTTPD_VERSION "0.1.0"

/* Built-in defaults; every one can be changed in the config file. */
#define KT_DEF_MAX_CONNECTIONS    10000
#define KT_DEF_MAX_REQUEST_HEAD   16384
#define KT_DEF_MAX_URI            8192
#define KT_DEF_MAX_HEADERS        100
#define KT_DEF_KEEPALIVE_REQUESTS 1000
#define KT_DEF_HANDSHAKE_TIMEOUT  10
#define KT_DEF_HEADER_TIMEOUT     10
#define KT_DEF_KEEPALIVE_TIMEOUT  75
#define KT_DEF_SEND_TIMEOUT       60
#define KT_DEF_SHUTDOWN_TIMEOUT   30
#define KT_DEF_SESSION_CACHE      20480
#define KT_DEF_SESSION_TIMEOUT    3600
#define KT_DEF_H2_MAX_STREAMS     100
#define KT_DEF_H2_RESET_BURST     200 /* RST_STREAM bucket, then GOAWAY */
#define KT_DEF_H2_RESET_RATE      33  /* ... refilled per second */
#define KT_DEF_AIO_THREADS        2   /* readahead threads; 0: off */
#define KT_DEF_AIO_QUEUE          256 /* cold chunks waiting, all workers */
#define KT_DEF_AIO_CHUNK          (2 << 20) /* one readahead, bytes */
/* per-client limits (clientlimit.c) and ticket keys (ticket.c) */
#define KT_DEF_CLIENT_TABLE_SIZE  65536 /* slots, 32 bytes each */
#define KT_DEF_CLIENT_CONN_STATUS 503   /* nginx limit_conn_status */
#define KT_DEF_CLIENT_RATE_STATUS 429
#define KT_DEF_TICKET_ROTATE      3600  /* s, a key encrypts this long */
#define KT_TICKET_KEYS_MAX        16    /* keys in session_ticket_key_file */
#define KT_TICKET_KEY_LEN         80    /* nginx: name 16, hmac 32, aes 32 */
#define KT_DEF_OFC_BODY           16384 /* issue 13: bodies kept in memory, */
#define KT_DEF_OFC_MEMORY         (8 << 20) /* ... each at most, and in all */

/* drain (health.c): SIGUSR2 fails the health endpoint, then stops */
#define KT_DEF_DRAIN_TIMEOUT 30  /* s, longest drain */
#define KT_DEF_DRAIN_IDLE    5   /* s idle that ends a drain early */
#define KT_DRAIN_TICK_MS     100 /* main's idle test while draining */

/* Fixed limits: sizes of structures, not policy. */
#define KT_MAX_WORKERS     256
#define KT_MAX_INDEX       8
#define KT_LINGER_MS       5000      /* drain unread input: idle wait */
#define KT_LINGER_TOTAL_MS 30000     /* ... and in all */
#define KT_LINGER_BYTES    (1 << 20) /* ... at most this much */
#define KT_H2_NOTICE_MS    1000      /* GOAWAY notice to final GOAWAY, most */
#define KT_ACCEPT_PAUSE_MS 100       /* EMFILE: stop accepting this long */
#define KT_ACCEPT_BATCH    64        /* accepts per readiness event */
#define KT_CHUNK           16384     /* one TLS record of plaintext */
#define KT_BULK            65536     /* issue 13: 4 records per pread */
#define KT_HEAD_ROOM       4096      /* issue 13: a head beside a cached body */
#define KT_LISTING_MAX     100000    /* names in one directory listing */
#define KT_ERRPAGE_MAX     65536     /* a custom error page, read whole */
#define KT_SENDFILE_CHUNK  (1 << 20) /* per sendfile() call, for fairness */
/* add_header (issue 15): entries of one server or location, and their
 * bytes ("Name: value\r\n" each), so that a response head still fits */
#define KT_ADD_HEADERS_MAX   32
#define KT_ADD_HEADERS_BYTES 4096

struct config;
struct vhost;
struct worker;
struct conn;
struct event_base;

/* ------------------------------------------------------------------ */
/* Configuration: immutable once built; reload builds a new one.       */

struct cidr {
	int family;
	unsigned char addr[16];
	int bits;
};

struct location {
	char *prefix;
	size_t prefix_len;
	char *root;
	int root_fd;    /* O_PATH directory fd: every open is beneath it */
	dev_t root_dev; /* issue 13: its inode, the open-file cache's key */
	ino_t root_ino;
	char *index[KT_MAX_INDEX];
	int nindex;
	char *cache_control;
	long expires;
	int metrics;     /* this location answers with the metrics */
	int health;      /* answers 200, or 503 while draining (health.c) */
	int autoindex;   /* list a directory that has no index file */
	struct errpage { /* custom error pages: status -> path */
		int status;
		char *path;
	} * errpages;
	int nerrpages;
	struct cidr *allow; /* client addresses allowed; none: all */
	int nallow;
	int gzip;        /* on-the-fly gzip into the cache */
	int gzip_static; /* precompressed .br / .gz siblings */
	/* issue 15: add_header and return */
	struct headers *headers; /* add_header: own, else the server's */
	struct redirect *ret;    /* return = "301 target": answer with it */
};

struct vhost {
	char *name;
	char **aliases;
	int naliases;
	struct location *locs; /* longest prefix first; the last is "/" */
	int nlocs;
	void *ssl_ctx; /* SSL_CTX *, NULL without a tls section */
	char *tls_ciphers, *tls_suites;  /* applied when SNI picks us */
	int http2;                       /* offer h2 in ALPN */
	struct redirect *https_redirect; /* issue 15: plain HTTP -> https */
	struct config *cfg;
};

struct listen_addr {
	char *spec;   /* as written, for messages */
	char key[80]; /* normalized "addr:port/tls", matches across reloads */
	struct sockaddr_storage ss;
	socklen_t sslen;
	int tls;
	int proxy; /* a PROXY protocol header comes first */
	struct vhost *def;
	struct vhost **vhosts;
	int nvhosts;
	int *fds; /* one SO_REUSEPORT socket per worker, owned by listeners */
};

enum kt_loglevel { KT_LOG_ERROR, KT_LOG_WARN, KT_LOG_INFO, KT_LOG_DEBUG };

struct config {
	atomic_int refs;
	char *path;
	int workers;
	char *user, *group, *pid_file;
	char *error_log, *access_log, *mime_types;
	int log_level;
	int access_json;
	int server_tokens;
	int ktls;
	int ktls_placement; /* ask the kernel where kTLS crypto runs */
	long max_connections, max_request_head, max_uri, max_headers;
	long keepalive_requests;
	long max_ranges;
	long open_file_cache; /* entries per worker; 0: off */
	/* issue 13: open-file cache invalidation and small bodies */
	int open_file_cache_watch;   /* inotify instead of a stat per hit */
	long open_file_cache_body;   /* a body this small is kept in memory */
	long open_file_cache_memory; /* ... all of them, bytes per worker */
	long access_log_buffer;      /* bytes per worker; 0: a write per line */
	long handshake_timeout, header_timeout, keepalive_timeout;
	long send_timeout, shutdown_timeout;
	long drain_timeout, drain_idle; /* health.c: SIGUSR2 drain */
	int session_tickets;
	long session_cache, session_timeout;
	long http2_max_streams, http2_reset_burst, http2_reset_rate;
	long aio_threads, aio_queue, aio_chunk; /* fixed at start */
	char **gzip_types;
	int ngzip_types;
	char *gzip_cache;
	long gzip_min_size, gzip_max_size, gzip_level, gzip_cache_size;
	/* per-client limits (clientlimit.c); 0: off */
	long client_max_connections, client_rate, client_burst;
	long client_conn_status, client_rate_status;
	long client_ipv4_prefix, client_ipv6_prefix;
	long client_table_size;     /* fixed at start */
	struct cidr *client_exempt; /* networks no client limit applies to */
	int nclient_exempt;
	/* session ticket keys (ticket.c) */
	long session_ticket_rotate;
	char *session_ticket_key_file;
	unsigned char *ticket_keys; /* the file's keys, KT_TICKET_KEY_LEN each
	                             */
	int nticket_keys;
	struct vhost *vhosts;
	int nvhosts;
	struct listen_addr *listens;
	int nlistens;
	struct mime *mime;
};

/* ------------------------------------------------------------------ */
/* A request, independent of HTTP/1 or HTTP/2.                         */

enum kt_method { M_GET, M_HEAD, M_OTHER };

struct brange {
	uint64_t first, last;
};

/* One part of a multipart/byteranges body: its header, then its bytes. */
struct part {
	char *head; /* "\r\n--boundary\r\nContent-Type..." */
	size_t head_len;
	uint64_t off, len;
};

struct span {
	const char *p;
	size_t n;
};

struct request {
	/* parsed: pointers into the connection's input buffer */
	enum kt_method method;
	struct span method_str, target, host, if_none_match, if_modified_since,
	    range, if_range, user_agent, referer, accept_encoding;
	int http_major, http_minor;
	int has_body;

	/* routing */
	struct vhost *vh;
	struct location *loc;

	/* response */
	int status;
	char *location; /* redirect target (malloc) */
	const char *ctype;
	int fd;               /* body file, -1 without */
	struct fc_entry *fce; /* fd belongs to this open-file cache entry */
	struct worker *w;
	uint64_t size;      /* file size */
	uint64_t off, len;  /* body range */
	int partial;        /* 206: send Content-Range */
	uint64_t clen;      /* Content-Length */
	struct part *parts; /* several ranges: multipart/byteranges */
	int nparts, next_part, tail_sent;
	size_t part_pos; /* HTTP/2: bytes of the current part head sent */
	char boundary[24];
	char *ctype_buf; /* multipart's Content-Type */
	char *mem;       /* a body from memory: error page, listing, metrics */
	size_t mem_len, mem_off;
	const char *encoding; /* Content-Encoding of the variant, or NULL */
	int vary;             /* send Vary: Accept-Encoding */
	int retry_after;      /* s, sent with a client_rate refusal */
	time_t mtime;
	char etag[48];
	/* issue 13: a cached file's bytes (the whole file; the writers copy
	 * the range from here instead of reading fd), and its fixed head
	 * fields "Content-Type .. ETag" built once (valid until the head
	 * is built: the next request may rebuild them); NULL when not */
	const char *fbody;
	const char *head_fixed;
	size_t head_fixed_len;
	int wbulk; /* issue 13: c->wbuf holds KT_BULK bytes for this body */

	/* accounting */
	uint64_t sent;   /* response bytes written, head included */
	size_t head_len; /* response head bytes */
	int64_t start_us;
	uint64_t warm_from, warm_until; /* file bytes known in memory */
};

/* ------------------------------------------------------------------ */
/* Workers and connections.                                            */

enum conn_state {
	CS_HANDSHAKE,
	CS_PROXY, /* reading a PROXY protocol header */
	CS_READ,  /* idle, or reading a request head */
	CS_WRITE, /* sending a response */
	CS_AIO, /* waiting for the I/O threads to read the body's next bytes */
	CS_LINGER /* sent our last bytes; draining input before close */
};

/* How this connection's bytes are encrypted. */
/* Why a direction stayed in userspace; names in tls.c's tls_why[]. */
enum ktls_why {
	WHY_NONE,
	WHY_DISABLED,
	WHY_KERNEL,
	WHY_CIPHER,
	WHY_TLS13_RX,
	WHY_RX,
	WHY_COUNT
};
extern const char *const tls_why[WHY_COUNT];

struct conn_mode {
	unsigned tls : 1;
	unsigned ktls_tx : 1;
	unsigned ktls_rx : 1;
	unsigned why : 3; /* enum ktls_why, when TX or RX stayed in userspace */
	/* Where the kernel runs each direction's crypto under kTLS, from
	 * sys_tls_placement() once after the handshake: enum sys_tls_conf
	 * (none, sw, hw, hw-record). place_known 0: the kernel did not say. */
	unsigned place_known : 1;
	unsigned tx_place : 2, rx_place : 2;
};

/*
 * Counters of one worker. Only the owning thread writes them (a relaxed
 * load and store: no locked instruction); a scrape sums all workers.
 */
#define METRICS_BUCKETS 10
struct metrics {
	_Atomic uint64_t accepted, rejected, h1, h2;
	_Atomic uint64_t hs_ok[2], hs_failed, hs_resumed; /* [0] 1.2, [1] 1.3 */
	_Atomic uint64_t ktls_tx, ktls_rx, fallback[WHY_COUNT];
	/* kTLS connections by crypto placement: [0] tx, [1] rx, by enum
	 * sys_tls_conf; place_unknown: the kernel did not say */
	_Atomic uint64_t place[2][4], place_unknown;
	_Atomic uint64_t bytes_ktls, bytes_user, bytes_plain;
	_Atomic uint64_t status[6]; /* by class; [0] other */
	_Atomic uint64_t dur_bucket[METRICS_BUCKETS], dur_sum_us, requests;
	/* body chunks not in memory: sent to the I/O threads, or sent
	 * blocking because the queue was full; waits and their time */
	_Atomic uint64_t aio_cold, aio_full, aio_done, aio_wait_us;
	_Atomic uint64_t health[2]; /* health checks: [0] 200, [1] 503 */
	/* per-client limits: connections over client_max_connections,
	 * requests over client_rate; table slots taken from another client,
	 * connections not limited because their slots were all pinned */
	_Atomic uint64_t cl_conn_rejected, cl_rate_rejected;
	_Atomic uint64_t cl_evicted, cl_table_full;
};
#define METRIC_ADD(m, field, n)                                                \
	atomic_store_explicit(&(m)->field,                                     \
	    atomic_load_explicit(&(m)->field, memory_order_relaxed) + (n),     \
	    memory_order_relaxed)

struct conn {
	TAILQ_ENTRY(conn) link;
	struct worker *w;
	struct config *cfg; /* held reference */
	struct listen_addr *la;
	struct vhost *vh; /* chosen by SNI, or the listener's default */
	int fd;
	void *ssl; /* SSL *, NULL on a plain listener */
	struct event *ev;
	enum conn_state state;
	struct conn_mode mode;
	int64_t deadline_us; /* of the current phase; 0 = none */
	short ev_what;       /* what ev waits for now */
	unsigned keepalive : 1;
	unsigned want_write : 1; /* TLS asked for writability while reading */
	unsigned tls_failed : 1; /* fatal TLS error: no close_notify */
	unsigned aio_trust : 1;  /* the pool just read the bytes: no question */
	struct aio_job *aio;     /* in flight for us, or NULL */
	/* the protocol ALPN chose (HTTP/1.1 without it), NULL before */
	const struct conn_proto *proto;
	struct h2 *h2;        /* http2.c's state when proto is h2 */
	struct cl_slot *cl;   /* the client's pinned slot (clientlimit.c) */
	unsigned cl_over : 1; /* over client_max_connections: refuse */
	/* issue 14: our KeyUpdate is not sent yet */
	unsigned rekey_pending : 1;
	/* issue 13: userspace TLS: a buffering BIO on the socket while a
	 * response is written, and the bytes of the last SSL_write whose
	 * records are still in it (told to the caller once flushed) */
	unsigned wbio_buffered : 1;
	size_t tls_owed;
	unsigned nreq;
	/* issue 13: the last Host or :authority named here and the server
	 * vhost_by_name found for it (route.c): clients repeat it */
	struct vhost *host_vh;
	unsigned char host_n; /* its length; 0: none remembered */
	char host[47];
	char peer[48];
	struct sockaddr_storage peer_ss;

	/* input: allocated while a request is being read or pipelined */
	char *rbuf;
	size_t rlen, rcap, scanned;
	size_t head_len; /* bytes of rbuf the current request occupies */

	/* output */
	struct request *req;
	char *wbuf; /* response head, then userspace body chunks */
	size_t wlen, wpos;
	size_t linger_left;
	int64_t linger_end_us;
};

TAILQ_HEAD(conn_list, conn);

struct worker {
	int id;
	struct event_base *base;
	struct config *cfg; /* current generation, held reference */
	struct event **accept_ev;
	int naccept;
	struct event *cmd_ev;
	struct event *pause_ev;
	struct event *stop_ev;
	atomic_int cmd;
	_Atomic(struct config *) next_cfg; /* handed over by a reload */
	struct conn_list conns;
	int nconns;
	int stopping;
	struct metrics m;
	struct filecache *fc;
	char *logbuf; /* access lines not yet written */
	size_t logbuf_len, logbuf_cap;
	struct event *flush_ev;
	int aio_pipe[2]; /* finished readahead jobs, from the I/O threads */
	struct event *aio_ev;
	time_t date_t;
	char date[40];
	size_t date_n; /* strlen(date) */
	/* issue 13: HTTP/1.1 hands a finished request's struct and a going
	 * idle connection's buffers here, the next request takes them: no
	 * malloc/free per keep-alive request, and still no buffers held
	 * per idle connection (at most one of each per worker) */
	struct request *spare_req;
	char *spare_rbuf, *spare_wbuf; /* RBUF_START, >= KT_CHUNK bytes */
	void *spare_wbio; /* conn.c's record-gathering BIO, when unused */
};

/* ------------------------------------------------------------------ */
/* Prototypes, by file.                                                */

/* config.c */
struct tls_params {
	const char *cert, *key, *ciphers, *suites;
	const char *ocsp; /* issue 15: DER OCSP response to staple, or NULL */
	int min, max;     /* protocol versions, 0x0303 = TLS 1.2 */
};
struct config *config_load(const char *path);
void config_serving(void);
void config_ref(struct config *);
void config_unref(struct config *);

/* vhost.c: lookups in the built config */
struct vhost *vhost_by_name(struct listen_addr *, const char *, size_t);
struct location *vhost_location(struct vhost *, const char *path);

/* listeners.c */
int listeners_sync(struct config *);
void listeners_close_unused(void);

/* worker.c */
void worker_metrics_sum(struct metrics *);
int worker_start_all(struct config *);
void worker_reload_all(struct config *);
void worker_stop_all(void);
void worker_drain_all(void);
void worker_flush_logs(void);
void worker_join_all(void);

/* conn.c: the connection, which knows no protocol. It calls the one ALPN
 * chose (HTTP/1.1 without TLS or ALPN) through this table, registered by
 * main at start-up with conn_protocols(). */
struct conn_proto {
	const char *name;
	/* set up its state after the handshake: 0, or -1 to close; NULL:
	 * nothing to set up */
	int (*start)(struct conn *);
	/* readable or writable in its states; the readahead pool calls it
	 * with EV_WRITE once the bytes it waited for are in memory */
	void (*io)(struct conn *, short what);
	/* the deadline passed; NULL: conn.c logs and closes */
	void (*timeout)(struct conn *);
	/* reload, drain, stop: announce the end (GOAWAY), open streams
	 * finish; NULL: nothing to announce, an idle one closes at stop */
	void (*shutdown)(struct conn *);
	/* free what the protocol holds (conn_close) */
	void (*free)(struct conn *);
};
void conn_protocols(const struct conn_proto *h1, const struct conn_proto *h2);
extern atomic_long conn_count; /* open connections, all workers */
void conn_accept(struct worker *, struct listen_addr *, int fd,
    struct sockaddr *, socklen_t);
enum { CONN_EOF = 0, CONN_ERROR = -1, CONN_AGAIN = -2 };
void conn_close(struct conn *);
void conn_cork(struct conn *); /* until the handshake's turn ends */
void conn_finish(struct conn *, int linger);
void conn_shutdown_idle(struct worker *);
void conn_reload(struct worker *);
void conn_drain(struct worker *);
void conn_wait(struct conn *, short what);
void conn_sleep(struct conn *);
void conn_deadline(struct conn *, long seconds);
ssize_t conn_recv(struct conn *, void *buf, size_t len);
ssize_t conn_send(struct conn *, const void *buf, size_t len, int more);
void conn_send_flush(struct conn *);
void conn_worker_free(struct worker *);
ssize_t conn_sendfile(struct conn *, int fd, uint64_t off, size_t len);
int64_t conn_now_us(struct conn *);
/* the Date field, formatted once a second; its length in *n */
const char *conn_date(struct conn *, size_t *n);

/* sslmem.c */
void sslmem_init(void); /* first thing in main: OpenSSL's allocator */

/* tls.c */
int tls_init(void);
void *tls_ctx_new(const struct tls_params *, char *err, size_t errlen);
void tls_ctx_free(void *ctx);
int tls_vhost_setup(struct config *, struct vhost *, const struct tls_params *);
void *tls_new(struct conn *);
int tls_handshake(struct conn *);
void tls_record_mode(struct conn *);
int tls_pending(struct conn *);
int tls_alpn_h2(struct conn *);
const char *tls_version(struct conn *);
const char *tls_cipher(struct conn *);
struct log_conn;
void tls_describe(struct conn *, struct log_conn *);
void tls_ktls_probe(struct config *);
/* ---- issue 14: TLS 1.3 KeyUpdate under kTLS (tls_rekey.c) ----
 * tls_rekey_probe: once at start, what the kernel takes (logged).
 * tls_ktls_rekey: the peer requested a KeyUpdate on a kTLS TX connection,
 * or ours is pending (c->rekey_pending): 1 answered and the kernel has
 * the new keys, 0 try again at the next write (want_write set), -1 end
 * the connection (tls_failed set when not even close_notify may go). */
void tls_rekey_probe(void);
int tls_rekey_rx_ok(void);
int tls_ktls_rekey(struct conn *);
/* ---- end issue 14 ---- */

/* ocsp.c: OCSP stapling from a file */
int ocsp_setup(void *ssl_ctx, const char *server, const char *path);
/* clientlimit.c */
int cl_start(struct config *);
int cl_conn_open(struct conn *);
void cl_conn_close(struct conn *);
int cl_request(struct conn *, struct request *);
void cl_table_stats(long *used, long *size);

/* ticket.c */
int ticket_configure(struct config *);
void ticket_ctx_setup(void *ssl_ctx);
struct ticket_stats {
	long keys;
	uint64_t rotations, issued, resumed, renewed, unknown;
};
void ticket_stats(struct ticket_stats *);

/* http1.c */
extern const struct conn_proto h1_proto;

/* proxy.c */
int proxy_parse(const unsigned char *buf, size_t len,
    struct sockaddr_storage *src, size_t *used);

/* h2ids.c: client stream ids opened (RFC 9113 5.1.1) */
#define H2IDS_WINDOW 256 /* ids below the highest remembered exactly */
struct h2ids {
	int32_t max; /* highest stream id opened, 0: none */
	uint64_t seen[H2IDS_WINDOW / 64];
	uint64_t ended[H2IDS_WINDOW / 64]; /* the client sent END_STREAM */
};
#define H2IDS_CLOSED (-2) /* h2ids_check: a stream the client ended */
int h2ids_check(struct h2ids *, int32_t id, int open);
void h2ids_ended(struct h2ids *, int32_t id);

/* headers.c: add_header */
int headers_check(const char *const *list, int n, char *err, size_t errlen);
struct headers *headers_new(const char *const *list, int n);
void headers_free(struct headers *);
size_t headers_h1(const struct conn *, const struct request *, char *out,
    size_t cap, size_t n);
size_t headers_h2(const struct conn *, const struct request *, void *nv);

/* redirect.c: return and https_redirect */
int redirect_check(const char *spec, char *err, size_t errlen);
struct redirect *redirect_new(const char *spec);
void redirect_free(struct redirect *);
int redirect_apply(struct conn *, struct request *, struct span host,
    struct span path, struct span query, const char *decoded);

/* http2.c */
extern const struct conn_proto h2_proto;
int h2_start(struct conn *); /* h2_proto.start, for the fuzzer */

/* health.c */
int health_failing(void);
void health_fail(void);
void health_serve(struct conn *, struct request *);
void health_drain_begin(void);
int health_drain_over(const struct config *);

/* route.c: the router, from the protocols down to the handlers */
void route_request(struct conn *, struct request *);
int route_split_origin(
    struct span target, struct span *path, struct span *query);

/* request.c: the response the handlers build and the protocols write */
void req_log(struct conn *, struct request *);
void req_free(struct request *);
void req_release(struct request *);
const char *req_reason(int status);
void req_finish(struct request *);
int req_set_body(struct request *, char *mem, size_t len, const char *ctype);
size_t req_error_body(int status, char *out, size_t outsz);

/* path.c */
int path_decode(const char *uri, size_t len, char *out, size_t outsz);
int path_hidden(const char *path);

/* range.c */
enum range_result { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };
int range_parse_set(
    const char *hdr, size_t len, uint64_t size, struct brange *out, int max);
enum range_result range_parse(const char *hdr, size_t len, uint64_t size,
    uint64_t *first, uint64_t *last);

/* cond.c */
int cond_etag_match(const char *list, size_t len, const char *etag, int weak);
int cond_not_modified(struct request *);
int cond_if_range(struct request *);

/* date.c */
size_t date_format(time_t, char *out, size_t outsz);
int64_t date_mono_us(void);
char *date_u64(char *p, uint64_t v, unsigned base);
int date_parse(const char *s, size_t len, time_t *out);

/* compress.c */
int compress_accepts(struct span accept_encoding, const char *coding);
void compress_choose(struct request *, const char *path, const char *ctype,
    int *fd, struct stat *);

/* filecache.c */
/* issue 13: the values of fc_head's fields, for HTTP/2's header list */
struct fc_headvals {
	struct span ctype, clen, lm, etag;
};
struct filecache *fc_new(struct config *, struct event_base *);
const char *fc_body(const struct fc_entry *);
const char *fc_head(
    struct fc_entry *, const char *ctype, const char *etag, size_t *len);
const struct fc_headvals *fc_head_vals(const struct fc_entry *);
const char *fc_mime(struct fc_entry *, const struct mime *, const char *path);
void fc_free(struct filecache *);
struct fc_entry *fc_get(struct filecache *, const struct location *,
    const char *path, int *fd, struct stat *);
struct fc_entry *fc_add(struct filecache *, const struct location *,
    const char *path, int fd, struct stat *);
void fc_put(struct fc_entry *);

/* file.c */
void file_serve(struct request *, const char *path, struct span query);
int file_next_part(struct request *);
size_t file_tail(struct request *, char *out, size_t outsz);

/* body.c */
enum body_result {
	BODY_DONE,
	BODY_AGAIN_WRITE,
	BODY_AGAIN_READ,
	BODY_AGAIN_AIO, /* the next bytes are on disk: wait for the pool */
	BODY_ERROR
};
enum body_result body_send(struct conn *);
int body_fill(struct conn *, size_t room);

/* aio.c */
int aio_start(struct config *);
void aio_stop(void);
int aio_worker_init(struct worker *);
void aio_worker_free(struct worker *);
int aio_read_now(struct conn *, struct request *, char *buf, size_t len);
int aio_ready(struct conn *, struct request *, uint64_t len);
void aio_cancel(struct conn *);
long aio_depth(void);

/* mime.c */
struct mime *mime_load(const char *path);
void mime_free(struct mime *);
const char *mime_type(const struct mime *, const char *path);
uint64_t mime_id(const struct mime *);

/* metrics.c: the counters, a leaf */
extern const int64_t metrics_bucket_us[METRICS_BUCKETS]; /* upper bounds */
void metrics_handshake(
    struct metrics *, const struct conn_mode *, int ok, int tls13, int resumed);
void metrics_request(
    struct metrics *, const struct conn_mode *, const struct request *);
int metrics_allowed(const struct location *, const struct sockaddr *);

/* stats.c: the metrics page, a handler */
void stats_serve(struct conn *, struct request *);

/* log.c */
int log_configure(struct config *);
void log_reopen(void);
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* an access line's connection fields, plain values (tls_describe) */
struct log_conn {
	int json;
	const char *peer, *tls_version, *tls_cipher; /* "-" without TLS */
	char ktls[96];  /* "tx+rx", "tx(rx:why)", "off(why)", "-" */
	char place[32]; /* "tx:hw,rx:sw", "unknown", "-" */
};
int log_access_on(void);
void log_access(
    struct worker *, const struct log_conn *, const struct request *);
void log_flush(struct worker *);
/*
 * A fault that repeats (out of descriptors) is logged once a second at
 * most, with how many times it happened meanwhile.
 */
struct log_limit {
	_Atomic long long last_s;
	atomic_long count;
};
int log_limited(struct log_limit *, long *suppressed);
#define log_error(...) log_msg(KT_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(KT_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(KT_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(KT_LOG_DEBUG, __VA_ARGS__)

#endif
