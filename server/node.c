/* The node's lifecycle and admin endpoints (see node.h). */
#include "server/node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mtime.h"
#include "common/version.h"
#include "server/admin_http.h"
#include "server/store_dir.h"

struct node {
    node_config cfg;
    uv_loop_t *loop;
    node_state state;
    store_dir store;
    admin_http *http;
    int64_t started_mono_ns;
    void (*stop_done)(void *);
    void *stop_arg;
    uv_idle_t finisher; /* runs the stop callback once handles have closed */
    uint64_t http_requests;
};

const char *node_state_name(node_state s)
{
    switch (s) {
    case NODE_STARTING: return "starting";
    case NODE_SERVING: return "serving";
    case NODE_DRAINING: return "draining";
    case NODE_STOPPED: return "stopped";
    }
    return "?";
}

node_state node_get_state(const node *n)
{
    return n->state;
}

static void on_health(void *arg, const char *path, const char *query, admin_response *r)
{
    node *n = arg;
    (void)path;
    (void)query;
    n->http_requests++;
    if (n->state != NODE_SERVING) r->status = 503;
    mbuf_printf(&r->body, "%s\n", node_state_name(n->state));
}

static void on_ready(void *arg, const char *path, const char *query, admin_response *r)
{
    node *n = arg;
    (void)path;
    (void)query;
    n->http_requests++;
    /* Ready means able to serve data: serving and part of an initialised cluster. */
    if (n->state == NODE_SERVING && n->store.has_identity) {
        mbuf_printf(&r->body, "ready\n");
        return;
    }
    r->status = 503;
    mbuf_printf(&r->body, "not ready: %s\n",
                n->state != NODE_SERVING ? node_state_name(n->state)
                                         : "cluster not initialised (run meridian init)");
}

static void on_metrics(void *arg, const char *path, const char *query, admin_response *r)
{
    node *n = arg;
    (void)path;
    (void)query;
    n->http_requests++;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    double up = (double)(mtime_mono_ns() - n->started_mono_ns) / 1e9;
    mbuf_printf(&r->body,
                "# HELP meridian_build_info Build information.\n"
                "# TYPE meridian_build_info gauge\n"
                "meridian_build_info{version=\"%s\",revision=\"%s\"} 1\n"
                "# HELP meridian_uptime_seconds Seconds since the node started.\n"
                "# TYPE meridian_uptime_seconds gauge\n"
                "meridian_uptime_seconds %.3f\n"
                "# HELP meridian_node_id This node's id (0 before init).\n"
                "# TYPE meridian_node_id gauge\n"
                "meridian_node_id %" PRIu64 "\n"
                "# HELP meridian_admin_http_requests_total Admin HTTP requests served.\n"
                "# TYPE meridian_admin_http_requests_total counter\n"
                "meridian_admin_http_requests_total %" PRIu64 "\n",
                MERIDIAN_VERSION, meridian_git_revision(), up, n->store.node_id, n->http_requests);
}

static int write_listen_addrs(node *n, merr *e)
{
    char text[256], path[PATH_MAX + 32];
    int len = 0;
    if (n->http) {
        char addr[MADDR_STR_MAX];
        admin_http_addr(n->http, addr, sizeof(addr));
        len += snprintf(text + len, sizeof(text) - (size_t)len, "http=%s\n", addr);
    }
    snprintf(path, sizeof(path), "%s/listen-addrs", n->store.path);
    return mfs_write_atomic(path, text, (size_t)len, e);
}

int node_start(const node_config *cfg, uv_loop_t *loop, node **out, merr *e)
{
    node *n = calloc(1, sizeof(*n));
    if (!n) return merr_set(e, MERR_NOMEM, "out of memory");
    n->cfg = *cfg;
    n->loop = loop;
    n->state = NODE_STARTING;
    n->started_mono_ns = mtime_mono_ns();
    n->store.lock_fd = -1;
    int rc = store_dir_open(cfg->store, &n->store, e);
    if (rc) goto err;
    if (cfg->http_listen) {
        if ((rc = admin_http_start(loop, cfg->http_listen, &n->http, e))) goto err;
        admin_http_route(n->http, "/health", on_health, n);
        admin_http_route(n->http, "/ready", on_ready, n);
        admin_http_route(n->http, "/metrics", on_metrics, n);
    }
    if ((rc = write_listen_addrs(n, e))) goto err;
    n->state = NODE_SERVING;
    MLOG_I("node", "node started", "store=%s node_id=%" PRIu64 " cluster=%s pid=%d", cfg->store,
           n->store.node_id, n->store.has_identity ? n->store.cluster_id : "-", (int)getpid());
    *out = n;
    return 0;
err:
    if (n->http) admin_http_close(n->http);
    store_dir_close(&n->store);
    free(n);
    return rc;
}

static void on_finisher_closed(uv_handle_t *h)
{
    node *n = h->data;
    void (*done)(void *) = n->stop_done;
    void *arg = n->stop_arg;
    free(n);
    if (done) done(arg);
}

/* Runs once the loop has turned after node_stop: listeners are closed by
 * then, so the store lock can go and the node can be freed. */
static void on_finish(uv_idle_t *idle)
{
    node *n = idle->data;
    uv_idle_stop(idle);
    n->state = NODE_STOPPED;
    store_dir_close(&n->store);
    MLOG_I("node", "shutdown complete", "%s", "");
    uv_close((uv_handle_t *)idle, on_finisher_closed);
}

void node_stop(node *n, void (*done)(void *arg), void *arg)
{
    if (n->state == NODE_DRAINING || n->state == NODE_STOPPED) return;
    MLOG_I("node", "shutting down", "%s", "");
    n->state = NODE_DRAINING;
    n->stop_done = done;
    n->stop_arg = arg;
    if (n->http) admin_http_close(n->http);
    n->http = NULL;
    uv_idle_init(n->loop, &n->finisher);
    n->finisher.data = n;
    uv_idle_start(&n->finisher, on_finish);
}
