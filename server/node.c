/* The node's lifecycle, admin endpoints and node-level rpc methods (see
 * node.h). */
#include "server/node.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mtime.h"
#include "common/version.h"
#include "proto/node.pb-c.h"
#include "rpc/rpc.h"
#include "rpc/tls.h"
#include "server/admin_http.h"
#include "server/store_dir.h"
#include "server/kv_service.h"
#include "server/pbreply.h"
#include "server/node_int.h"
#include "server/txn_client.h"
#include "server/node_moves.h"
#include "server/node_ping.h"
#include "server/node_sql.h"
#include "server/node_sysviews.h"
#include "server/range_desc.h"
#include "server/replica.h"
#include "server/txn_service.h"

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

/* ---- admin HTTP (loop thread) ---- */

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
    if (n->state == NODE_SERVING && n->store.has_identity) {
        mbuf_printf(&r->body, "ready\n");
        return;
    }
    r->status = 503;
    mbuf_printf(&r->body, "not ready: %s\n",
                n->state != NODE_SERVING ? node_state_name(n->state)
                                         : "cluster not initialised (run meridian init)");
}

static void on_page(void *arg, const char *path, const char *query, admin_response *r)
{
    node *n = arg;
    (void)path;
    (void)query;
    n->http_requests++;
    r->content_type = "text/html; charset=utf-8";
    node_page_render(n, &r->body);
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
    rpc_metrics_render(n->rpc, &r->body);
    if (n->host_open) host_metrics_render(&n->host, &r->body);
    if (n->txn) txn_service_metrics_render(n->txn, &r->body);
    if (n->sql_svc) session_service_metrics_render(n->sql_svc, &r->body);
    mbuf_printf(&r->body,
                "# HELP meridian_sql_local_kv_calls_total Requests of this node's SQL sessions "
                "to this node's own ranges, served without a socket.\n"
                "# TYPE meridian_sql_local_kv_calls_total counter\n"
                "meridian_sql_local_kv_calls_total %" PRIu64 "\n",
                txn_client_local_calls_total());
    node_ranges_metrics_render(n, &r->body);
    node_merge_metrics_render(n, &r->body);
    node_pd_metrics_render(n, &r->body);
    node_moves_metrics_render(n, &r->body);
}

/* ---- node-level rpc methods (loop thread) ---- */

/* node.Init: makes this node the first node of a new cluster. Refused once
 * the store has an identity, so a second init can never fork a cluster. */
static void on_init(void *arg, rpc_req *req)
{
    node *n = arg;
    merr e = {0};
    if (n->store.has_identity) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "cluster already initialised (cluster %s, this is node %" PRIu64 ")",
                 n->store.cluster_id, n->store.node_id);
        rpc_reply(req, MERR_EXISTS, msg, NULL, 0);
        return;
    }
    char cid[STORE_CLUSTER_ID_MAX];
    if (node_bootstrap(n, cid, &e)) {
        MLOG_E("node", "init failed", "error=\"%s\"", e.msg);
        rpc_reply(req, e.code, e.msg, NULL, 0);
        return;
    }
    Meridian__Node__InitResponse resp = MERIDIAN__NODE__INIT_RESPONSE__INIT;
    resp.cluster_id = cid;
    resp.node_id = 1;
    pb_reply(req, &resp.base);
}

static void on_status(void *arg, rpc_req *req)
{
    node *n = arg;
    Meridian__Meta__Locality loc = MERIDIAN__META__LOCALITY__INIT;
    loc.region = n->cfg.loc.region;
    loc.zone = n->cfg.loc.zone;
    Meridian__Node__StatusResponse resp = MERIDIAN__NODE__STATUS_RESPONSE__INIT;
    resp.node_id = n->store.node_id;
    resp.cluster_id = n->store.has_identity ? n->store.cluster_id : "";
    resp.address = n->rpc_addr;
    resp.locality = &loc;
    resp.state = (char *)node_state_name(n->state);
    resp.version = MERIDIAN_VERSION;
    resp.revision = (char *)meridian_git_revision();
    resp.uptime_seconds = (double)(mtime_mono_ns() - n->started_mono_ns) / 1e9;
    Meridian__Node__Peer ps[HOST_MAX_PEERS], *pp[HOST_MAX_PEERS];
    if (n->host_open) {
        resp.replicas = (uint32_t)n->host.nreps;
        for (size_t i = 0; i < n->host.nreps; i++)
            resp.leases += (uint32_t)replica_is_leaseholder(n->host.reps[i]);
        for (size_t i = 0; i < n->host.npeers; i++) {
            meridian__node__peer__init(&ps[i]);
            ps[i].node_id = n->host.peers[i].id;
            ps[i].address = n->host.peers[i].addr;
            pp[i] = &ps[i];
        }
        resp.peers = pp;
        resp.n_peers = n->host.npeers;
    }
    resp.clock_source = (char *)(n->cfg.clock_source ? n->cfg.clock_source : "");
    tt_interval tt;
    merr ce = {0};
    resp.clock_epsilon_ns = n->host_open && host_now(&n->host, &tt, &ce) == 0 ? tt.epsilon_ns : -1;
    pb_reply(req, &resp.base);
}

/* node.Ranges: this node's replicas, for `meridian debug ranges`. */
static void on_ranges(void *arg, rpc_req *req)
{
    node *n = arg;
    Meridian__Node__RangesResponse resp = MERIDIAN__NODE__RANGES_RESPONSE__INIT;
    resp.node_id = n->store.node_id;
    size_t nr = n->host_open ? n->host.nreps : 0;
    int64_t now = mtime_mono_ns();
    Meridian__Node__RangeInfo *infos = calloc(nr ? nr : 1, sizeof(*infos));
    Meridian__Node__RangeInfo **ip = calloc(nr ? nr : 1, sizeof(*ip));
    range_desc_pb *ds = calloc(nr ? nr : 1, sizeof(*ds));
    if (!infos || !ip || !ds) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        goto out;
    }
    for (size_t i = 0; i < nr; i++) {
        replica *r = n->host.reps[i];
        paxos_group *g = replica_group(r);
        range_meta m;
        memset(&m, 0, sizeof(m));
        range_get_meta(replica_store(r), &m);
        range_desc_fill(r, &ds[i]);
        Meridian__Meta__RangeDescriptor *d = &ds[i].d;
        Meridian__Node__RangeInfo *in = &infos[i];
        meridian__node__range_info__init(in);
        in->descriptor = d;
        in->leaseholder = replica_is_leaseholder(r);
        in->applied_slot = paxos_get_applied(g);
        in->chosen_slot = paxos_get_chosen(g);
        in->live_bytes = m.stats.live_bytes;
        in->live_keys = m.stats.live_keys;
        in->versions = m.stats.versions;
        in->role = (char *)paxos_role_name(paxos_get_role(g));
        replica_load_peek(r, now, &in->reads_per_s, &in->writes_per_s);
        ip[i] = in;
    }
    resp.ranges = ip;
    resp.n_ranges = nr;
    Meridian__Meta__Locality loc = MERIDIAN__META__LOCALITY__INIT;
    loc.region = n->cfg.loc.region;
    loc.zone = n->cfg.loc.zone;
    resp.locality = &loc;
    pb_reply(req, &resp.base);
out:
    free(infos);
    free(ip);
    free(ds);
}

/* ---- the admin HTTP token ---- */

/* Secure nodes answer /metrics and the status page only with the bearer
 * token of CERTS_DIR/metrics.token (docs/security.md): a file Prometheus can
 * read (credentials_file), made by `meridian cert create-node`. A missing
 * file locks those routes instead of opening them. */
static void read_metrics_token(const node *n, char *tok, size_t cap, char *path, size_t pcap)
{
    mbuf b = MBUF_INIT;
    merr e = {0};
    snprintf(path, pcap, "%s/%s", n->cfg.certs_dir, "metrics.token");
    tok[0] = 0;
    if (mfs_read_all(path, cap - 1, &b, &e) == 0) {
        size_t len = b.len;
        while (len &&
               (b.data[len - 1] == '\n' || b.data[len - 1] == '\r' || b.data[len - 1] == ' '))
            len--;
        memcpy(tok, b.data, len);
        tok[len] = 0;
    } else {
        MLOG_W("node", "no metrics token: /metrics and / refuse every request",
               "file=%s err=\"%s\"", path, e.msg);
    }
    mbuf_free(&b);
}

static void set_metrics_token(void *arg)
{
    node *n = arg;
    char tok[128], path[PATH_MAX];
    if (!n->http) return;
    read_metrics_token(n, tok, sizeof(tok), path, sizeof(path));
    admin_http_require_token(n->http, tok, path);
    memset(tok, 0, sizeof(tok));
    /* HTTPS with the node certificate, so the token never travels in clear;
     * reread with it on SIGHUP (a failed reload keeps the old files). */
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    tls_ctx *ctx = NULL;
    merr e = {0};
    if (tls_certs_paths(n->cfg.certs_dir, NULL, ca, cert, key, &e) ||
        tls_ctx_new(ca, cert, key, &ctx, &e))
        MLOG_W("node", "admin HTTPS: cannot load the node certificate", "err=\"%s\"", e.msg);
    else
        admin_http_use_tls(n->http, ctx);
}

/* ---- start and stop ---- */

static void start_on_loop(void *arg)
{
    node *n = arg;
    merr *e = &n->start_err;
    if (n->cfg.http_listen) {
        if (admin_http_start(rpc_node_loop(n->rpc), n->cfg.http_listen, &n->http, e)) return;
        admin_http_route(n->http, "/health", on_health, n);
        admin_http_route(n->http, "/ready", on_ready, n);
        admin_http_route_private(n->http, "/metrics", on_metrics, n);
        admin_http_route_private(n->http, "/", on_page, n);
        if (n->cfg.certs_dir) set_metrics_token(n);
        admin_http_addr(n->http, n->http_addr, sizeof(n->http_addr));
    }
    host_config hc = {.store_dir = n->cfg.store, .node_id = n->store.node_id};
    tt_config_default(&hc.clock);
    tt_chrony_config_default(&hc.chrony);
    hc.chrony.port = (int)n->cfg.chrony_port;
    hc.chrony.socket_path = n->cfg.chrony_socket;
    if (strcmp(n->cfg.clock_source, "static") == 0) {
        hc.clock.source = TT_SOURCE_STATIC;
        hc.clock.static_uncertainty_ns = n->cfg.static_uncertainty_ns;
    } else if (strcmp(n->cfg.clock_source, "kernel") == 0) {
        hc.clock.source = TT_SOURCE_KERNEL;
    }
    hc.clock.max_uncertainty_ns = n->cfg.max_clock_uncertainty_ns;
    hc.clock.skew_ns = n->cfg.clock_skew_ns;
    hc.testing_disk_faults = n->cfg.testing_disk_faults;
    if (host_open(&n->host, n->rpc, &hc, e)) return;
    n->host_open = 1;
    kv_service_register(n->rpc, &n->host);
    if (txn_service_start(n->rpc, &n->host, 0, &n->txn, e)) return;
    rpc_node_handle(n->rpc, "node.Init", on_init, n);
    rpc_node_handle(n->rpc, "node.Status", on_status, n);
    rpc_node_handle(n->rpc, "node.Ranges", on_ranges, n);
    node_sysviews_register(n);
    node_ping_register(n->rpc);
    if (node_cluster_start(n, e)) return;
    if (node_ranges_start(n, e)) return;
    if (node_merge_start(n, e)) return;
    node_lease_register(n);
    if (node_pd_start(n, e)) return;
    if (node_moves_start(n, e)) return;
    n->state = NODE_SERVING;
}

typedef struct drain_ctx {
    node *n;
    int busy;
} drain_ctx;

/* Stops taking new work (DRAINING answers /health with 503) and hands every
 * lease this node holds to another voter. */
static void drain_begin(void *arg)
{
    drain_ctx *d = arg;
    node *n = d->n;
    n->state = NODE_DRAINING;
    if (n->host_open)
        for (size_t i = 0; i < n->host.nreps; i++) replica_hand_off(n->host.reps[i]);
}

static void drain_check(void *arg)
{
    drain_ctx *d = arg;
    node *n = d->n;
    d->busy = 0;
    if (!n->host_open) return;
    for (size_t i = 0; i < n->host.nreps; i++) {
        if (replica_draining(n->host.reps[i])) {
            d->busy = 1;
            replica_hand_off(n->host.reps[i]); /* again: a transfer can fail */
        }
    }
}

static void stop_on_loop(void *arg)
{
    node *n = arg;
    n->state = NODE_DRAINING;
    if (n->http) admin_http_close(n->http); /* its handles finish closing in rpc_node_stop */
    n->http = NULL;
    node_cluster_stop(n);
    node_pd_stop(n);
    node_merge_stop(n);
    node_moves_stop(n);
    node_ranges_stop(n);
    txn_service_stop(n->txn);
    n->txn = NULL;
    if (n->host_open) host_close(&n->host);
    n->host_open = 0;
}

/* The bound rpc address: the --listen host with the port the kernel chose. */
static void format_bound(const struct sockaddr_storage *listen, int port, char *out, size_t cap)
{
    struct sockaddr_storage ss = *listen;
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    maddr_format((struct sockaddr *)&ss, out, cap);
}

static int write_listen_addrs(node *n, merr *e)
{
    char text[256], path[PATH_MAX + 32];
    int len = snprintf(text, sizeof(text), "rpc=%s\n", n->rpc_addr);
    if (n->http_addr[0])
        len += snprintf(text + len, sizeof(text) - (size_t)len, "http=%s\n", n->http_addr);
    snprintf(path, sizeof(path), "%s/listen-addrs", n->store.path);
    return mfs_write_atomic(path, text, (size_t)len, e);
}

int node_start(const node_config *cfg, node **out, merr *e)
{
    node *n = calloc(1, sizeof(*n));
    if (!n) return merr_set(e, MERR_NOMEM, "out of memory");
    n->cfg = *cfg;
    n->state = NODE_STARTING;
    n->started_mono_ns = mtime_mono_ns();
    n->store.lock_fd = -1;
    int rc = store_dir_open(cfg->store, &n->store, e);
    if (rc) goto err;

    rpc_config rc_cfg;
    rpc_config_defaults(&rc_cfg);
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    if (cfg->certs_dir) {
        if ((rc = tls_certs_paths(cfg->certs_dir, NULL, ca, cert, key, e))) goto err;
        rc_cfg.tls_ca = ca, rc_cfg.tls_cert = cert, rc_cfg.tls_key = key;
    }
    rc_cfg.node_id = n->store.node_id;
    rc_cfg.cluster_id = n->store.has_identity ? n->store.cluster_id : "";
    rc_cfg.listen_addr = cfg->listen;
    rc_cfg.locality = cfg->locality;
    rc_cfg.fault_admin = cfg->testing_fault_admin;
    rc_cfg.max_inbound = (uint32_t)cfg->max_connections;
    rc_cfg.stream_queue_max = (size_t)cfg->max_result_buffer;
    if ((rc = rpc_node_start(&rc_cfg, &n->rpc, e))) goto err;
    format_bound(&cfg->listen_addr, rpc_node_port(n->rpc), n->rpc_addr, sizeof(n->rpc_addr));

    rpc_node_run_sync(n->rpc, start_on_loop, n);
    if (n->start_err.code) {
        *e = n->start_err;
        rc = e->code;
        goto err;
    }
    if ((rc = node_sql_start(n, e))) goto err;
    if ((rc = write_listen_addrs(n, e))) goto err;
    MLOG_I("node", "node started", "store=%s rpc=%s http=%s node_id=%" PRIu64 " cluster=%s pid=%d",
           cfg->store, n->rpc_addr, n->http_addr[0] ? n->http_addr : "-", n->store.node_id,
           n->store.has_identity ? n->store.cluster_id : "-", (int)getpid());
    *out = n;
    return 0;
err:
    if (n->rpc) {
        node_sql_stop(n);
        rpc_node_run_sync(n->rpc, stop_on_loop, n);
        rpc_node_stop(n->rpc);
    }
    store_dir_close(&n->store);
    free(n);
    return rc;
}

int node_reload_certs(node *n, merr *e)
{
    int rc = rpc_node_reload_tls(n->rpc, e);
    if (!rc && n->cfg.certs_dir) rpc_node_run_sync(n->rpc, set_metrics_token, n);
    return rc;
}

void node_stop(node *n)
{
    if (!n) return;
    MLOG_I("node", "shutting down: finishing writes, handing off leases", "%s", "");
    /* In-flight writes finish and leases move before the node goes; bounded,
     * because a node whose peers are gone must still be able to stop. */
    drain_ctx d = {n, 1};
    rpc_node_run_sync(n->rpc, drain_begin, &d);
    int64_t until = mtime_mono_ns() + 5 * MTIME_S;
    while (mtime_mono_ns() < until) {
        rpc_node_run_sync(n->rpc, drain_check, &d);
        if (!d.busy) break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MLOG_I("node", d.busy ? "drain timed out: stopping anyway" : "drained", "%s", "");
    node_sql_stop(n); /* sessions end (running statements interrupted) */
    rpc_node_run_sync(n->rpc, stop_on_loop, n);
    rpc_node_stop(n->rpc); /* closes connections; pending calls end with MERR_CLOSED */
    n->state = NODE_STOPPED;
    /* No stale addresses for scripts to find once the node is gone. */
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/listen-addrs", n->store.path);
    unlink(path);
    store_dir_close(&n->store);
    MLOG_I("node", "shutdown complete", "%s", "");
    free(n);
}
