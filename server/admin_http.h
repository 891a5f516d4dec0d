/* A small HTTP/1.1 server for a node's admin endpoints (/health, /ready,
 * /metrics, later the status pages), on the node's libuv loop.
 *
 * Deliberately minimal and defensive: GET and HEAD only, one request per
 * connection (Connection: close), request head capped at 8 KiB (431 past it),
 * idle connections cut after 10 s, at most 64 connections at once. Handlers
 * run on the loop thread and must not block. */
#ifndef MERIDIAN_SERVER_ADMIN_HTTP_H
#define MERIDIAN_SERVER_ADMIN_HTTP_H

#include <uv.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct admin_http admin_http;

typedef struct admin_response {
    int status;               /* 200 unless the handler says otherwise */
    const char *content_type; /* "text/plain; charset=utf-8" unless set */
    mbuf body;
} admin_response;

/* path is the part before '?', query the part after (or ""). */
typedef void (*admin_handler_fn)(void *arg, const char *path, const char *query,
                                 admin_response *resp);

/* Listens on "HOST:PORT" (port 0 picks a free one: see admin_http_port). */
int admin_http_start(uv_loop_t *loop, const char *listen_addr, admin_http **out, merr *e);
/* Routes an exact path to a handler. Returns 0, MERR_EXISTS or MERR_TOOBIG. */
int admin_http_route(admin_http *h, const char *path, admin_handler_fn fn, void *arg);
/* The same for a route that reveals data or changes state: once a token
 * is required (admin_http_require_token), it answers only requests with
 * "Authorization: Bearer TOKEN" (401 otherwise; compared in constant time). */
int admin_http_route_private(admin_http *h, const char *path, admin_handler_fn fn, void *arg);
/* Requires token on private routes (a secure node). token NULL or "":
 * private routes refuse everyone, saying which file to create. hint names
 * the token file in that refusal. Loop thread. */
void admin_http_require_token(admin_http *h, const char *token, const char *hint);
/* A secure node: the same port also speaks HTTPS with ctx (the node
 * certificate; h owns ctx and frees the one it replaces). Private routes
 * then answer only over HTTPS (403 in plaintext, before any token is
 * looked at); /health and /ready stay open either way, so probes need no
 * certificate. Loop thread. */
struct tls_ctx;
void admin_http_use_tls(admin_http *h, struct tls_ctx *ctx);
/* 401 answers so far (metrics, tests). */
uint64_t admin_http_unauthorized(const admin_http *h);
int admin_http_port(const admin_http *h);
/* The bound address, "127.0.0.1:8080" (after port 0 was resolved). */
void admin_http_addr(const admin_http *h, char *buf, size_t cap);
/* Stops listening, drops open connections, frees h once libuv has let go of
 * every handle (run the loop until then). */
void admin_http_close(admin_http *h);

#endif
