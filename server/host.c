/* The replica host: log store, clock, ticks and Paxos transport for all the
 * node's replicas (see host.h). */
#include "server/host.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/mtime.h"
#include "replication/paxos_codec.h"
#include "server/parked.h"
#include "server/put_stages.h"
#include "server/replica.h"
#include "timesvc/hlc_uv.h"
#include "timesvc/tt_uv.h"

#define MOD          "host"
#define PAXOS_METHOD "paxos.msg"

typedef struct host_done {
    uint64_t id;
    int status;
    struct host_done *next;
} host_done;

typedef struct host_inflight {
    uint64_t id;
    uint64_t range_id;
    uint64_t seq;
    int64_t t_submit; /* put_stages.h */
    struct host_inflight *next;
} host_inflight;

/* Commit-wait queue: one timer (a tt_waiter) for the earliest entry. */
typedef struct cw_entry {
    int64_t t_ns;
    replica_wait *w;
    struct cw_entry *next;
} cw_entry;

typedef struct host_priv {
    pthread_mutex_t mu;
    pthread_mutex_t peers_mu; /* the address book, for readers off the loop */
    tt_waiter waiter;
    int waiter_armed;
    int64_t armed_for;
    cw_entry *cw; /* sorted by t_ns */
    hlc_file_store hlc_fs;
    int hlc_fs_inited;
    hlc_store_ops hlc_ops;
    /* At close: the closers still using this memory (host_close itself,
     * the commit-wait waiter, the HLC keeper's save in flight, which writes
     * through hlc_fs); the last one frees it. */
    int close_refs;
} host_priv;

#define PRIV(h) ((host_priv *)(h)->done_mu)

/* ---- log store completions: I/O thread -> loop ---- */

static void on_logstore_done(void *arg, const logstore_done *done, size_t n)
{
    host *h = arg;
    host_priv *pv = PRIV(h);
    pthread_mutex_lock(&pv->mu);
    for (size_t i = 0; i < n; i++) {
        host_done *d = malloc(sizeof(*d));
        if (!d) continue; /* the replica then times out its writes; never crash here */
        d->id = done[i].id;
        d->status = done[i].status;
        d->next = NULL;
        if (h->done_tail)
            h->done_tail->next = d;
        else
            h->done_head = d;
        h->done_tail = d;
    }
    pthread_mutex_unlock(&pv->mu);
    uv_async_send(&h->ls_async);
}

/* --testing-disk-faults: the log store's writes fail with ENOSPC while the
 * flag file exists, as on a full disk (the Jepsen disk-full nemesis creates
 * and removes it). Syncs and truncates pass: the store's own ENOSPC path
 * cuts a failed round back, which needs them. */
static ssize_t disk_fault_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    host *h = ctx;
    if (access(h->disk_full_path, F_OK) == 0) {
        errno = ENOSPC;
        return -1;
    }
    return logstore_posix_io.pwrite(logstore_posix_io.ctx, fd, buf, n, off);
}

static int disk_fault_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    return logstore_posix_io.fdatasync(logstore_posix_io.ctx, fd);
}

static int disk_fault_fsync_dir(void *ctx, int fd)
{
    (void)ctx;
    return logstore_posix_io.fsync_dir(logstore_posix_io.ctx, fd);
}

static int disk_fault_ftruncate(void *ctx, int fd, off_t len)
{
    (void)ctx;
    return logstore_posix_io.ftruncate(logstore_posix_io.ctx, fd, len);
}

static void on_ls_async(uv_async_t *a)
{
    host *h = a->data;
    host_priv *pv = PRIV(h);
    pthread_mutex_lock(&pv->mu);
    host_done *list = h->done_head;
    h->done_head = h->done_tail = NULL;
    pthread_mutex_unlock(&pv->mu);
    while (list) {
        host_done *d = list;
        list = d->next;
        for (host_inflight **pp = &h->inflight; *pp; pp = &(*pp)->next) {
            if ((*pp)->id != d->id) continue;
            host_inflight *f = *pp;
            *pp = f->next;
            replica *r = host_find(h, f->range_id);
            h->persists++;
            stage_record(STAGE_PERSIST, f->t_submit);
            if (r) replica_persisted(r, f->seq, d->status);
            free(f);
            break;
        }
        free(d);
    }
}

uint64_t host_batch_id(host *h)
{
    return ++h->next_batch_id;
}

int host_persist(host *h, replica *r, logstore_batch *b, uint64_t id, uint64_t seq)
{
    host_inflight *f = malloc(sizeof(*f));
    if (!f) {
        logstore_batch_free(b);
        return MERR_NOMEM;
    }
    f->id = id;
    f->range_id = replica_id(r);
    f->seq = seq;
    f->t_submit = stage_now();
    f->next = h->inflight;
    h->inflight = f;
    int rc = logstore_submit(h->ls, b);
    if (rc) {
        h->inflight = f->next;
        free(f);
    }
    return rc;
}

/* ---- proposals held for one loop round ---- */

int host_flush_later(host *h, uint64_t range_id)
{
    if (h->closing) return MERR_CLOSED;
    for (size_t i = 0; i < h->nflush; i++)
        if (h->flush_ids[i] == range_id) return 0;
    if (h->nflush == h->capflush) {
        size_t cap = h->capflush ? h->capflush * 2 : 16;
        uint64_t *n = realloc(h->flush_ids, cap * sizeof(*n));
        if (!n) return MERR_NOMEM;
        h->flush_ids = n;
        h->capflush = cap;
    }
    h->flush_ids[h->nflush++] = range_id;
    return 0;
}

/* Runs when the loop is about to block: every write that arrived in this
 * round is queued in its group by now. By range id, as a replica may have
 * gone since it asked. */
static void on_flush_prep(uv_prepare_t *p)
{
    host *h = p->data;
    while (h->nflush && !h->closing) {
        uint64_t *ids = h->flush_ids;
        size_t n = h->nflush;
        h->flush_ids = NULL;
        h->nflush = h->capflush = 0;
        for (size_t i = 0; i < n; i++) {
            replica *r = host_find(h, ids[i]);
            if (r) replica_flush(r);
        }
        free(ids);
    }
}

/* ---- commit-wait ---- */

static void cw_arm(host *h);

static void on_cw_fire(tt_waiter *w, int status)
{
    host *h = w->data;
    host_priv *pv = PRIV(h);
    pv->waiter_armed = 0;
    if (status == MERR_CANCELED) return;
    /* Everything at or below the fired time is done; the clock decides the rest. */
    while (pv->cw) {
        cw_entry *c = pv->cw;
        int after = status ? status : tt_after(&h->clock, c->t_ns, NULL);
        if (after == 0) break;
        pv->cw = c->next;
        replica_commit_waited(c->w, after == 1 ? 0 : after);
        free(c);
    }
    cw_arm(h);
}

static void cw_arm(host *h)
{
    host_priv *pv = PRIV(h);
    if (!pv->cw || h->closing) return;
    if (pv->waiter_armed) {
        if (pv->armed_for <= pv->cw->t_ns) return;
        tt_wait_cancel(&pv->waiter);
    }
    merr e = {0};
    if (tt_wait_after(&pv->waiter, pv->cw->t_ns, on_cw_fire, &e) == 0) {
        pv->waiter_armed = 1;
        pv->armed_for = pv->cw->t_ns;
    } else {
        on_cw_fire(&pv->waiter, MERR_CLOCK);
    }
}

int host_commit_wait(host *h, int64_t t_ns, replica_wait *w)
{
    host_priv *pv = PRIV(h);
    /* Usually t has passed already (consensus took longer than the clock's
     * uncertainty): answer now, without a timer round through the loop. */
    if (tt_after(&h->clock, t_ns, NULL) == 1) {
        replica_commit_waited(w, 0);
        return 0;
    }
    cw_entry *c = malloc(sizeof(*c));
    if (!c) return MERR_NOMEM;
    c->t_ns = t_ns;
    c->w = w;
    cw_entry **pp = &pv->cw;
    while (*pp && (*pp)->t_ns <= t_ns) pp = &(*pp)->next;
    c->next = *pp;
    *pp = c;
    cw_arm(h);
    return 0;
}

/* ---- Paxos transport ---- */

void host_send(host *h, const paxos_msg *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (paxos_msg_encode(m, &buf, &len)) {
        MLOG_E(MOD, "cannot encode a paxos message", "type=%s", paxos_msg_type_name(m->type));
        return;
    }
    if (m->to == h->node_id) {
        /* Never expected (the core does not message itself), but cheap to honour. */
        free(buf);
        return;
    }
    /* Loss is fine: Paxos retransmits. Busy/unavailable peers just drop. */
    if (rpc_node_oneway(h->rpc, m->to, PAXOS_METHOD, buf, len) == 0) h->msgs_out++;
    free(buf);
}

void host_flush_replies(host *h)
{
    rpc_node_flush(h->rpc);
}

static void on_paxos_msg(void *arg, rpc_req *req)
{
    host *h = arg;
    paxos_msg m;
    merr e = {0};
    if (paxos_msg_decode(req->payload, req->len, &m, &e)) {
        h->msgs_bad++;
        MLOG_W(MOD, "bad paxos message dropped", "from=%" PRIu64 " error=\"%s\"", req->from, e.msg);
        return;
    }
    h->msgs_in++;
    /* The sender's identity comes from the rpc handshake, not the payload. */
    if (m.from != req->from || m.to != h->node_id) {
        h->msgs_bad++;
        paxos_msg_free(&m);
        return;
    }
    replica *r = host_find(h, m.group);
    if (r) {
        replica_on_msg(r, &m);
    } else if (!h->closing && (m.type == PAXOS_MSG_PREPARE || m.type == PAXOS_MSG_PREVOTE)) {
        /* Maybe a range split here a moment from now (parked.h). */
        if (!h->parked) h->parked = calloc(1, sizeof(*h->parked));
        if (h->parked)
            parked_add(h->parked, req->from, m.group, req->payload, req->len, mtime_mono_ns());
    }
    paxos_msg_free(&m);
}

static int hosts_group(void *arg, uint64_t group)
{
    return host_find(arg, group) != NULL;
}

/* Hands parked election messages to the replicas that now exist. */
static void replay_parked(host *h)
{
    parked_msg out[PARKED_MAX];
    size_t n = parked_take(h->parked, hosts_group, h, mtime_mono_ns(), out, PARKED_MAX);
    for (size_t i = 0; i < n; i++) {
        paxos_msg m;
        replica *r = host_find(h, out[i].group);
        if (r && paxos_msg_decode(out[i].data, out[i].len, &m, NULL) == 0) {
            replica_on_msg(r, &m);
            paxos_msg_free(&m);
        }
        free(out[i].data);
    }
}

/* ---- ticks ---- */

static void on_tick(uv_timer_t *t)
{
    host *h = t->data;
    h->ticks++;
    host_liveness_tick(h); /* ticks the awake replicas only */
    if (h->parked && h->parked->n) replay_parked(h);
    replica_retry_paused(h, mtime_mono_ns());
}

/* ---- address book ---- */

static void save_peers(host *h)
{
    mbuf b = MBUF_INIT;
    for (size_t i = 0; i < h->npeers; i++)
        mbuf_printf(&b, "%" PRIu64 "=%s\n", h->peers[i].id, h->peers[i].addr);
    merr e = {0};
    /* A small file, written when a node joins: rare enough for the loop. */
    if (mfs_write_atomic(h->peers_path, b.data ? (const char *)b.data : "", b.len, &e))
        MLOG_W(MOD, "cannot save the address book", "error=\"%s\"", e.msg);
    mbuf_free(&b);
}

static int set_peer_locked(host *h, uint64_t id, const char *addr)
{
    for (size_t i = 0; i < h->npeers; i++) {
        if (h->peers[i].id != id) continue;
        if (strcmp(h->peers[i].addr, addr) == 0) return 1; /* unchanged */
        snprintf(h->peers[i].addr, sizeof(h->peers[i].addr), "%s", addr);
        return 0;
    }
    if (h->npeers == HOST_MAX_PEERS) return MERR_TOOBIG;
    h->peers[h->npeers].id = id;
    snprintf(h->peers[h->npeers].addr, sizeof(h->peers[0].addr), "%s", addr);
    h->npeers++;
    return 0;
}

/* Loop thread only (the one writer): the lock is for host_peer_addrs. */
static int set_peer(host *h, uint64_t id, const char *addr)
{
    if (id == 0 || strlen(addr) >= sizeof(h->peers[0].addr)) return MERR_INVALID;
    pthread_mutex_lock(&PRIV(h)->peers_mu);
    int rc = set_peer_locked(h, id, addr);
    pthread_mutex_unlock(&PRIV(h)->peers_mu);
    if (rc == 0 && id != h->node_id) rpc_node_add_peer(h->rpc, id, addr);
    return rc;
}

size_t host_peer_addrs(host *h, char *csv, size_t cap)
{
    size_t len = 0;
    if (cap) csv[0] = 0;
    pthread_mutex_lock(&PRIV(h)->peers_mu);
    for (size_t i = 0; i < h->npeers && cap; i++) {
        if (h->peers[i].id == h->node_id) continue;
        size_t l = strlen(h->peers[i].addr);
        if (len + l + 2 > cap) break;
        if (len) csv[len++] = ',';
        memcpy(csv + len, h->peers[i].addr, l + 1);
        len += l;
    }
    pthread_mutex_unlock(&PRIV(h)->peers_mu);
    return len;
}

int host_set_peer(host *h, uint64_t id, const char *addr)
{
    int rc = set_peer(h, id, addr);
    if (rc == 0) save_peers(h);
    return rc < 0 ? rc : 0;
}

const char *host_peer_addr(host *h, uint64_t id)
{
    for (size_t i = 0; i < h->npeers; i++)
        if (h->peers[i].id == id) return h->peers[i].addr;
    return NULL;
}

static void load_peers(host *h)
{
    mbuf b = MBUF_INIT;
    if (mfs_read_all(h->peers_path, 1 << 20, &b, NULL) == 0 && mbuf_append_u8(&b, 0) == 0) {
        char *save = NULL;
        for (char *l = strtok_r((char *)b.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            char *eq = strchr(l, '=');
            if (!eq) continue;
            *eq = 0;
            set_peer(h, strtoull(l, NULL, 10), eq + 1);
        }
    }
    mbuf_free(&b);
}

/* ---- registry ---- */

replica *host_find(host *h, uint64_t range_id)
{
    for (size_t i = 0; i < h->nreps; i++)
        if (replica_id(h->reps[i]) == range_id) return h->reps[i];
    return NULL;
}

replica *host_find_key(host *h, const uint8_t *key, size_t klen)
{
    for (size_t i = 0; i < h->nreps; i++)
        if (replica_contains(h->reps[i], key, klen) && !replica_placeholder(h->reps[i]))
            return h->reps[i];
    return NULL;
}

int host_add(host *h, replica *r)
{
    if (h->nreps == h->capreps) {
        size_t cap = h->capreps ? h->capreps * 2 : 8;
        replica **n = realloc(h->reps, cap * sizeof(*n));
        if (!n) return MERR_NOMEM;
        h->reps = n;
        h->capreps = cap;
    }
    h->reps[h->nreps++] = r;
    host_wake(h, r);
    return 0;
}

void host_remove(host *h, replica *r)
{
    host_sleep(h, r);
    for (size_t i = 0; i < h->nreps; i++) {
        if (h->reps[i] != r) continue;
        memmove(&h->reps[i], &h->reps[i + 1], (h->nreps - i - 1) * sizeof(*h->reps));
        h->nreps--;
        return;
    }
}

int host_now(host *h, tt_interval *tt, merr *e)
{
    int rc = tt_now(&h->clock, tt, e);
    return rc ? rc : host_clock_gate(h, tt, e);
}

void host_set_node_id(host *h, uint64_t node_id)
{
    if (h->node_id == 0) h->node_id = node_id;
}

/* ---- metrics ---- */

void host_metrics_render(host *h, mbuf *out)
{
    mbuf_printf(out,
                "# TYPE meridian_paxos_messages_in_total counter\n"
                "meridian_paxos_messages_in_total %" PRIu64 "\n"
                "# TYPE meridian_paxos_messages_out_total counter\n"
                "meridian_paxos_messages_out_total %" PRIu64 "\n"
                "# TYPE meridian_paxos_messages_bad_total counter\n"
                "meridian_paxos_messages_bad_total %" PRIu64 "\n"
                "# TYPE meridian_logstore_persists_total counter\n"
                "meridian_logstore_persists_total %" PRIu64 "\n"
                "# TYPE meridian_applied_proposals_total counter\n"
                "meridian_applied_proposals_total %" PRIu64 "\n"
                "# TYPE meridian_snapshots_taken_total counter\n"
                "meridian_snapshots_taken_total %" PRIu64 "\n"
                "# TYPE meridian_snapshots_installed_total counter\n"
                "meridian_snapshots_installed_total %" PRIu64 "\n"
                "# TYPE meridian_replicas gauge\nmeridian_replicas %zu\n",
                h->msgs_in, h->msgs_out, h->msgs_bad, h->persists, h->applied_entries,
                h->snaps_taken, h->snaps_installed, h->nreps);
    host_liveness_metrics(h, out);
    mbuf_printf(out,
                "# TYPE meridian_kv_not_leader_total counter\n"
                "meridian_kv_not_leader_total %" PRIu64 "\n",
                h->kv_not_leader);
    tt_interval tt;
    tt_read(&h->clock, &tt, NULL);
    mbuf_printf(out,
                "# TYPE meridian_clock_uncertainty_seconds gauge\n"
                "meridian_clock_uncertainty_seconds %.9f\n"
                "# TYPE meridian_clock_status gauge\n"
                "meridian_clock_status{status=\"%s\"} 1\n"
                "# TYPE meridian_clock_source gauge\n"
                "meridian_clock_source{source=\"%s\"} 1\n",
                (double)tt.epsilon_ns / 1e9, tt_status_name(tt.status),
                tt_source_name(h->clock.cfg.source));
    host_clock_metrics(h, out);
    mbuf_printf(out, "# TYPE meridian_range_leaseholder gauge\n"
                     "# TYPE meridian_range_voters gauge\n"
                     "# TYPE meridian_range_applied_slot gauge\n"
                     "# TYPE meridian_range_snapshot_slot gauge\n"
                     "# TYPE meridian_range_log_entries gauge\n");
    for (size_t i = 0; i < h->nreps; i++) {
        replica *r = h->reps[i];
        paxos_group *g = replica_group(r);
        paxos_members committed, latest;
        paxos_get_members(g, &committed, &latest);
        uint64_t id = replica_id(r);
        mbuf_printf(out,
                    "meridian_range_leaseholder{range=\"%" PRIu64 "\"} %d\n"
                    "meridian_range_voters{range=\"%" PRIu64 "\"} %u\n"
                    "meridian_range_applied_slot{range=\"%" PRIu64 "\"} %" PRIu64 "\n",
                    id, replica_is_lease_owner(r), id, committed.nvoters, id, paxos_get_applied(g));
        /* Entries the log store holds durably for the group: bounded by the
         * snapshot threshold plus what is in flight. */
        uint64_t snap = 0;
        paxos_get_snapshot(g, &snap, NULL);
        logstore_group_info gi = {0};
        if (h->ls) logstore_group_info_get(h->ls, id, &gi);
        mbuf_printf(out,
                    "meridian_range_snapshot_slot{range=\"%" PRIu64 "\"} %" PRIu64 "\n"
                    "meridian_range_log_entries{range=\"%" PRIu64 "\"} %" PRIu64 "\n",
                    id, snap, id, gi.n_entries);
        /* Valid right now (a quiet leader's lapses; the gauge above says
         * where the range is served). */
        mbuf_printf(out, "meridian_range_lease_valid{range=\"%" PRIu64 "\"} %d\n", id,
                    replica_is_leaseholder(r));
        /* The promised ballot's round: it moves only with an election. */
        mbuf_printf(out, "meridian_range_ballot_round{range=\"%" PRIu64 "\"} %" PRIu64 "\n", id,
                    paxos_get_ballot(g).round);
    }
}

/* ---- open / close ---- */

int host_open(host *h, rpc_node *rpc, const host_config *cfg, merr *e)
{
    memset(h, 0, sizeof(*h));
    h->rpc = rpc;
    h->loop = rpc_node_loop(rpc);
    h->node_id = cfg->node_id;
    h->snap_every = HOST_SNAPSHOT_EVERY;
    h->snap_size_rule = 1;
    const char *every = getenv("MERIDIAN_TESTING_SNAPSHOT_EVERY");
    if (every && *every) {
        char *endp;
        unsigned long long v = strtoull(every, &endp, 10);
        if (*endp || v == 0)
            return merr_set(e, MERR_INVALID,
                            "MERIDIAN_TESTING_SNAPSHOT_EVERY: want a positive "
                            "number of slots, got \"%s\"",
                            every);
        h->snap_every = v;
        h->snap_size_rule = 0;
    }
    host_priv *pv = calloc(1, sizeof(*pv));
    if (!pv) return merr_set(e, MERR_NOMEM, "out of memory");
    pthread_mutex_init(&pv->mu, NULL);
    pthread_mutex_init(&pv->peers_mu, NULL);
    h->done_mu = pv;
    char dir[4200];
    snprintf(h->ranges_dir, sizeof(h->ranges_dir), "%s/ranges", cfg->store_dir);
    int rc = mfs_mkdirs(h->ranges_dir, e);
    if (rc) return rc;
    snprintf(dir, sizeof(dir), "%s/paxos", cfg->store_dir);
    if ((rc = mfs_mkdirs(dir, e))) return rc;
    snprintf(h->peers_path, sizeof(h->peers_path), "%s/peers", cfg->store_dir);
    load_peers(h);
    if ((rc = tt_clock_init(&h->clock, &cfg->clock, NULL, e))) return rc;
    if (cfg->clock.source == TT_SOURCE_CHRONY) {
        if ((rc = tt_chrony_start(&h->chrony, h->loop, &h->clock, &cfg->chrony, NULL, e)))
            return merr_wrap(e, "clock");
        h->chrony_on = 1;
    } else if (cfg->clock.source == TT_SOURCE_KERNEL) {
        if ((rc = tt_kernel_start(&h->kernel, h->loop, &h->clock, 1000000000LL, e)))
            return merr_wrap(e, "clock");
        h->kernel_on = 1;
    } else if (cfg->clock.source == TT_SOURCE_STATIC) {
        MLOG_W(MOD, "clock source is static: the uncertainty bound is configured, not measured",
               "epsilon_ns=%" PRId64, cfg->clock.static_uncertainty_ns);
    }
    snprintf(dir, sizeof(dir), "%s/hlc", cfg->store_dir);
    if ((rc = hlc_file_store_init(&pv->hlc_fs, dir, &pv->hlc_ops, e))) return rc;
    pv->hlc_fs_inited = 1;
    hlc_config hc;
    hlc_config_default(&hc);
    if ((rc = hlc_init(&h->hlc, &hc, &pv->hlc_ops, e))) return rc;
    if ((rc = tt_waiter_init(h->loop, &h->clock, &pv->waiter, e))) return rc;
    pv->waiter.data = h;
    /* Renews the HLC's durable high-water mark on the thread pool, so
     * hlc_now() on the loop never waits for an fsync in steady state. */
    if ((rc = hlc_keeper_start(&h->keeper, h->loop, &h->hlc, &h->clock, e))) return rc;
    h->hlc_keeper_on = 1;
    if ((rc = host_clock_start(h, e))) return rc;
    uv_async_init(h->loop, &h->ls_async, on_ls_async);
    h->ls_async.data = h;
    uv_prepare_init(h->loop, &h->flush_prep);
    h->flush_prep.data = h;
    uv_prepare_start(&h->flush_prep, on_flush_prep);
    uv_unref((uv_handle_t *)&h->flush_prep);
    logstore_opts lo = {.notify = on_logstore_done, .notify_arg = h, .zero_ahead = 1u << 20};
    if (cfg->testing_disk_faults) {
        snprintf(h->disk_full_path, sizeof(h->disk_full_path), "%s/TESTING_DISK_FULL",
                 cfg->store_dir);
        h->disk_io = (logstore_io){disk_fault_pwrite, disk_fault_fdatasync, disk_fault_fsync_dir,
                                   disk_fault_ftruncate, h};
        lo.io = &h->disk_io;
        MLOG_W(MOD, "testing: log writes fail with ENOSPC while the flag file exists", "path=%s",
               h->disk_full_path);
    }
    snprintf(dir, sizeof(dir), "%s/paxos", cfg->store_dir);
    if ((rc = logstore_open(dir, &lo, &h->ls, e))) return merr_wrap(e, "log store");
    uint64_t *ids = NULL;
    size_t n = 0;
    if ((rc = logstore_groups(h->ls, &ids, &n))) return merr_set(e, rc, "log store: list groups");
    for (size_t i = 0; i < n && !rc; i++) {
        replica *r;
        if ((rc = replica_restore(h, ids[i], &r, e)) == 0) {
            rc = host_add(h, r);
            if (!rc) replica_store_sleep(r); /* thousands of ranges: not all open at once */
        } else if (rc == MERR_NOTFOUND && ids[i] != 1) {
            /* A split recorded the new group but crashed before its store
             * existed: the parent's log replay finishes it (replica_split.c). */
            MLOG_W(MOD, "group without a store: waiting for its split to replay", "range=%" PRIu64,
                   ids[i]);
            rc = 0;
            if (e) memset(e, 0, sizeof(*e)); /* not an error of the start */
        }
    }
    free(ids);
    if (rc) return rc;
    replica_merge_cleanup(h); /* right sides of merges that crashed before their cleanup */
    rpc_node_handle(rpc, PAXOS_METHOD, on_paxos_msg, h);
    if ((rc = host_liveness_open(h, e))) return rc;
    uv_timer_init(h->loop, &h->tick);
    h->tick.data = h;
    uv_timer_start(&h->tick, on_tick, HOST_TICK_MS, HOST_TICK_MS);
    return 0;
}

static void free_priv_mem(host_priv *pv)
{
    if (pv->hlc_fs_inited) hlc_file_store_destroy(&pv->hlc_fs);
    pthread_mutex_destroy(&pv->mu);
    pthread_mutex_destroy(&pv->peers_mu);
    free(pv);
}

static void priv_release(host_priv *pv)
{
    if (--pv->close_refs == 0) free_priv_mem(pv);
}

/* The waiter's memory is inside host_priv: release it once libuv let go. */
static void free_priv(tt_waiter *w)
{
    priv_release((host_priv *)((char *)w - offsetof(host_priv, waiter)));
}

static void keeper_closed(hlc_keeper *k)
{
    priv_release(k->data);
}

void host_close(host *h)
{
    if (h->closing) return;
    h->closing = 1;
    host_clock_stop(h);
    host_priv *pv = PRIV(h);
    if (uv_is_active((uv_handle_t *)&h->tick) || h->tick.data)
        uv_close((uv_handle_t *)&h->tick, NULL);
    for (size_t i = 0; i < h->nreps; i++) replica_free(h->reps[i]);
    free(h->reps);
    h->reps = NULL;
    h->nreps = 0;
    host_liveness_close(h);
    if (h->parked) parked_free(h->parked);
    free(h->parked);
    h->parked = NULL;
    if (h->ls) logstore_close(h->ls); /* drains the I/O thread */
    h->ls = NULL;
    if (h->ls_async.data) uv_close((uv_handle_t *)&h->ls_async, NULL);
    if (h->flush_prep.data) uv_close((uv_handle_t *)&h->flush_prep, NULL);
    free(h->flush_ids);
    h->flush_ids = NULL;
    h->nflush = h->capflush = 0;
    if (pv) {
        while (pv->cw) {
            cw_entry *c = pv->cw;
            pv->cw = c->next;
            replica_commit_waited(c->w, MERR_CLOSED);
            free(c);
        }
        pv->close_refs = 1;
        if (h->hlc_keeper_on) { /* a renewal may still be saving through pv->hlc_fs */
            pv->close_refs++;
            h->keeper.data = pv;
            hlc_keeper_stop(&h->keeper, keeper_closed);
        }
        if (h->chrony_on) tt_chrony_stop(&h->chrony, NULL);
        if (h->kernel_on) tt_kernel_stop(&h->kernel, NULL);
        if (pv->waiter.clock) {
            pv->close_refs++;
            tt_waiter_close(&pv->waiter, free_priv);
        }
        priv_release(pv);
        h->done_mu = NULL;
    }
    while (h->done_head) {
        host_done *d = h->done_head;
        h->done_head = d->next;
        free(d);
    }
    while (h->inflight) {
        host_inflight *f = h->inflight;
        h->inflight = f->next;
        free(f);
    }
}
