/* The log store's I/O thread: group commit and compaction.
 *
 * Each round takes every batch queued so far, lays them out after any
 * compaction records and ends them with one COMMIT marker, then does one pwrite
 * and one fdatasync. Only then is the round applied to the index (so reads see
 * only durable state) and every batch of the round completed: sync waiters are
 * woken, the notifier gets the ids of the asynchronous ones in one call.
 *
 *   idle --(batches queued)--> build round --> [roll segment] --> pwrite
 *     pwrite ENOSPC --> cut back to the last round, fdatasync --> batches fail NOSPACE --> idle
 *     pwrite other error / any fdatasync error --> FAILED (every later batch: MERR_IO)
 *     fdatasync ok --> apply to index --> notify --> delete dead segments --> idle
 *
 * Compaction only ever deletes whole segments. A segment is deletable once no
 * index entry points into it, except that a segment holding a DROP record is
 * deleted only when it is the oldest (the DROP must outlive older records of the
 * dropped group). To free the oldest segment while it still holds live records
 * (typically hard states of idle groups), its live records are restated at the
 * head of the log as part of the next round; restating current state is
 * idempotent, and it goes in before the round's new batches so log order is kept. */
#include "replication/logstore_int.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Live bytes restated per round at most, so a compaction adds a bounded delay
 * to the user batches that share its round; the next rounds carry on. */
#define LS_COMPACT_ROUND_MAX (2u << 20)

typedef struct collect_ctx {
    uint64_t seq;
    mbuf *out;
    size_t budget; /* bytes still allowed this round */
    size_t nrec;
    lsx_loc *reads; /* entries to copy, read later without ix_mu */
    size_t nreads, capreads;
    int rc;
} collect_ctx;

/* Whether a record of `len` bytes fits this round's budget. The first one
 * always does, so a record bigger than the budget still moves. */
static int take(collect_ctx *c, uint32_t len)
{
    if (len > c->budget && (c->nrec || c->nreads)) return 0;
    c->budget = len > c->budget ? 0 : c->budget - len;
    return 1;
}

static int collect_group(void *arg, const lsx_group *g)
{
    collect_ctx *c = arg;
    if (c->budget == 0) return 1;
    if (g->hs_loc.seg == c->seq && take(c, g->hs_loc.rec_len)) {
        c->rc = lsf_encode(c->out, LSF_HARDSTATE, g->id, 0, 0, g->hs, g->hs_len);
        if (c->rc) return 1;
        c->nrec++;
    }
    if (g->trunc_loc.seg == c->seq && take(c, g->trunc_loc.rec_len)) {
        c->rc = lsf_encode(c->out, LSF_TRUNCATE, g->id, g->trunc, 0, NULL, 0);
        if (c->rc) return 1;
        c->nrec++;
    }
    for (size_t i = 0; i < g->n; i++) {
        const lsx_loc *l = &g->ents[i].loc;
        if (l->seg != c->seq) continue;
        if (!take(c, l->rec_len)) return 1;
        if (c->nreads == c->capreads) {
            size_t cap = c->capreads ? c->capreads * 2 : 256;
            lsx_loc *r = realloc(c->reads, cap * sizeof(*r));
            if (!r) {
                c->rc = MERR_NOMEM;
                return 1;
            }
            c->reads = r;
            c->capreads = cap;
        }
        c->reads[c->nreads++] = *l;
    }
    return c->budget == 0;
}

/* Under ix_mu. If it is time to compact the oldest segment, encodes its live
 * hard states and truncation points into `out` and lists the locations of its
 * live entries in *reads; ls_compact_read() copies those after ix_mu is
 * dropped (only the I/O thread deletes segments, so they stay valid). */
int ls_compact_collect(logstore *ls, mbuf *out, size_t *nrec, lsx_loc **reads, size_t *nreads)
{
    *nrec = 0;
    *reads = NULL;
    *nreads = 0;
    if (ls->nsegs < 2) return 0;
    ls_segment *old = &ls->segs[0];
    uint64_t disk = 0;
    for (size_t i = 0; i < ls->nsegs; i++) disk += ls->segs[i].size;
    int sparse = (double)old->live < ls->opts.compact_live_ratio * (double)old->size;
    int amplified = disk > 2 * ls->st.live_bytes + ls->opts.segment_size;
    if (old->live == 0 || (!sparse && !amplified)) return 0;
    size_t mark = out->len;
    collect_ctx c = {.seq = old->seq, .out = out, .budget = LS_COMPACT_ROUND_MAX};
    lsx_each(&ls->ix, collect_group, &c);
    if (c.rc) {
        out->len = mark;
        free(c.reads);
        MLOG_W("logstore", "compaction skipped", "seg=%" PRIu64 " err=%s", old->seq,
               merr_str(c.rc));
        return 0; /* the round goes on without it; data stays where it is */
    }
    *nrec = c.nrec;
    *reads = c.reads;
    *nreads = c.nreads;
    return 0;
}

/* Copies the listed entry records of segment `seq` verbatim (a record does
 * not depend on where it sits) after what `out` holds; returns how many made
 * it. A read error only shortens the compaction: the rest stays put. */
static size_t ls_compact_read(logstore *ls, uint64_t seq, int fd, const lsx_loc *reads, size_t n,
                              mbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        const lsx_loc *l = &reads[i];
        if (mbuf_reserve(out, l->rec_len)) return i;
        uint8_t *p = out->data + out->len;
        size_t got = 0;
        while (got < l->rec_len) {
            ssize_t r = pread(fd, p + got, l->rec_len - got, (off_t)(l->off + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        lsf_rec rec;
        if (got != l->rec_len || lsf_decode(p, got, &rec) || rec.type != LSF_ENTRY) {
            MLOG_W("logstore", "compaction read failed", "seg=%" PRIu64 " off=%" PRIu64, seq,
                   l->off);
            return i;
        }
        out->len += got;
    }
    return n;
}

/* Deletes segments nothing points into. ix_mu must NOT be held: the table is
 * edited under it, the unlink and the directory fsync happen outside it. */
int ls_delete_dead(logstore *ls)
{
    for (;;) {
        pthread_mutex_lock(&ls->ix_mu);
        size_t victim = ls->nsegs;
        for (size_t i = 0; i + 1 < ls->nsegs; i++) {
            if (ls->segs[i].live) continue;
            if (ls->segs[i].has_drop && i != 0) continue;
            victim = i;
            break;
        }
        if (victim == ls->nsegs) {
            pthread_mutex_unlock(&ls->ix_mu);
            return 0;
        }
        ls_segment s = ls->segs[victim];
        memmove(ls->segs + victim, ls->segs + victim + 1,
                (ls->nsegs - victim - 1) * sizeof(ls_segment));
        ls->nsegs--;
        ls->st.segments_deleted++;
        pthread_mutex_unlock(&ls->ix_mu);
        char path[4096];
        ls_seg_path(ls, s.seq, path, sizeof(path));
        close(s.fd);
        int rc = 0;
        if (unlink(path) && errno != ENOENT) rc = errno;
        if (!rc && ls->io.fsync_dir(ls->io.ctx, ls->dirfd)) rc = errno ? errno : EIO;
        if (rc) {
            pthread_mutex_lock(&ls->ix_mu);
            ls_fail(ls, "delete segment %s: %s", path, strerror(rc));
            pthread_mutex_unlock(&ls->ix_mu);
            return MERR_IO;
        }
        MLOG_D("logstore", "segment deleted", "file=%s", path);
    }
}

static int write_all(logstore *ls, int fd, const uint8_t *p, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = ls->io.pwrite(ls->io.ctx, fd, p + done, n - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno ? errno : EIO;
        if (w == 0) return ENOSPC; /* no progress: treat as a full device */
        done += (size_t)w;
    }
    return 0;
}

/* Zero-ahead (opts.zero_ahead): the active segment is extended with written
 * zeros a chunk at a time, in the same fdatasync as the round that needs the room. Later rounds
 * overwrite those blocks: the file's size and extents do not change, so their
 * fdatasync flushes data only, without an ext4/xfs journal commit (measured
 * on the development disk: ~1.6x cheaper than appending; fallocate does not
 * help, its unwritten extents must be converted on first write). Recovery
 * treats an all-zero tail as never written (logstore.c). */
static const uint8_t ls_zeros[64u << 10];

/* Writes zeros after a round ending at `end`; returns how far the file is now
 * known to be written. Best effort: zeros are never data, so a failure (a
 * full disk) only costs the speed-up, and the round itself still stands. */
static uint64_t zero_ahead(logstore *ls, int fd, uint64_t end)
{
    uint64_t target = end + ls->opts.zero_ahead;
    if (target > ls->opts.segment_size)
        target = end > ls->opts.segment_size ? end : ls->opts.segment_size;
    uint64_t at = end;
    while (at < target) {
        size_t n = target - at < sizeof(ls_zeros) ? (size_t)(target - at) : sizeof(ls_zeros);
        ssize_t w = ls->io.pwrite(ls->io.ctx, fd, ls_zeros, n, (off_t)at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        at += (uint64_t)w;
    }
    return at;
}

/* Before a segment stops being the last: cut its zero-ahead room, durably,
 * so that recovery can keep refusing any damage in a segment that is not the
 * last (a zero tail is accepted in the last one only). */
static int trim_zeros(logstore *ls, const ls_segment *active)
{
    if (active->zeroed_to <= active->size) return 0;
    int ok = ls->io.ftruncate(ls->io.ctx, active->fd, (off_t)active->size) == 0 &&
             ls->io.fdatasync(ls->io.ctx, active->fd) == 0;
    int err = errno;
    pthread_mutex_lock(&ls->ix_mu);
    ls->st.fsyncs++;
    if (ok)
        ls_seg_find(ls, active->seq)->zeroed_to = active->size;
    else
        ls_fail(ls, "trim segment %" PRIu64 ": %s", active->seq, strerror(err));
    pthread_mutex_unlock(&ls->ix_mu);
    return ok ? 0 : MERR_IO;
}

typedef struct round_apply_ctx {
    logstore *ls;
    ls_segment *seg;
    uint64_t base;
} round_apply_ctx;

static int round_apply(void *arg, const lsf_rec *r, uint64_t off)
{
    round_apply_ctx *c = arg;
    if (r->type == LSF_DROP) c->seg->has_drop = 1;
    return lsx_apply(&c->ls->ix, r, (lsx_loc){c->seg->seq, c->base + off, r->rec_len});
}

/* Opens the next segment file; the caller adds it to the table. */
static int roll_segment(logstore *ls, uint64_t seq, int *fd_out)
{
    char path[4096];
    ls_seg_path(ls, seq, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        if (err == ENOSPC || err == EDQUOT) return MERR_NOSPACE;
        pthread_mutex_lock(&ls->ix_mu);
        ls_fail(ls, "create %s: %s", path, strerror(err));
        pthread_mutex_unlock(&ls->ix_mu);
        return MERR_IO;
    }
    if (ls->io.fsync_dir(ls->io.ctx, ls->dirfd)) {
        int err = errno;
        close(fd);
        pthread_mutex_lock(&ls->ix_mu);
        ls_fail(ls, "fsync dir %s after creating %s: %s", ls->dir, path, strerror(err));
        pthread_mutex_unlock(&ls->ix_mu);
        return MERR_IO;
    }
    *fd_out = fd;
    return 0;
}

/* Writes one round made of `list` and returns the status of all its batches. */
static int do_round(logstore *ls, logstore_batch *list)
{
    mbuf *rb = &ls->round;
    size_t user_rec = 0, ncomp = 0;
    mbuf_reset(rb);
    int rc = mbuf_reserve(rb, LSF_HDR_SIZE);
    if (rc) return rc;
    rb->len = LSF_HDR_SIZE; /* room for a segment header if this round opens one */

    pthread_mutex_lock(&ls->ix_mu);
    if (ls->failed) {
        pthread_mutex_unlock(&ls->ix_mu);
        return MERR_IO;
    }
    lsx_loc *reads = NULL;
    size_t nreads = 0;
    ls_compact_collect(ls, rb, &ncomp, &reads, &nreads);
    ls_segment oldest = ls->segs[0];
    ls_segment active = ls->segs[ls->nsegs - 1];
    uint64_t seq = ls->next_round;
    pthread_mutex_unlock(&ls->ix_mu);
    if (nreads) ncomp += ls_compact_read(ls, oldest.seq, oldest.fd, reads, nreads, rb);
    free(reads);
    size_t comp_bytes = rb->len - LSF_HDR_SIZE;

    for (logstore_batch *b = list; b; b = b->next) {
        rc = mbuf_append(rb, b->rec.data, b->rec.len);
        if (rc) return rc;
        user_rec += b->nrec;
    }
    rc = lsf_encode(rb, LSF_COMMIT, 0, seq, ncomp + user_rec, NULL, 0);
    if (rc) return rc;

    size_t body = rb->len - LSF_HDR_SIZE;
    if (active.size > LSF_HDR_SIZE && active.size + body > ls->opts.segment_size) {
        int fd;
        rc = trim_zeros(ls, &active);
        if (rc) return rc;
        rc = roll_segment(ls, active.seq + 1, &fd);
        if (rc) return rc;
        pthread_mutex_lock(&ls->ix_mu);
        rc = ls_seg_add(ls, active.seq + 1, fd, 0);
        if (rc) {
            close(fd);
            ls_fail(ls, "out of memory adding a segment");
            pthread_mutex_unlock(&ls->ix_mu);
            return MERR_IO;
        }
        active = ls->segs[ls->nsegs - 1];
        pthread_mutex_unlock(&ls->ix_mu);
    }
    const uint8_t *p = rb->data + LSF_HDR_SIZE;
    size_t n = body;
    uint64_t rec_base = active.size;
    if (active.size == 0) { /* a fresh segment: its header goes with the round */
        lsf_segment_header(rb->data, active.seq);
        p = rb->data;
        n = rb->len;
        rec_base = LSF_HDR_SIZE;
    }

    pthread_mutex_lock(&ls->ix_mu);
    ls->st.rounds++;
    pthread_mutex_unlock(&ls->ix_mu);
    int werr = write_all(ls, active.fd, p, n, active.size);
    if (werr == ENOSPC || werr == EDQUOT) {
        /* Cut what reached the file, and make the cut durable, so a crash
         * cannot leave a half round in front of the next one. */
        int ok = ls->io.ftruncate(ls->io.ctx, active.fd, (off_t)active.size) == 0 &&
                 ls->io.fdatasync(ls->io.ctx, active.fd) == 0;
        int terr = errno;
        pthread_mutex_lock(&ls->ix_mu);
        ls->st.fsyncs++;
        ls_seg_find(ls, active.seq)->zeroed_to = active.size;
        if (!ok)
            ls_fail(ls, "cut back segment %" PRIu64 " after ENOSPC: %s", active.seq,
                    strerror(terr));
        pthread_mutex_unlock(&ls->ix_mu);
        MLOG_W("logstore", "write failed: no space", "dir=%s bytes=%zu", ls->dir, n);
        return ok ? MERR_NOSPACE : MERR_IO;
    }
    if (werr) {
        pthread_mutex_lock(&ls->ix_mu);
        ls_fail(ls, "write segment %" PRIu64 ": %s", active.seq, strerror(werr));
        pthread_mutex_unlock(&ls->ix_mu);
        return MERR_IO;
    }
    uint64_t end = active.size + n;
    uint64_t zeroed = active.zeroed_to;
    if (end > zeroed) zeroed = ls->opts.zero_ahead ? zero_ahead(ls, active.fd, end) : end;
    int serr = ls->io.fdatasync(ls->io.ctx, active.fd) ? errno : 0;

    pthread_mutex_lock(&ls->ix_mu);
    ls->st.fsyncs++;
    if (serr) {
        /* fsyncgate: the kernel may have dropped the dirty pages and cleared
         * the error; a retry could "succeed" without the data. Fail-stop. */
        ls_fail(ls, "fdatasync segment %" PRIu64 ": %s", active.seq, strerror(serr));
        pthread_mutex_unlock(&ls->ix_mu);
        return MERR_IO;
    }
    ls_segment *seg = ls_seg_find(ls, active.seq);
    round_apply_ctx c = {ls, seg, rec_base};
    size_t good;
    uint64_t last = 0;
    char why[128];
    rc = lsf_scan(p + (rec_base - active.size), body, 0, round_apply, &c, &good, &last, why,
                  sizeof(why));
    if (rc) {
        ls_fail(ls, "applying round %" PRIu64 ": %s", seq, rc < 0 ? merr_str(rc) : why);
        pthread_mutex_unlock(&ls->ix_mu);
        return MERR_IO;
    }
    seg->size = end;
    seg->zeroed_to = zeroed;
    ls->next_round = seq + 1;
    ls->st.bytes += n;
    ls->st.records += user_rec;
    if (ncomp) {
        ls->st.compactions++;
        ls->st.compacted_bytes += comp_bytes;
    }
    pthread_mutex_unlock(&ls->ix_mu);
    return 0;
}

static void complete(logstore *ls, logstore_batch *list, int status)
{
    logstore_done stack[64], *done = stack;
    size_t n = 0, cap = 64, nasync = 0;
    for (logstore_batch *b = list; b; b = b->next) nasync += !b->sync;
    if (nasync > cap) {
        done = malloc(nasync * sizeof(*done));
        if (!done) { /* deliver in pieces rather than lose completions */
            done = stack;
        } else {
            cap = nasync;
        }
    }
    pthread_mutex_lock(&ls->ix_mu);
    if (!status) {
        for (logstore_batch *b = list; b; b = b->next) ls->st.batches++;
    }
    pthread_mutex_unlock(&ls->ix_mu);
    logstore_batch *b = list;
    while (b) {
        logstore_batch *next = b->next;
        if (b->sync) {
            pthread_mutex_lock(&ls->q_mu);
            b->status = status;
            b->done = 1;
            pthread_cond_broadcast(&ls->done_cv);
            pthread_mutex_unlock(&ls->q_mu);
        } else {
            done[n++] = (logstore_done){b->id, status};
            logstore_batch_free(b);
            if (n == cap) {
                if (ls->opts.notify) ls->opts.notify(ls->opts.notify_arg, done, n);
                n = 0;
            }
        }
        b = next;
    }
    if (n && ls->opts.notify) ls->opts.notify(ls->opts.notify_arg, done, n);
    if (done != stack) free(done);
}

void *ls_io_main(void *arg)
{
    logstore *ls = arg;
    for (;;) {
        pthread_mutex_lock(&ls->q_mu);
        while (!ls->q_head && !ls->stopping) pthread_cond_wait(&ls->q_cv, &ls->q_mu);
        logstore_batch *list = ls->q_head;
        ls->q_head = ls->q_tail = NULL;
        pthread_mutex_unlock(&ls->q_mu);
        if (!list) break; /* stopping and drained */
        int status = do_round(ls, list);
        if (status == MERR_NOMEM) status = MERR_IO;
        complete(ls, list, status);
        /* Whatever the round superseded may have emptied older segments;
         * deleting them (unlink + directory fsync) waits until the round's
         * batches have been reported. */
        if (!status) ls_delete_dead(ls);
    }
    return NULL;
}
