/* SQL on the node (node_sql.h): the KV factory and the session service's
 * lifecycle.
 *
 * No fake data paths: a node whose KV cannot be made refuses SQL sessions
 * with the reason (the session service stays registered so that clients get
 * that message instead of "connection refused" or an unknown method). The
 * in-memory KV exists only behind the --testing-sql-memory flag. */
#include "server/node_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "server/node_int.h"
#include "server/node_sysviews.h"
#include "server/session_exec_sql.h"
#include "server/txn_client.h"
#include "sql/kv_lock.h"
#include "sql/kv_mem.h"
#include "sql/session.h"

/* A transaction client per session: it is used by one thread at a time,
 * and each session runs on its own worker. */
static int txn_open(void *arg, void **kv, merr *e)
{
    node *n = arg;
    /* This node first; the others for ranges it holds no replica of (a
     * cluster larger than a range's group): the client asks them in turn
     * and follows the leaseholder hint the first one holding it gives. */
    char hosts[HOST_MAX_PEERS * 66 + 80];
    size_t l = (size_t)snprintf(hosts, sizeof(hosts), "%s", n->rpc_addr);
    if (l + 1 < sizeof(hosts) && host_peer_addrs(&n->host, hosts + l + 1, sizeof(hosts) - l - 1))
        hosts[l] = ',';
    int rc = txn_client_open(hosts, n->cfg.certs_dir, (txn_client **)kv, e);
    if (!rc) txn_client_set_write_limit(*kv, (size_t)n->cfg.max_session_memory);
    if (!rc) txn_client_set_local(*kv, n->rpc, n->rpc_addr);
    return rc;
}

static void txn_close(void *kv)
{
    txn_client_close(kv);
}

static void txn_cancel(void *kv, int on)
{
    if (on)
        txn_client_cancel(kv);
    else
        txn_client_clear_cancel(kv);
}

static void txn_deadline(void *kv, int64_t deadline_us)
{
    txn_client_set_deadline(kv, deadline_us);
}

static void txn_staleness(void *kv, uint64_t ms)
{
    /* Bounded staleness: the newest snapshot the nearest replica can serve
     * without waiting, at most ms old (docs/transactions.md). */
    (void)txn_client_set_read_mode(kv, ms ? TXN_CLIENT_READ_BOUNDED : TXN_CLIENT_READ_STRONG,
                                   ms * 1000, 0);
}

/* MERIDIAN_TESTING_BACKFILL_GATE=path: an online CREATE INDEX waits before
 * each backfill batch until path exists (at most 2 minutes, a hang guard),
 * so tests/sql/concurrency_test.sh can watch writers commit while the index
 * is WRITE_ONLY without racing the backfill. */
static int backfill_gate(void *arg)
{
    for (int i = 0; i < 6000 && access((const char *)arg, F_OK) != 0; i++)
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    return 0;
}

int node_sql_kv(node *n, const sql_kv_ops **ops, void **ctx, merr *e)
{
    const char *gate = getenv("MERIDIAN_TESTING_BACKFILL_GATE");
    if (gate && *gate) sql_ddl_set_backfill_hook(backfill_gate, (void *)gate);
    if (n->cfg.testing_sql_memory) {
        /* kv_mem is single-threaded and sessions run on their own threads:
         * the lock wrapper serializes the calls. */
        if (sql_kv_mem_open(&n->sql_mem)) return merr_set(e, MERR_NOMEM, "out of memory");
        int rc = sql_kv_lock_open(&sql_kv_mem_ops, n->sql_mem, &n->sql_lock, e);
        if (rc) return rc;
        *ops = &sql_kv_lock_ops;
        *ctx = n->sql_lock;
        return 0;
    }
    /* The cluster's transaction client (server/txn_client.h), one per
     * session, made on the session's worker at its first statement. */
    n->sql_cfg.kv_open = txn_open;
    n->sql_cfg.kv_close = txn_close;
    n->sql_cfg.kv_cancel = txn_cancel;
    n->sql_cfg.kv_deadline = txn_deadline;
    n->sql_cfg.kv_staleness = txn_staleness;
    *ops = txn_client_kv_ops();
    *ctx = n;
    return 0;
}

void node_sql_kv_close(node *n)
{
    sql_kv_lock_close(n->sql_lock);
    n->sql_lock = NULL;
    if (n->sql_mem) sql_kv_mem_close(n->sql_mem);
    n->sql_mem = NULL;
}

typedef struct reg_ctx {
    node *n;
    merr e;
} reg_ctx;

static void register_on_loop(void *arg)
{
    reg_ctx *r = arg;
    node *n = r->n;
    session_service_config sc;
    session_service_config_defaults(&sc);
    /* Lives in the node; written on the loop when the node joins, read on
     * the loop when a session opens. */
    sc.cluster_id = n->store.cluster_id;
    sc.secure = n->cfg.certs_dir != NULL;
    session_service_register(n->rpc, &n->sql_ex, &sc, &n->sql_svc, &r->e);
}

int node_sql_start(node *n, merr *e)
{
    merr why = {0};
    n->sql_cfg.ops = NULL;
    if (node_sql_kv(n, &n->sql_cfg.ops, &n->sql_cfg.kv_ctx, &why)) {
        n->sql_cfg.ops = NULL;
        n->sql_cfg.kv_open = NULL;
        n->sql_cfg.kv_close = NULL;
        n->sql_cfg.kv_cancel = NULL;
        node_sql_kv_close(n);
        memcpy(n->sql_cfg.refusal, why.msg, sizeof(n->sql_cfg.refusal));
        MLOG_W("node", "SQL sessions will be refused", "reason=\"%s\"", why.msg);
    }
    n->sql_cfg.cluster = &node_sysviews_ops;
    n->sql_cfg.cluster_ctx = n;
    n->sql_cfg.enforce_privileges = n->cfg.certs_dir != NULL;
    session_exec_sql(&n->sql_ex, &n->sql_cfg);
    reg_ctx r = {.n = n};
    rpc_node_run_sync(n->rpc, register_on_loop, &r);
    if (r.e.code) {
        *e = r.e;
        node_sql_kv_close(n);
        return e->code;
    }
    return 0;
}

void node_sql_stop(node *n)
{
    if (n->sql_svc) session_service_free(n->sql_svc);
    n->sql_svc = NULL;
    node_sql_kv_close(n);
}
