/* A SQL client that asks for a large result with a huge stream window (so
 * the node may send as much as it likes) and then reads as slowly as its
 * test wants: limits_test.sh stops this process (SIGSTOP) so nothing is
 * read, looks at the node, and lets it go on (SIGCONT). libmeridian never
 * grants more than a few batches; a hostile or broken client can.
 *
 * Usage: greedy_reader HOST:PORT SQL
 * Prints "first" once the first batch arrived, then at the end
 * "done rows=N code=C msg=M"; exits 0 when the statement succeeded. */
#include "common/err.h"
#include "proto/session.pb-c.h"
#include "rpc/rpc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GATEWAY 1
#define WINDOW  (1u << 20) /* items: as good as unlimited credit */

typedef struct state {
    rpc_node *node;
    const char *addr, *sql;
    uint64_t session_id;
    atomic_int opened, done;
    int code;
    char msg[256];
    unsigned long long rows;
} state;

static state g;

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls a flag the loop thread sets; the timeout is a hang guard only. */
static int wait_flag(atomic_int *f)
{
    for (int i = 0; i < 60000 && !atomic_load(f); i++) pause_ms(10);
    return atomic_load(f) ? 0 : -1;
}

static void on_open(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    (void)arg;
    Meridian__Session__OpenReply *r =
        code ? NULL : meridian__session__open_reply__unpack(NULL, len, p);
    if (r && !(r->error && r->error->code)) g.session_id = r->session_id;
    if (!g.session_id)
        snprintf(g.msg, sizeof(g.msg), "open: %s",
                 code            ? msg
                 : r && r->error ? r->error->message
                                 : "bad reply");
    if (r) meridian__session__open_reply__free_unpacked(r, NULL);
    atomic_store(&g.opened, 1);
}

static int on_item(void *arg, const uint8_t *p, size_t len)
{
    (void)arg;
    Meridian__Session__RowBatch *b = meridian__session__row_batch__unpack(NULL, len, p);
    if (b) {
        if (!g.rows) {
            printf("first\n");
            fflush(stdout);
        }
        g.rows += b->n_rows;
        meridian__session__row_batch__free_unpacked(b, NULL);
    }
    return 1;
}

static void on_end(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    g.code = code;
    if (code) snprintf(g.msg, sizeof(g.msg), "%s", msg ? msg : "");
    atomic_store(&g.done, 1);
}

static void start_open(void *arg)
{
    (void)arg;
    Meridian__Session__OpenRequest req = MERIDIAN__SESSION__OPEN_REQUEST__INIT;
    Meridian__Session__Settings st = MERIDIAN__SESSION__SETTINGS__INIT;
    uint8_t buf[256];
    req.protocol_version = 1;
    req.cluster_id = "";
    req.user = "root";
    req.settings = &st;
    size_t n = meridian__session__open_request__pack(&req, buf);
    rpc_node_add_gateway(g.node, GATEWAY, g.addr);
    if (rpc_node_call(g.node, GATEWAY, "session.open", buf, n, 0, on_open, NULL, NULL)) {
        snprintf(g.msg, sizeof(g.msg), "open: cannot call");
        atomic_store(&g.opened, 1);
    }
}

static void start_exec(void *arg)
{
    (void)arg;
    Meridian__Session__ExecRequest req = MERIDIAN__SESSION__EXEC_REQUEST__INIT;
    req.session_id = g.session_id;
    req.seq = 1;
    req.sql = (char *)g.sql;
    size_t n = meridian__session__exec_request__get_packed_size(&req);
    uint8_t *buf = malloc(n);
    if (!buf) abort();
    meridian__session__exec_request__pack(&req, buf);
    if (rpc_node_call_stream(g.node, GATEWAY, "session.exec", buf, n, 0, WINDOW, on_item, on_end,
                             NULL, NULL))
        on_end(NULL, MERR_INTERNAL, "cannot call", NULL, 0);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: greedy_reader HOST:PORT SQL\n");
        return 2;
    }
    g.addr = argv[1];
    g.sql = argv[2];
    rpc_config cfg;
    merr e = {0};
    rpc_config_defaults(&cfg);
    cfg.stream_window = WINDOW;
    if (rpc_node_start(&cfg, &g.node, &e)) {
        fprintf(stderr, "greedy_reader: %s\n", merr_msg(&e));
        return 2;
    }
    int rc = 1;
    rpc_node_run_sync(g.node, start_open, NULL);
    if (wait_flag(&g.opened) || !g.session_id) {
        fprintf(stderr, "greedy_reader: %s\n", g.msg[0] ? g.msg : "no session");
        goto out;
    }
    rpc_node_run_sync(g.node, start_exec, NULL);
    if (wait_flag(&g.done)) {
        fprintf(stderr, "greedy_reader: no end of stream\n");
        goto out;
    }
    printf("done rows=%llu code=%d msg=%s\n", g.rows, g.code, g.msg);
    rc = g.code ? 1 : 0;
out:
    rpc_node_stop(g.node);
    return rc;
}
