/* Admin HTTP server (see admin_http.h). */
#include "server/admin_http.h"

#include <openssl/crypto.h>
#include <strings.h>

#include "common/addr.h"
#include "common/log.h"
#include "rpc/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_HEAD   8192
#define HTTP_MAX_CONNS  64
#define HTTP_MAX_ROUTES 32
#define HTTP_IDLE_MS    10000

typedef struct route {
    char path[64];
    admin_handler_fn fn;
    void *arg;
    int private_; /* needs the bearer token when one is required */
} route;

typedef struct conn conn;

struct admin_http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    route routes[HTTP_MAX_ROUTES];
    int nroutes;
    int require_token;
    char token[128], hint[256];
    uint64_t unauthorized;
    int nconns;
    tls_ctx *tls; /* secure node: HTTPS beside plaintext for the open routes */
    int handles;  /* open libuv handles: listener + 2 per connection */
    int closing;
    conn *conns;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    admin_http *srv;
    conn *prev, *next;
    char head[HTTP_MAX_HEAD + 1];
    size_t len;
    int responded;
    int closing;
    int open_handles; /* tcp + timer; the conn is freed when both closed */
    uv_write_t wreq;
    mbuf out;
    /* HTTPS: ciphertext is read into raw and fed to the session; decrypted
     * bytes go to head as plaintext requests do. tls_state: 0 not yet
     * known, 1 plaintext, 2 TLS handshaking, 3 TLS established. */
    int tls_state;
    tls_sess *tls;
    uint8_t raw[16384];
};

/* A handshake flight in the middle of the conversation (freed when written). */
typedef struct hs_write {
    uv_write_t req;
    mbuf data;
} hs_write;

static void maybe_free_server(admin_http *h)
{
    if (h->closing && h->handles == 0) free(h);
}

static void on_handle_closed(uv_handle_t *hd)
{
    conn *c = hd->data;
    admin_http *h = c->srv;
    h->handles--;
    if (--c->open_handles == 0) {
        mbuf_free(&c->out);
        tls_sess_free(c->tls);
        free(c);
    }
    maybe_free_server(h);
}

static void conn_close(conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    admin_http *h = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    h->nconns--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static void on_written(uv_write_t *req, int status)
{
    conn *c = req->data;
    (void)status;
    conn_close(c);
}

static void respond(conn *c, int status, const char *ctype, const mbuf *body, int head_only)
{
    if (c->responded) return;
    c->responded = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    size_t blen = body ? body->len : 0;
    int rc =
        mbuf_printf(&c->out,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    status, status_text(status), ctype ? ctype : "text/plain; charset=utf-8", blen);
    if (!rc && body && !head_only) rc = mbuf_append(&c->out, body->data, body->len);
    if (!rc && c->tls_state == 3) { /* encrypt the whole answer in place */
        mbuf enc = MBUF_INIT;
        merr e = {0};
        rc = tls_sess_write(c->tls, c->out.data, c->out.len, &e);
        if (!rc) rc = tls_sess_drain(c->tls, &enc);
        mbuf_free(&c->out);
        c->out = enc;
    }
    if (rc) {
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written)) conn_close(c);
}

static void respond_text(conn *c, int status, const char *text)
{
    mbuf b = MBUF_INIT;
    if (mbuf_append_str(&b, text) == 0)
        respond(c, status, NULL, &b, 0);
    else
        conn_close(c);
    mbuf_free(&b);
}

/* An "Authorization: Bearer TOKEN" header line with our token. The compare
 * takes the same time wherever the first wrong byte is. */
static int authorized(const admin_http *h, const char *headers)
{
    size_t tl = strlen(h->token);
    if (!tl) return 0;
    for (const char *l = headers; l && *l;) {
        const char *end = strstr(l, "\r\n");
        size_t n = end ? (size_t)(end - l) : strlen(l);
        if (n > 14 && !strncasecmp(l, "authorization:", 14)) {
            const char *v = l + 14;
            while (*v == ' ' || *v == '\t') v++;
            if (!strncasecmp(v, "bearer ", 7)) {
                v += 7;
                size_t vl = (size_t)(l + n - v);
                while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
                return vl == tl && CRYPTO_memcmp(v, h->token, tl) == 0;
            }
        }
        l = end ? end + 2 : NULL;
    }
    return 0;
}

/* Parses "METHOD SP TARGET SP HTTP/1.x" from the request head and serves it. */
static void serve(conn *c)
{
    char *eol = strstr(c->head, "\r\n");
    if (!eol) {
        respond_text(c, 400, "bad request line\n");
        return;
    }
    *eol = '\0';
    char *sp1 = strchr(c->head, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        respond_text(c, 400, "bad request line\n");
        return;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    const char *headers = eol + 2;
    const char *method = c->head;
    char *target = sp1 + 1;
    int head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0) {
        respond_text(c, 405, "only GET and HEAD\n");
        return;
    }
    if (target[0] != '/') {
        respond_text(c, 400, "bad request target\n");
        return;
    }
    char *q = strchr(target, '?');
    const char *query = "";
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    admin_http *h = c->srv;
    for (int i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].path, target) != 0) continue;
        if (h->routes[i].private_ && h->tls && c->tls_state != 3) {
            /* The token must not travel in clear: refuse before looking. */
            h->unauthorized++;
            respond_text(c, 403,
                         "this node is secure: ask for this page over https:// (the node "
                         "certificate, CERTS_DIR/ca.crt) with 'Authorization: Bearer TOKEN'\n");
            return;
        }
        if (h->routes[i].private_ && h->require_token && !authorized(h, headers)) {
            h->unauthorized++;
            char msg[512];
            if (h->token[0])
                snprintf(msg, sizeof(msg),
                         "unauthorized: this node is secure; send 'Authorization: Bearer TOKEN' "
                         "with the token in %s\n",
                         h->hint);
            else
                snprintf(msg, sizeof(msg),
                         "unauthorized: this node is secure and has no token file %s "
                         "(meridian cert create-node makes one)\n",
                         h->hint);
            respond_text(c, 401, msg);
            return;
        }
        admin_response r = {.status = 200, .content_type = NULL, .body = MBUF_INIT};
        h->routes[i].fn(h->routes[i].arg, target, query, &r);
        respond(c, r.status, r.content_type, &r.body, head_only);
        mbuf_free(&r.body);
        return;
    }
    respond_text(c, 404, "not found\n");
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    conn *c = hd->data;
    (void)suggested;
    if (c->srv->tls && c->tls_state != 1) { /* maybe TLS: ciphertext first */
        buf->base = (char *)c->raw;
        buf->len = sizeof(c->raw);
        return;
    }
    /* Read straight into the head buffer; one spare byte keeps it a C string. */
    buf->base = c->head + c->len;
    buf->len = HTTP_MAX_HEAD - c->len;
}

static void on_hs_written(uv_write_t *req, int status)
{
    hs_write *w = (hs_write *)req;
    (void)status;
    mbuf_free(&w->data);
    free(w);
}

/* Sends what the TLS session has for the peer (handshake records). */
static int tls_flush(conn *c)
{
    if (!tls_sess_pending(c->tls)) return 0;
    hs_write *w = calloc(1, sizeof(*w));
    if (!w || tls_sess_drain(c->tls, &w->data)) {
        if (w) mbuf_free(&w->data);
        free(w);
        return -1;
    }
    uv_buf_t b = uv_buf_init((char *)w->data.data, (unsigned)w->data.len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_hs_written)) {
        mbuf_free(&w->data);
        free(w);
        return -1;
    }
    return 0;
}

/* HTTPS on a secure node: the first byte tells a TLS ClientHello (record
 * type 22) from a plaintext request, which is served too but gets no
 * private route. Returns the plaintext bytes now in head (0: none yet),
 * or -1 when the connection was closed. */
static ssize_t tls_on_read(conn *c, size_t n)
{
    admin_http *h = c->srv;
    merr e = {0};
    if (c->tls_state == 0) {
        if (c->raw[0] != 0x16) {
            c->tls_state = 1;
            if (n > HTTP_MAX_HEAD) n = HTTP_MAX_HEAD;
            memcpy(c->head, c->raw, n);
            return (ssize_t)n;
        }
        if (tls_sess_new(h->tls, 1, &c->tls)) {
            conn_close(c);
            return -1;
        }
        c->tls_state = 2;
    }
    if (tls_sess_feed(c->tls, c->raw, n)) {
        conn_close(c);
        return -1;
    }
    if (c->tls_state == 2) {
        int r = tls_sess_handshake(c->tls, &e);
        if (r < 0 || tls_flush(c)) {
            MLOG_D("http", "TLS handshake failed", "err=\"%s\"", merr_msg(&e));
            conn_close(c);
            return -1;
        }
        if (r == 0) return 0;
        c->tls_state = 3;
    }
    size_t got = 0;
    while (c->len + got < HTTP_MAX_HEAD) {
        int r = tls_sess_read(c->tls, c->head + c->len + got, HTTP_MAX_HEAD - c->len - got, &e);
        if (r <= 0) {
            if (r < 0) {
                conn_close(c);
                return -1;
            }
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0 || c->responded) return;
    if (c->srv->tls && c->tls_state != 1 && (n = tls_on_read(c, (size_t)n)) <= 0) return;
    c->len += (size_t)n;
    c->head[c->len] = '\0';
    if (memchr(c->head, '\0', c->len)) {
        respond_text(c, 400, "NUL byte in request\n");
        return;
    }
    if (strstr(c->head, "\r\n\r\n")) {
        serve(c);
        return;
    }
    if (c->len >= HTTP_MAX_HEAD) respond_text(c, 431, "request head too large\n");
}

static void on_idle(uv_timer_t *t)
{
    conn *c = t->data;
    MLOG_D("http", "idle connection closed", "%s", "");
    conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    admin_http *h = server->data;
    if (status < 0 || h->closing) return;
    conn *c = calloc(1, sizeof(*c));
    if (!c) return;
    c->srv = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    h->handles += 2;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) || h->nconns > HTTP_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_idle, HTTP_IDLE_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) conn_close(c);
}

static void on_listener_closed(uv_handle_t *hd)
{
    admin_http *h = hd->data;
    h->handles--;
    maybe_free_server(h);
}

int admin_http_start(uv_loop_t *loop, const char *listen_addr, admin_http **out, merr *e)
{
    struct sockaddr_storage ss;
    int rc = maddr_parse_listen(listen_addr, &ss, e);
    if (rc) return merr_wrap(e, "http listen");
    admin_http *h = calloc(1, sizeof(*h));
    if (!h) return merr_set(e, MERR_NOMEM, "http: out of memory");
    h->loop = loop;
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    h->handles = 1;
    int uvrc = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0);
    if (!uvrc) uvrc = uv_listen((uv_stream_t *)&h->listener, 128, on_connection);
    if (uvrc) {
        merr_set(e, uvrc == UV_EADDRINUSE ? MERR_EXISTS : MERR_IO, "http listen on %s: %s",
                 listen_addr, uv_strerror(uvrc));
        h->closing = 1;
        uv_close((uv_handle_t *)&h->listener, on_listener_closed);
        return e ? e->code : MERR_IO;
    }
    *out = h;
    return 0;
}

int admin_http_route_private(admin_http *h, const char *path, admin_handler_fn fn, void *arg)
{
    int rc = admin_http_route(h, path, fn, arg);
    if (!rc) h->routes[h->nroutes - 1].private_ = 1;
    return rc;
}

void admin_http_require_token(admin_http *h, const char *token, const char *hint)
{
    h->require_token = 1;
    snprintf(h->token, sizeof(h->token), "%s", token ? token : "");
    snprintf(h->hint, sizeof(h->hint), "%s", hint ? hint : "");
}

uint64_t admin_http_unauthorized(const admin_http *h)
{
    return h->unauthorized;
}

int admin_http_route(admin_http *h, const char *path, admin_handler_fn fn, void *arg)
{
    if (strlen(path) >= sizeof(h->routes[0].path)) return MERR_TOOBIG;
    for (int i = 0; i < h->nroutes; i++)
        if (strcmp(h->routes[i].path, path) == 0) return MERR_EXISTS;
    if (h->nroutes == HTTP_MAX_ROUTES) return MERR_TOOBIG;
    route *r = &h->routes[h->nroutes++];
    strcpy(r->path, path);
    r->fn = fn;
    r->arg = arg;
    return 0;
}

int admin_http_port(const admin_http *h)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void admin_http_addr(const admin_http *h, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len)) {
        snprintf(buf, cap, "?");
        return;
    }
    maddr_format((struct sockaddr *)&ss, buf, cap);
}

void admin_http_use_tls(admin_http *h, tls_ctx *ctx)
{
    /* Open sessions hold their own reference to the old context. */
    tls_ctx_free(h->tls);
    h->tls = ctx;
}

void admin_http_close(admin_http *h)
{
    if (!h || h->closing) return;
    h->closing = 1;
    tls_ctx_free(h->tls);
    h->tls = NULL;
    while (h->conns) conn_close(h->conns);
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
}
