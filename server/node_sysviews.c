/* The cluster views of a node's SQL sessions (node_sysviews.h).
 *
 * Nodes and ranges: the node asks itself for its address book (node.Status),
 * then every node in it for its status or its replicas (node.Status,
 * node.Ranges), over the same rpc `meridian node status` and `debug ranges`
 * use, so the views and the tools show one truth. A node that does not
 * answer is listed as unreachable with NULL counts; its replicas are seen
 * through the other replicas of their ranges. When the cluster gets a range
 * directory, the ranges callback reads it instead.
 *
 * Sessions: this node's SQL sessions (the executor's list). Transactions:
 * every node's, asked by node.Transactions (each node answers with those its
 * transaction service knows, the ranges it leads, read on the loop thread
 * that owns them), so any gateway sees the whole cluster's. Placement policies: pd.Policy calls, as
 * `meridian debug policy` makes them. */
#include "server/node_sysviews.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/cli_rpc.h"
#include "server/node_int.h"
#include "server/pbreply.h"
#include "server/policy_client.h"
#include "server/txn_table.h"

#define ASK_NS     (3 * MTIME_S)
#define MAX_NODES  64
#define MAX_RANGES 4096
#define POLICY_NS  (15 * MTIME_S) /* range 1 may be moving its lease */

static Meridian__Node__StatusResponse *status_of(node *n, const char *addr, merr *e)
{
    return (Meridian__Node__StatusResponse *)cli_rpc_ask(
        addr, n->cfg.certs_dir, "node.Status", &meridian__node__status_response__descriptor, ASK_NS,
        e);
}

/* This node's address book: ids and addresses (itself alone before it has
 * peers). */
typedef struct book {
    size_t n;
    uint64_t id[MAX_NODES];
    char addr[MAX_NODES][128];
} book;

static int address_book(node *n, book *b, merr *e)
{
    Meridian__Node__StatusResponse *st = status_of(n, n->rpc_addr, e);
    if (!st) return e->code ? e->code : MERR_UNAVAILABLE;
    b->n = 0;
    for (size_t i = 0; i < st->n_peers && b->n < MAX_NODES; i++, b->n++) {
        b->id[b->n] = st->peers[i]->node_id;
        snprintf(b->addr[b->n], sizeof(b->addr[0]), "%s", st->peers[i]->address);
    }
    if (b->n == 0) {
        b->id[0] = st->node_id;
        snprintf(b->addr[0], sizeof(b->addr[0]), "%s", n->rpc_addr);
        b->n = 1;
    }
    meridian__node__status_response__free_unpacked(st, NULL);
    return 0;
}

static int nodes(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    node *n = ctx;
    book b;
    int rc = address_book(n, &b, e);
    for (size_t i = 0; i < b.n && !rc; i++) {
        merr pe = {0};
        Meridian__Node__StatusResponse *s = status_of(n, b.addr[i], &pe);
        sql_cluster_node row = {.node_id = b.id[i], .address = b.addr[i], .state = "unreachable"};
        if (s) {
            row.region = s->locality ? s->locality->region : NULL;
            row.zone = s->locality ? s->locality->zone : NULL;
            row.state = s->state;
            row.has_stats = 1;
            row.ranges = s->replicas;
            row.leases = s->leases;
            row.uptime_s = s->uptime_seconds;
            /* Nodes that predate the clock fields send neither. */
            row.clock_source = s->clock_source && s->clock_source[0] ? s->clock_source : NULL;
            row.has_epsilon = row.clock_source && s->clock_epsilon_ns >= 0;
            row.clock_epsilon_us = s->clock_epsilon_ns / 1000;
        }
        rc = emit(sink, &row);
        if (s) meridian__node__status_response__free_unpacked(s, NULL);
    }
    return rc;
}

/* "1,2,3" with learners suffixed L. */
static void replicas_text(const Meridian__Meta__RangeDescriptor *d, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t r = 0; r < d->n_replicas && o < cap; r++)
        o += (size_t)snprintf(
            out + o, cap - o, "%s%" PRIu64 "%s", r ? "," : "", d->replicas[r]->node_id,
            d->replicas[r]->type == MERIDIAN__META__REPLICA_TYPE__LEARNER ? "L" : "");
}

static int ranges(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    node *n = ctx;
    book b;
    int rc = address_book(n, &b, e);
    if (rc) return rc;
    Meridian__Node__RangesResponse *per[MAX_NODES] = {0};
    for (size_t i = 0; i < b.n; i++) {
        merr pe = {0};
        per[i] = (Meridian__Node__RangesResponse *)cli_rpc_ask(
            b.addr[i], n->cfg.certs_dir, "node.Ranges",
            &meridian__node__ranges_response__descriptor, ASK_NS, &pe);
    }
    /* Every range id any node reports, once, in the order first seen. */
    uint64_t *ids = calloc(MAX_RANGES, sizeof(*ids));
    size_t nids = 0;
    if (!ids) rc = merr_set(e, MERR_NOMEM, "out of memory");
    for (size_t i = 0; i < b.n && !rc; i++)
        for (size_t j = 0; per[i] && j < per[i]->n_ranges; j++) {
            uint64_t id = per[i]->ranges[j]->descriptor->range_id;
            size_t k = 0;
            while (k < nids && ids[k] != id) k++;
            if (k == nids && nids < MAX_RANGES) ids[nids++] = id;
        }
    for (size_t k = 0; k < nids && !rc; k++) {
        /* The leaseholder's replica knows best; else the furthest applied. */
        const Meridian__Node__RangeInfo *best = NULL;
        uint64_t lease = 0;
        for (size_t i = 0; i < b.n; i++)
            for (size_t j = 0; per[i] && j < per[i]->n_ranges; j++) {
                const Meridian__Node__RangeInfo *in = per[i]->ranges[j];
                if (in->descriptor->range_id != ids[k]) continue;
                if (in->leaseholder) lease = per[i]->node_id;
                if (!best || (in->leaseholder && !(best->leaseholder)) ||
                    (!best->leaseholder && in->applied_slot > best->applied_slot))
                    best = in;
            }
        const Meridian__Meta__RangeDescriptor *d = best->descriptor;
        char reps[256];
        replicas_text(d, reps, sizeof(reps));
        sql_cluster_range row = {
            .range_id = d->range_id,
            .start = d->start_key.data,
            .start_len = d->start_key.len,
            .end = d->end_key.data,
            .end_len = d->end_key.len,
            .generation = d->generation,
            .replicas = reps,
            .leader_node = lease,
            .keys = best->live_keys,
            .bytes = best->live_bytes,
            .applied = best->applied_slot,
        };
        rc = emit(sink, &row);
    }
    free(ids);
    for (size_t i = 0; i < b.n; i++)
        if (per[i]) meridian__node__ranges_response__free_unpacked(per[i], NULL);
    return rc;
}

static int sessions(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    node *n = ctx;
    int rc = session_exec_sql_sessions(&n->sql_cfg, n->store.node_id, emit, sink);
    if (rc == MERR_NOMEM) merr_set(e, rc, "out of memory");
    return rc;
}

/* A copy of the transaction table, taken on the loop. */
typedef struct txn_copy {
    node *n;
    sql_cluster_txn *rows;
    size_t nrows;
    int rc;
} txn_copy;

static const char *const tx_state_names[] = {"active", "committing", "committed", "aborted"};

static void copy_txns(void *arg)
{
    txn_copy *c = arg;
    if (!c->n->txn) return;
    int64_t mono = mtime_mono_ns(), real_us = mtime_real_ns() / 1000;
    size_t cap = 0;
    for (tx_range *rg = c->n->txn->ranges; rg; rg = rg->next)
        for (size_t i = 0; i < TX_BUCKETS; i++)
            for (tx_txn *t = rg->b[i]; t; t = t->next) {
                if (c->nrows == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    sql_cluster_txn *p = realloc(c->rows, nc * sizeof(*p));
                    if (!p) {
                        c->rc = MERR_NOMEM;
                        return;
                    }
                    c->rows = p;
                    cap = nc;
                }
                /* The priority is the first attempt's start (µs << 12). */
                int64_t start_us = (int64_t)(t->prio >> 12);
                c->rows[c->nrows++] = (sql_cluster_txn){
                    .txn_id = t->id,
                    .node_id = c->n->store.node_id,
                    .range_id = rg->range_id,
                    .priority = t->prio,
                    .state = tx_state_names[t->state],
                    .waiting = t->pk != NULL,
                    .age_ms = start_us && real_us > start_us ? (real_us - start_us) / 1000 : 0,
                    .idle_ms = (mono - t->last_ns) / MTIME_MS,
                };
            }
}

/* node.Transactions: this node's transaction table (on the loop). */
static void on_transactions(void *arg, rpc_req *req)
{
    txn_copy c = {.n = arg};
    copy_txns(&c);
    Meridian__Node__TransactionsResponse resp = MERIDIAN__NODE__TRANSACTIONS_RESPONSE__INIT;
    Meridian__Node__TxnInfo *infos = calloc(c.nrows ? c.nrows : 1, sizeof(*infos));
    Meridian__Node__TxnInfo **ip = calloc(c.nrows ? c.nrows : 1, sizeof(*ip));
    if (c.rc || !infos || !ip) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        goto out;
    }
    for (size_t i = 0; i < c.nrows; i++) {
        const sql_cluster_txn *t = &c.rows[i];
        meridian__node__txn_info__init(&infos[i]);
        infos[i].txn_id = t->txn_id;
        infos[i].range_id = t->range_id;
        infos[i].priority = t->priority;
        infos[i].state = (char *)t->state;
        infos[i].waiting = t->waiting != 0;
        infos[i].age_ms = t->age_ms;
        infos[i].idle_ms = t->idle_ms;
        ip[i] = &infos[i];
    }
    resp.node_id = c.n->store.node_id;
    resp.txns = ip;
    resp.n_txns = c.nrows;
    pb_reply(req, &resp.base);
out:
    free(infos);
    free(ip);
    free(c.rows);
}

void node_sysviews_register(node *n)
{
    rpc_node_handle(n->rpc, "node.Transactions", on_transactions, n);
}

/* Every node's transactions; a node that does not answer is left out (its
 * ranges' leases move to nodes that do). */
static int transactions(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    node *n = ctx;
    book b;
    int rc = address_book(n, &b, e);
    for (size_t i = 0; i < b.n && !rc; i++) {
        merr pe = {0};
        Meridian__Node__TransactionsResponse *r =
            (Meridian__Node__TransactionsResponse *)cli_rpc_ask(
                b.addr[i], n->cfg.certs_dir, "node.Transactions",
                &meridian__node__transactions_response__descriptor, ASK_NS, &pe);
        for (size_t k = 0; r && k < r->n_txns && !rc; k++) {
            const Meridian__Node__TxnInfo *t = r->txns[k];
            sql_cluster_txn row = {.txn_id = t->txn_id,
                                   .node_id = r->node_id,
                                   .range_id = t->range_id,
                                   .priority = t->priority,
                                   .state = t->state,
                                   .waiting = t->waiting,
                                   .age_ms = t->age_ms,
                                   .idle_ms = t->idle_ms};
            rc = emit(sink, &row);
        }
        if (r) meridian__node__transactions_response__free_unpacked(r, NULL);
    }
    return rc;
}

/* ---- placement policies: pd.Policy at range 1's leaseholder, reached
 * from this node (hints followed) ---- */

static int policies(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    node *n = ctx;
    Meridian__Pd__PolicyResponse *r;
    int rc =
        policy_client_call(n->rpc_addr, n->cfg.certs_dir, POLICY_NS, "list", NULL, NULL, &r, e);
    for (size_t i = 0; !rc && i < r->n_policies; i++) {
        const Meridian__Pd__Policy *p = r->policies[i];
        char regions[512] = "";
        for (size_t k = 0; k < p->n_regions; k++)
            snprintf(regions + strlen(regions), sizeof(regions) - strlen(regions), "%s%s",
                     k ? "," : "", p->regions[k]);
        sql_cluster_policy row = {.name = p->name,
                                  .start = p->start.data,
                                  .start_len = p->start.len,
                                  .end = p->end.data,
                                  .end_len = p->end.len,
                                  .replicas = p->replicas,
                                  .regions = regions,
                                  .lead_region = p->lead_region,
                                  .survive = p->survive};
        rc = emit(sink, &row);
    }
    if (!rc) protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

static int policy_set(void *ctx, const sql_cluster_policy *p, char *warn, size_t warn_cap, merr *e)
{
    node *n = ctx;
    Meridian__Pd__PolicyResponse *r;
    int rc = policy_client_call(n->rpc_addr, n->cfg.certs_dir, POLICY_NS, "set", p, NULL, &r, e);
    if (rc) return rc;
    snprintf(warn, warn_cap, "%s", r->warning ? r->warning : "");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

static int policy_rm(void *ctx, const char *name, merr *e)
{
    node *n = ctx;
    Meridian__Pd__PolicyResponse *r;
    int rc = policy_client_call(n->rpc_addr, n->cfg.certs_dir, POLICY_NS, "rm", NULL, name, &r, e);
    if (!rc) protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

const sql_cluster_ops node_sysviews_ops = {
    .nodes = nodes,
    .ranges = ranges,
    .sessions = sessions,
    .transactions = transactions,
    .policies = policies,
    .policy_set = policy_set,
    .policy_rm = policy_rm,
};
