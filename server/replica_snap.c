/* Snapshots of a range replica: the glue between the Paxos core's snapshot
 * protocol (docs/replication.md §7) and the range store's snapshot stream
 * (storage/range.h), so logs stay bounded and a replica that fell behind the
 * log's first slot catches up from a snapshot.
 *
 * Rules kept here:
 *  - The log is truncated (SNAPSHOT_TAKEN) only at a slot the store has fully
 *    applied and made durable: every slot the core handed out is applied
 *    synchronously before we get here, and range_sync fsyncs it first.
 *  - A follower installs into "<path>.tmp" (range_install_*), closes its old
 *    handle, lets range_install_finish move the new file into place, and
 *    reopens; all on the loop thread, so no request sees a half-installed
 *    store. Only then does the core hear SNAPSHOT_INSTALLED.
 *  - Taking one reads the range on a libuv worker thread (its own SQLite
 *    connection and read transaction); installing one still runs on the loop.
 *  - The snapshot bytes are one in-memory blob (the core's uint32 length, so a
 *    range must stay under 4 GiB; streaming from the store is future work). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mtime.h"
#include "server/replica_int.h"

#define MOD "replica"

int replica_snap_blob(range *store, mbuf *out, merr *e)
{
    range_snap *s = NULL;
    int rc = range_snap_open(store, RANGE_SNAP_CHUNK_DEFAULT, &s, e);
    if (rc) return rc;
    for (;;) {
        const uint8_t *chunk;
        size_t len;
        if ((rc = range_snap_next(s, &chunk, &len, e))) break;
        if (len == 0) break;
        if ((rc = mbuf_append(out, chunk, len))) {
            merr_set(e, rc, "snapshot: out of memory");
            break;
        }
        if (out->len > UINT32_MAX) {
            rc = merr_set(e, MERR_TOOBIG, "snapshot over 4 GiB");
            break;
        }
    }
    range_snap_close(s);
    return rc;
}

/* Reading a snapshot takes time in proportion to the range (hundreds of ms
 * for tens of MB): it runs on a libuv worker thread, through the snapshot's
 * own SQLite connection, while the loop goes on applying. */
typedef struct snap_job {
    uv_work_t req;
    replica *r; /* NULL once the replica is gone */
    range_snap *s;
    uint64_t slot;
    mbuf blob;
    int rc;
    merr e;
    int64_t t0;
} snap_job;

static void snap_work(uv_work_t *req)
{
    snap_job *j = req->data;
    for (;;) {
        const uint8_t *chunk;
        size_t len;
        if ((j->rc = range_snap_next(j->s, &chunk, &len, &j->e)) || len == 0) break;
        if ((j->rc = mbuf_append(&j->blob, chunk, len))) {
            merr_set(&j->e, j->rc, "snapshot: out of memory");
            break;
        }
        if (j->blob.len > UINT32_MAX) {
            j->rc = merr_set(&j->e, MERR_TOOBIG, "snapshot over 4 GiB");
            break;
        }
    }
}

static void snap_done(uv_work_t *req, int status)
{
    snap_job *j = req->data;
    replica *r = j->r;
    range_snap_close(j->s);
    if (r && !r->broken) {
        r->job = NULL;
        if (status == 0 && j->rc == 0) {
            /* The core ignores it if the log moved past it meanwhile (an
             * installed snapshot); the store is durable up to slot. */
            paxos_event ev = {.type = PAXOS_EV_SNAPSHOT_TAKEN,
                              .slot = j->slot,
                              .data = j->blob.data,
                              .len = (uint32_t)j->blob.len};
            replica_step(r, &ev);
            r->h->snaps_taken++;
            r->log_bytes = 0;
            r->snap_len = j->blob.len;
            MLOG_I(MOD, "snapshot taken",
                   "range=%" PRIu64 " slot=%" PRIu64 " bytes=%zu took_ms=%.1f", r->range_id,
                   j->slot, j->blob.len, (double)(mtime_mono_ns() - j->t0) / 1e6);
        } else {
            MLOG_W(MOD, "snapshot failed; the log keeps growing",
                   "range=%" PRIu64 " slot=%" PRIu64 " error=\"%s\"", r->range_id, j->slot,
                   status ? uv_strerror(status) : j->e.msg);
            r->snap_retry_at = j->slot + r->h->snap_every / 4 + 1;
        }
    } else if (r) {
        r->job = NULL;
    }
    mbuf_free(&j->blob);
    free(j);
}

void replica_snap_detach(replica *r)
{
    if (r->job) r->job->r = NULL;
    r->job = NULL;
}

void replica_maybe_snapshot(replica *r, int hinted)
{
    /* Stalled entries are chosen but not in the store: a snapshot now would
     * truncate them away. */
    if (r->broken || r->job || r->nstall) return;
    uint64_t applied = paxos_get_applied(r->g), snap = 0;
    paxos_get_snapshot(r->g, &snap, NULL);
    if (applied <= snap || applied < r->snap_retry_at) return;
    if (!hinted && applied - snap < r->h->snap_every) return;
    /* A snapshot costs a read of the whole range: amortise it (unless a
     * move needs one now: hinted == 2). */
    if (hinted < 2 && r->h->snap_size_rule && r->log_bytes < r->snap_len / 4) return;
    snap_job *j = calloc(1, sizeof(*j));
    if (!j) return;
    j->r = r;
    j->slot = applied;
    j->t0 = mtime_mono_ns();
    j->req.data = j;
    mbuf_init(&j->blob);
    /* Everything up to `applied` is in the store; make it durable before the
     * log that could replay it goes away, then open the snapshot's read
     * transaction (it sees at least `applied`). */
    uint64_t durable = 0;
    int rc = range_sync(r->store, &durable);
    if (rc) merr_set(&j->e, rc, "%s", range_err(r->store)->msg);
    if (!rc) rc = range_snap_open(r->store, RANGE_SNAP_CHUNK_DEFAULT, &j->s, &j->e);
    if (!rc) rc = uv_queue_work(r->h->loop, &j->req, snap_work, snap_done);
    if (!rc) {
        r->job = j;
        return;
    }
    MLOG_W(MOD, "snapshot failed; the log keeps growing",
           "range=%" PRIu64 " slot=%" PRIu64 " error=\"%s\"", r->range_id, applied,
           j->e.msg[0] ? j->e.msg : uv_strerror(rc));
    r->snap_retry_at = applied + r->h->snap_every / 4 + 1;
    if (j->s) range_snap_close(j->s);
    free(j);
}

/* Feeds the blob's chunks (each "MRS1" header + payload + crc) to `in`. */
static int install_chunks(range_install *in, const uint8_t *p, size_t n, merr *e)
{
    size_t off = 0;
    while (off < n) {
        if (n - off < 17) return merr_set(e, MERR_CORRUPT, "snapshot: truncated chunk header");
        size_t clen = 17 + (size_t)mbe32_get(p + off + 9);
        if (clen > n - off) return merr_set(e, MERR_CORRUPT, "snapshot: truncated chunk");
        int rc = range_install_chunk(in, p + off, clen, e);
        if (rc) return rc;
        off += clen;
    }
    return 0;
}

void replica_install(replica *r, const paxos_install *snap)
{
    char path[4200];
    replica_range_path(r->h, r->range_id, path, sizeof(path));
    merr e = {0};
    range_install *in = NULL;
    int rc = range_install_begin(path, NULL, &in, &e);
    if (!rc) rc = install_chunks(in, snap->data, snap->len, &e);
    if (!rc) {
        /* The swap: nothing runs on this range between close and reopen. */
        range_meta before;
        uint64_t had = range_get_meta(r->store, &before) ? UINT64_MAX : before.applied;
        range_close(r->store);
        r->store = NULL;
        rc = range_install_finish(in, &e);
        if (!rc) in = NULL; /* finish freed it */
        merr oe = {0};
        range_opts o = {.no_create = 1};
        if (range_open(path, &o, &r->store, &oe)) {
            MLOG_E(MOD, "cannot reopen the range after a snapshot install: replica stops",
                   "range=%" PRIu64 " error=\"%s\"", r->range_id, oe.msg);
            r->broken = 1;
            if (in) range_install_abort(in);
            return;
        }
        range_meta now;
        if (rc && (range_get_meta(r->store, &now) || now.applied < had)) {
            /* The install failed after dropping the old store's WAL (the old
             * file is older than what we applied): stop rather than diverge. */
            MLOG_E(MOD, "snapshot install failed and the old store lost writes: replica stops",
                   "range=%" PRIu64 " error=\"%s\"", r->range_id, e.msg);
            r->broken = 1;
            if (in) range_install_abort(in);
            return;
        }
    }
    if (in) range_install_abort(in);
    range_meta m = {0};
    if (!rc && (range_get_meta(r->store, &m) || m.range_id != r->range_id)) {
        MLOG_E(MOD, "installed snapshot is of another range: replica stops",
               "range=%" PRIu64 " got=%" PRIu64, r->range_id, m.range_id);
        r->broken = 1;
        return;
    }
    if (!rc) {
        free(r->start);
        free(r->end);
        r->start = r->end = NULL;
        rc = replica_set_span(r);
        /* A snapshot past a split narrowed the span (the new range's replica
         * here comes from the PD: pd_missing.h); past a merge it widened, and
         * the absorbed range's replica here would stay a zombie. */
        if (!rc) replica_merge_cleanup_into(r);
    }
    /* A snapshot taken past a FREEZE carries the mark: this replica now
     * refuses writes as the others do (and one taken before it clears it). */
    if (!rc && range_frozen_at(r->store, &r->frozen)) {
        rc = MERR_IO;
        merr_set(&e, rc, "%s", range_err(r->store)->msg);
    }
    paxos_event ev = {.type = PAXOS_EV_SNAPSHOT_INSTALLED, .slot = rc ? 0 : snap->slot};
    if (rc) {
        MLOG_W(MOD, "snapshot install failed; the leader will send it again",
               "range=%" PRIu64 " slot=%" PRIu64 " error=\"%s\"", r->range_id, snap->slot, e.msg);
    } else {
        r->h->snaps_installed++;
        r->log_bytes = 0;
        r->snap_len = snap->len;
        MLOG_I(MOD, "snapshot installed",
               "range=%" PRIu64 " slot=%" PRIu64 " bytes=%" PRIu32 " store_applied=%" PRIu64,
               r->range_id, snap->slot, snap->len, m.applied);
    }
    replica_step(r, &ev);
}
