/* Admin HTTP server over a real loopback socket: routing, 404/405/400/431,
 * HEAD, the connection cap, and clean shutdown with connections open. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "server/admin_http.h"

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    admin_http *http;
    pthread_t thread;
    int port;
    int ready_calls;
} fixture;

static void health(void *arg, const char *path, const char *query, admin_response *r)
{
    (void)arg;
    (void)path;
    mbuf_printf(&r->body, "ok query=%s\n", query);
}

static void ready(void *arg, const char *path, const char *query, admin_response *r)
{
    fixture *f = arg;
    (void)path;
    (void)query;
    f->ready_calls++;
    r->status = 503;
    mbuf_printf(&r->body, "not ready\n");
}

static void secret(void *arg, const char *path, const char *query, admin_response *r)
{
    (void)arg, (void)path, (void)query;
    mbuf_printf(&r->body, "secret data\n");
}

static void on_stop(uv_async_t *a)
{
    fixture *f = a->data;
    admin_http_close(f->http);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void *loop_main(void *arg)
{
    fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->stop, on_stop);
    f->stop.data = f;
    merr e = {0};
    if (admin_http_start(&f->loop, "127.0.0.1:0", &f->http, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    admin_http_route(f->http, "/health", health, f);
    admin_http_route(f->http, "/ready", ready, f);
    admin_http_route_private(f->http, "/secret", secret, f);
    f->port = admin_http_port(f->http);
    pthread_create(&f->thread, NULL, loop_main, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    /* Every handle closed: uv_loop_close fails with EBUSY otherwise. */
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 30}; /* hang guard only */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Sends raw bytes, reads until the server closes, returns the whole reply. */
static char *exchange(int port, const char *req, size_t reqlen)
{
    int fd = dial(port);
    size_t off = 0;
    while (off < reqlen) {
        ssize_t w = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may cut us off mid-request: that is a reply too */
        off += (size_t)w;
    }
    size_t cap = 65536, len = 0;
    char *out = calloc(1, cap + 1);
    for (;;) {
        ssize_t r = recv(fd, out + len, cap - len, 0);
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    return out;
}

static char *get(int port, const char *line)
{
    char req[512];
    snprintf(req, sizeof(req), "%s\r\nHost: x\r\n\r\n", line);
    return exchange(port, req, strlen(req));
}

static void test_routes(void **state)
{
    fixture *f = *state;
    char *r = get(f->port, "GET /health?verbose=1 HTTP/1.1");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Length: 19\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nok query=verbose=1\n"));
    free(r);
    r = get(f->port, "GET /ready HTTP/1.0");
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(r, "not ready"));
    free(r);
    r = get(f->port, "HEAD /health HTTP/1.1");
    assert_non_null(strstr(r, "200 OK"));
    assert_null(strstr(r, "ok query"));
    free(r);
    r = get(f->port, "GET /nope HTTP/1.1");
    assert_non_null(strstr(r, "404 Not Found"));
    free(r);
    r = get(f->port, "POST /health HTTP/1.1");
    assert_non_null(strstr(r, "405 Method Not Allowed"));
    free(r);
}

/* Private routes want the bearer token once one is required; public ones
 * stay open; no token file locks them; the compare is exact. */
typedef struct tok_req {
    fixture *f;
    const char *token;
    uv_async_t a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} tok_req;

static void tok_cb(uv_async_t *a)
{
    tok_req *t = a->data;
    admin_http_require_token(t->f->http, t->token, "/certs/metrics.token");
    uv_close((uv_handle_t *)&t->a, NULL);
    pthread_mutex_lock(&t->mu);
    t->done = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void require_token(fixture *f, const char *token)
{
    tok_req t = {.f = f, .token = token};
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    /* The loop owns the server: set the token there. */
    uv_async_init(&f->loop, &t.a, tok_cb);
    t.a.data = &t;
    uv_async_send(&t.a);
    pthread_mutex_lock(&t.mu);
    while (!t.done) pthread_cond_wait(&t.cv, &t.mu);
    pthread_mutex_unlock(&t.mu);
}

static void test_bearer_token(void **state)
{
    fixture *f = *state;
    char *r = get(f->port, "GET /secret HTTP/1.1");
    assert_non_null(strstr(r, "200 OK")); /* no token required yet */
    free(r);
    require_token(f, "s3cr3t-token");
    r = get(f->port, "GET /secret HTTP/1.1");
    assert_non_null(strstr(r, "401 Unauthorized"));
    assert_non_null(strstr(r, "Authorization: Bearer TOKEN"));
    assert_non_null(strstr(r, "/certs/metrics.token"));
    assert_null(strstr(r, "secret data"));
    free(r);
    r = get(f->port, "GET /secret HTTP/1.1\r\nAuthorization: Bearer s3cr3t-toke");
    assert_non_null(strstr(r, "401"));
    free(r);
    r = get(f->port, "GET /secret HTTP/1.1\r\nAuthorization: Bearer s3cr3t-token2");
    assert_non_null(strstr(r, "401"));
    free(r);
    r = get(f->port, "GET /secret HTTP/1.1\r\nauthorization:   bearer s3cr3t-token  ");
    assert_non_null(strstr(r, "200 OK"));
    assert_non_null(strstr(r, "secret data"));
    free(r);
    r = get(f->port, "GET /health HTTP/1.1");
    assert_non_null(strstr(r, "200 OK")); /* public routes stay open */
    free(r);
    assert_true(admin_http_unauthorized(f->http) >= 3);
    require_token(f, NULL); /* a secure node without a token file */
    r = get(f->port, "GET /secret HTTP/1.1\r\nAuthorization: Bearer ");
    assert_non_null(strstr(r, "401"));
    assert_non_null(strstr(r, "has no token file"));
    free(r);
}

static void test_malformed(void **state)
{
    fixture *f = *state;
    const char *bad[] = {"GARBAGE\r\n\r\n", "GET /health\r\n\r\n", "GET health HTTP/1.1\r\n\r\n",
                         "GET /health SPDY/3\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *r = exchange(f->port, bad[i], strlen(bad[i]));
        assert_non_null(strstr(r, "400 Bad Request"));
        free(r);
    }
    /* A NUL byte inside the head. */
    char *r = exchange(f->port, "GET /he\0lth HTTP/1.1\r\n\r\n", 25);
    assert_non_null(strstr(r, "400 Bad Request"));
    free(r);
    /* An endless head: cut at 8 KiB with 431. */
    size_t n = 20000;
    char *big = malloc(n);
    memcpy(big, "GET /health HTTP/1.1\r\nX: ", 25);
    memset(big + 25, 'a', n - 25);
    r = exchange(f->port, big, n);
    assert_non_null(strstr(r, "431 Request Header Fields Too Large"));
    free(r);
    free(big);
    /* The server still serves after all that. */
    r = get(f->port, "GET /health HTTP/1.1");
    assert_non_null(strstr(r, "200 OK"));
    free(r);
}

static void test_connection_cap_and_close_with_open_conns(void **state)
{
    fixture *f = *state;
    /* 70 idle connections, accepted in connect order: the 6 past the cap of
     * 64 are closed at once (EOF), while the first 64 still serve. */
    int fds[70];
    for (int i = 0; i < 70; i++) fds[i] = dial(f->port);
    for (int i = 64; i < 70; i++) {
        char c;
        assert_int_equal(recv(fds[i], &c, 1, 0), 0);
    }
    const char *req = "GET /health HTTP/1.1\r\n\r\n";
    assert_int_equal(send(fds[0], req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[256] = {0};
    assert_true(recv(fds[0], buf, sizeof(buf) - 1, 0) > 0);
    assert_non_null(strstr(buf, "200 OK"));
    /* teardown closes the server with the remaining connections still open,
     * and must release every handle (uv_loop_close succeeds). */
    for (int i = 0; i < 70; i++) close(fds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap_and_close_with_open_conns, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
