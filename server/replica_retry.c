/* A replica whose log write failed for lack of space (replica_int.h).
 *
 * An acceptor must not answer before its state is durable, so the Paxos core
 * never acknowledged what the failed batch held; but its in-memory state has
 * moved past the disk. Rather than stop for good (until a node restart), the
 * replica pauses, and after a back-off (250 ms doubling to 8 s) rebuilds
 * itself from its durable state exactly as a restart would (replica_restore),
 * dropping what was never persisted; the leader then catches it up. While the
 * disk stays full the next write pauses it again. The replica object keeps
 * its address (others hold it, e.g. the lock tables of txn_service); only its
 * insides are swapped, once none of its batches is still in the log store. */
#include "server/replica_int.h"

#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "server/host.h"

#define MOD          "replica"
#define RETRY_MIN_NS (250 * MTIME_MS)
#define RETRY_MAX_NS (8 * MTIME_S)

void replica_pause_for_disk(replica *r, int status)
{
    int64_t b = r->retry_backoff_ns ? 2 * r->retry_backoff_ns : RETRY_MIN_NS;
    r->retry_backoff_ns = b > RETRY_MAX_NS ? RETRY_MAX_NS : b;
    r->retry_at_ns = mtime_mono_ns() + r->retry_backoff_ns;
    if (r->broken != REPLICA_PAUSED)
        MLOG_E(MOD, "log store write failed: replica pauses and retries from its durable state",
               "range=%" PRIu64 " error=%s retry_in_ms=%" PRId64, r->range_id, merr_str(status),
               (int64_t)(r->retry_backoff_ns / MTIME_MS));
    r->broken = REPLICA_PAUSED;
    r->h->paused_hint = 1;
}

static int rebuild(replica *r, merr *e)
{
    replica *fresh;
    int rc = replica_restore(r->h, r->range_id, &fresh, e);
    if (rc) return rc;
    /* The host's tick set holds the address: take it out while the insides
     * change, so the flag and the set agree, and wake the rebuilt replica. */
    host_sleep(r->h, r);
    replica old = *r;
    *r = *fresh;
    *fresh = old;
    replica_free(fresh); /* the old insides */
    host_wake(r->h, r);
    return 0;
}

void replica_retry_paused(host *h, int64_t now_mono_ns)
{
    if (!h->paused_hint) return;
    size_t still = 0;
    for (size_t i = 0; i < h->nreps; i++) {
        replica *r = h->reps[i];
        if (r->broken != REPLICA_PAUSED) continue;
        still++; /* un-counted below once it is rebuilt */
        if (now_mono_ns < r->retry_at_ns || r->inflight) continue;
        int64_t backoff = r->retry_backoff_ns;
        merr e = {0};
        if (rebuild(r, &e)) {
            MLOG_W(MOD, "paused replica cannot rebuild yet", "range=%" PRIu64 " error=\"%s\"",
                   r->range_id, e.msg);
            replica_pause_for_disk(r, e.code ? e.code : MERR_IO);
            continue;
        }
        still--;
        r->retry_backoff_ns = backoff; /* reset by the next successful write */
        MLOG_I(MOD, "paused replica rebuilt from its durable state: serving again",
               "range=%" PRIu64, r->range_id);
    }
    /* Other paths may end a pause (a replica removed, marked broken): the
     * hint is cleared only by a walk that found nothing paused. */
    if (!still) h->paused_hint = 0;
}
