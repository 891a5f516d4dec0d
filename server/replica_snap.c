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
 *  - The snapshot bytes are one in-memory blob (the core's uint32 length, so a
 *    range must stay under 4 GiB; streaming from the store is future work). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
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

void replica_maybe_snapshot(replica *r, int hinted)
{
    if (r->broken) return;
    uint64_t applied = paxos_get_applied(r->g), snap = 0;
    paxos_get_snapshot(r->g, &snap, NULL);
    if (applied <= snap || applied < r->snap_retry_at) return;
    if (!hinted && applied - snap < r->h->snap_every) return;
    /* A snapshot costs a read of the whole range on the loop: amortise it. */
    if (r->h->snap_size_rule && r->log_bytes < r->snap_len / 4) return;
    merr e = {0};
    mbuf blob = MBUF_INIT;
    uint64_t durable = 0;
    /* Everything up to `applied` is in the store; make it durable before the
     * log that could replay it goes away. */
    int rc = range_sync(r->store, &durable);
    if (rc) merr_set(&e, rc, "%s", range_err(r->store)->msg);
    if (!rc) rc = replica_snap_blob(r->store, &blob, &e);
    if (!rc) {
        paxos_event ev = {.type = PAXOS_EV_SNAPSHOT_TAKEN,
                          .slot = applied,
                          .data = blob.data,
                          .len = (uint32_t)blob.len};
        replica_step(r, &ev);
        r->h->snaps_taken++;
        r->log_bytes = 0;
        r->snap_len = blob.len;
        MLOG_D(MOD, "snapshot taken",
               "range=%" PRIu64 " slot=%" PRIu64 " bytes=%zu durable_applied=%" PRIu64, r->range_id,
               applied, blob.len, durable);
    } else {
        MLOG_W(MOD, "snapshot failed; the log keeps growing",
               "range=%" PRIu64 " slot=%" PRIu64 " error=\"%s\"", r->range_id, applied, e.msg);
        r->snap_retry_at = applied + r->h->snap_every / 4 + 1;
    }
    mbuf_free(&blob);
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
