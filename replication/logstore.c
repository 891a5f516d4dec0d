/* The log store object: opening a directory and recovering the index from its
 * segments (cutting a torn tail, refusing damage elsewhere), batches, submit,
 * the synchronous write, reads and stats. The I/O thread, group commit and
 * compaction are in logstore_io.c. */
#include "replication/logstore_int.h"

#include "common/log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t posix_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}
static int posix_fdatasync(void *ctx, int fd)
{
    return fdatasync(fd);
}
static int posix_fsync(void *ctx, int fd)
{
    return fsync(fd);
}
static int posix_ftruncate(void *ctx, int fd, off_t len)
{
    return ftruncate(fd, len);
}

const logstore_io logstore_posix_io = {posix_pwrite, posix_fdatasync, posix_fsync, posix_ftruncate,
                                       NULL};

void ls_seg_path(const logstore *ls, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/seg-%016" PRIx64 ".log", ls->dir, seq);
}

ls_segment *ls_seg_find(logstore *ls, uint64_t seq)
{
    size_t lo = 0, hi = ls->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ls->segs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ls->nsegs && ls->segs[lo].seq == seq ? &ls->segs[lo] : NULL;
}

/* Appends a segment (seq above every existing one). */
int ls_seg_add(logstore *ls, uint64_t seq, int fd, uint64_t size)
{
    if (ls->nsegs == ls->capsegs) {
        size_t cap = ls->capsegs ? ls->capsegs * 2 : 16;
        ls_segment *s = realloc(ls->segs, cap * sizeof(*s));
        if (!s) return MERR_NOMEM;
        ls->segs = s;
        ls->capsegs = cap;
    }
    ls->segs[ls->nsegs++] = (ls_segment){.seq = seq, .fd = fd, .size = size};
    return 0;
}

void ls_live(void *arg, uint64_t seg, int64_t delta)
{
    logstore *ls = arg;
    ls_segment *s = ls_seg_find(ls, seg);
    assert(s); /* records only ever come from segments in the table */
    if (!s) return;
    s->live = (uint64_t)((int64_t)s->live + delta);
    ls->st.live_bytes = (uint64_t)((int64_t)ls->st.live_bytes + delta);
}

void ls_fail(logstore *ls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!ls->failed) vsnprintf(ls->err, sizeof(ls->err), fmt, ap);
    va_end(ap);
    if (!ls->failed)
        MLOG_E("logstore", "store failed; restart to recover", "dir=%s err=\"%s\"", ls->dir,
               ls->err);
    __atomic_store_n(&ls->failed, 1, __ATOMIC_RELEASE);
    ls->st.failed = 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sequence numbers of the segment files in the directory, ascending. */
static int list_segments(logstore *ls, uint64_t **out, size_t *n, merr *e)
{
    DIR *d = opendir(ls->dir);
    if (!d) return merr_set(e, merr_from_errno(errno), "open dir %s: %s", ls->dir, strerror(errno));
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        /* Exactly our own names: "seg-" 16 lowercase hex digits ".log". */
        const char *nm = de->d_name;
        if (strlen(nm) != 24 || strncmp(nm, "seg-", 4) || strcmp(nm + 20, ".log") ||
            strspn(nm + 4, "0123456789abcdef") != 16)
            continue;
        uint64_t seq = strtoull(nm + 4, NULL, 16);
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                free(v);
                closedir(d);
                return merr_set(e, MERR_NOMEM, "list %s", ls->dir);
            }
            v = nv;
        }
        v[len++] = seq;
    }
    closedir(d);
    if (len) qsort(v, len, sizeof(*v), cmp_u64);
    *out = v;
    *n = len;
    return 0;
}

static int read_file(int fd, const char *path, mbuf *b, merr *e)
{
    struct stat sb;
    if (fstat(fd, &sb))
        return merr_set(e, merr_from_errno(errno), "stat %s: %s", path, strerror(errno));
    mbuf_reset(b);
    if (mbuf_reserve(b, (size_t)sb.st_size + 1)) return merr_set(e, MERR_NOMEM, "read %s", path);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = pread(fd, b->data + got, (size_t)sb.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return merr_set(e, merr_from_errno(errno), "read %s: %s", path, strerror(errno));
        if (r == 0) break;
        got += (size_t)r;
    }
    b->len = got;
    return 0;
}

typedef struct recover_ctx {
    logstore *ls;
    uint64_t seq;
} recover_ctx;

static int recover_apply(void *arg, const lsf_rec *r, uint64_t off)
{
    recover_ctx *c = arg;
    if (r->type == LSF_COMMIT) {
        /* Round numbers only grow, across segments too. */
        if (r->slot < c->ls->next_round) return MERR_CORRUPT;
        c->ls->next_round = r->slot + 1;
    }
    if (r->type == LSF_DROP) ls_seg_find(c->ls, c->seq)->has_drop = 1;
    return lsx_apply(&c->ls->ix, r, (lsx_loc){c->seq, off, r->rec_len});
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* Replays one segment into the index. The last segment may end in a torn or
 * corrupt tail, which is cut; anywhere else that is acknowledged data we
 * cannot read, and opening fails rather than silently dropping it. */
static int recover_segment(logstore *ls, uint64_t seq, int last, mbuf *buf, merr *e)
{
    char path[4096], why[256];
    ls_seg_path(ls, seq, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return merr_set(e, merr_from_errno(errno), "open %s: %s", path, strerror(errno));
    int rc = read_file(fd, path, buf, e);
    if (rc) goto err;
    if (buf->len < LSF_HDR_SIZE || lsf_segment_header_check(buf->data, buf->len, seq)) {
        if (!last || (buf->len >= LSF_HDR_SIZE && memcmp(buf->data, LSF_MAGIC, 8) == 0)) {
            rc = merr_set(e, MERR_CORRUPT, "%s: bad segment header (%zu bytes)", path, buf->len);
            goto err;
        }
        /* A segment created just before a crash, its header not (fully)
         * written: it holds no committed round. */
        if (buf->len) {
            MLOG_W("logstore", "cutting torn segment header", "file=%s bytes=%zu", path, buf->len);
            ls->st.cut_bytes += buf->len;
            if (ls->io.ftruncate(ls->io.ctx, fd, 0) || ls->io.fdatasync(ls->io.ctx, fd)) {
                rc = merr_set(e, merr_from_errno(errno), "truncate %s: %s", path, strerror(errno));
                goto err;
            }
        }
        rc = ls_seg_add(ls, seq, fd, 0);
        if (rc) {
            merr_set(e, rc, "open %s: out of memory", path);
            goto err;
        }
        return 0;
    }
    rc = ls_seg_add(ls, seq, fd, LSF_HDR_SIZE);
    if (rc) {
        merr_set(e, rc, "open %s: out of memory", path);
        goto err;
    }
    recover_ctx c = {ls, seq};
    size_t good;
    uint64_t last_seq = 0;
    rc = lsf_scan(buf->data, buf->len, LSF_HDR_SIZE, recover_apply, &c, &good, &last_seq, why,
                  sizeof(why));
    if (rc < 0) {
        fd = -1; /* owned by the segment table now */
        return merr_set(e, rc, "%s: replay: %s", path,
                        rc == MERR_CORRUPT ? "round numbers out of order" : merr_str(rc));
    }
    ls->segs[ls->nsegs - 1].size = good;
    ls->segs[ls->nsegs - 1].zeroed_to = good;
    if (rc == 1 && last && ls->opts.zero_ahead && all_zero(buf->data + good, buf->len - good)) {
        /* Zero-ahead (logstore_io.c): room written for later rounds, never
         * data; the next round overwrites it. Only the last segment has any
         * (it is trimmed before the next one is created). Without the option
         * such a tail is cut, with a warning, as it always was. */
        ls->segs[ls->nsegs - 1].zeroed_to = buf->len;
        rc = 0;
    }
    if (rc == 1) {
        if (!last)
            return merr_set(e, MERR_CORRUPT,
                            "%s: %s in a segment that is not the last; refusing to open, "
                            "acknowledged data would be lost",
                            path, why);
        /* Rounds are written one at a time, each after the previous one's
         * fdatasync: a crash can only tear the last round. A later intact round
         * means the damaged one had been acknowledged. */
        long later = lsf_find_commit_after(buf->data, buf->len, good + 1, ls->next_round + 1);
        if (later >= 0)
            return merr_set(e, MERR_CORRUPT,
                            "%s: %s, yet an intact later round ends at offset %ld; refusing "
                            "to open, acknowledged data would be lost",
                            path, why, later);
        MLOG_W("logstore", "cutting torn tail", "file=%s at=%zu bytes=%zu why=\"%s\"", path, good,
               buf->len - good, why);
        ls->st.cut_bytes += buf->len - good;
        if (ls->io.ftruncate(ls->io.ctx, fd, (off_t)good) || ls->io.fdatasync(ls->io.ctx, fd))
            return merr_set(e, merr_from_errno(errno), "truncate %s: %s", path, strerror(errno));
    }
    return 0;
err:
    if (fd >= 0) close(fd);
    return rc;
}

static int make_dir(const char *dir, merr *e)
{
    if (mkdir(dir, 0755) == 0) {
        /* Make the new directory's entry durable in its parent. */
        char parent[4096];
        snprintf(parent, sizeof(parent), "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash == parent)
            parent[1] = 0;
        else if (slash)
            *slash = 0;
        else
            snprintf(parent, sizeof(parent), ".");
        int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0) {
            int rc = fsync(pfd);
            close(pfd);
            if (rc) return merr_set(e, MERR_IO, "fsync %s: %s", parent, strerror(errno));
        }
        return 0;
    }
    if (errno == EEXIST) return 0;
    return merr_set(e, merr_from_errno(errno), "mkdir %s: %s", dir, strerror(errno));
}

int logstore_open(const char *dir, const logstore_opts *opts, logstore **out, merr *e)
{
    int rc;
    uint64_t *seqs = NULL;
    size_t nseq = 0;
    mbuf buf = MBUF_INIT;
    logstore *ls = calloc(1, sizeof(*ls));
    if (!ls) return merr_set(e, MERR_NOMEM, "open log store %s", dir);
    ls->dirfd = ls->lockfd = -1;
    pthread_mutex_init(&ls->ix_mu, NULL);
    pthread_mutex_init(&ls->q_mu, NULL);
    pthread_cond_init(&ls->q_cv, NULL);
    pthread_cond_init(&ls->done_cv, NULL);
    if (opts) ls->opts = *opts;
    if (!ls->opts.segment_size) ls->opts.segment_size = LOGSTORE_DEFAULT_SEGMENT_SIZE;
    if (ls->opts.compact_live_ratio <= 0) ls->opts.compact_live_ratio = 0.25;
    ls->io = ls->opts.io ? *ls->opts.io : logstore_posix_io;
    ls->next_round = 1;
    ls->dir = strdup(dir);
    if (!ls->dir) {
        rc = merr_set(e, MERR_NOMEM, "open log store %s", dir);
        goto err;
    }
    rc = lsx_init(&ls->ix, ls_live, ls);
    if (rc) goto err_msg;
    rc = make_dir(dir, e);
    if (rc) goto err;
    ls->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ls->dirfd < 0) {
        rc = merr_set(e, merr_from_errno(errno), "open %s: %s", dir, strerror(errno));
        goto err;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    ls->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (ls->lockfd < 0) {
        rc = merr_set(e, merr_from_errno(errno), "open %s: %s", path, strerror(errno));
        goto err;
    }
    if (flock(ls->lockfd, LOCK_EX | LOCK_NB)) {
        rc = merr_set(e, MERR_BUSY, "log store %s is in use by another process", dir);
        goto err;
    }
    rc = list_segments(ls, &seqs, &nseq, e);
    if (rc) goto err;
    for (size_t i = 0; i < nseq; i++) {
        rc = recover_segment(ls, seqs[i], i + 1 == nseq, &buf, e);
        if (rc) goto err;
    }
    mbuf_free(&buf);
    free(seqs);
    seqs = NULL;
    if (ls->nsegs == 0) {
        /* A fresh store: its first segment, empty until the first round. */
        ls_seg_path(ls, 1, path, sizeof(path));
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = merr_set(e, merr_from_errno(errno), "create %s: %s", path, strerror(errno));
            goto err;
        }
        if (ls->io.fsync_dir(ls->io.ctx, ls->dirfd)) {
            close(fd);
            rc = merr_set(e, MERR_IO, "fsync dir %s: %s", dir, strerror(errno));
            goto err;
        }
        rc = ls_seg_add(ls, 1, fd, 0);
        if (rc) {
            close(fd);
            goto err_msg;
        }
    }
    ls->st.groups = ls->ix.ngroups;
    /* Segments left fully dead by a crash between a compaction and its
     * deletion go now. */
    rc = ls_delete_dead(ls);
    if (rc) {
        rc = merr_set(e, rc, "%s", ls->err);
        goto err;
    }
    if (pthread_create(&ls->thread, NULL, ls_io_main, ls)) {
        rc = merr_set(e, MERR_INTERNAL, "log store %s: cannot start the I/O thread", dir);
        goto err;
    }
    ls->thread_started = 1;
    MLOG_I("logstore", "opened", "dir=%s segments=%zu groups=%zu next_round=%" PRIu64, dir,
           ls->nsegs, ls->ix.ngroups, ls->next_round);
    *out = ls;
    return 0;
err_msg:
    merr_set(e, rc, "open log store %s: %s", dir, merr_str(rc));
err:
    mbuf_free(&buf);
    free(seqs);
    logstore_close(ls);
    return rc;
}

void logstore_close(logstore *ls)
{
    if (!ls) return;
    if (ls->thread_started) {
        pthread_mutex_lock(&ls->q_mu);
        ls->stopping = 1;
        pthread_cond_broadcast(&ls->q_cv);
        pthread_mutex_unlock(&ls->q_mu);
        pthread_join(ls->thread, NULL);
    }
    lsx_free(&ls->ix);
    for (size_t i = 0; i < ls->nsegs; i++) {
        /* A clean close leaves no zero-ahead room behind (best effort: open
         * would skip it anyway). */
        ls_segment *g = &ls->segs[i];
        if (g->zeroed_to > g->size) ls->io.ftruncate(ls->io.ctx, g->fd, (off_t)g->size);
        close(g->fd);
    }
    free(ls->segs);
    if (ls->dirfd >= 0) close(ls->dirfd);
    if (ls->lockfd >= 0) close(ls->lockfd); /* releases the flock */
    mbuf_free(&ls->round);
    pthread_mutex_destroy(&ls->ix_mu);
    pthread_mutex_destroy(&ls->q_mu);
    pthread_cond_destroy(&ls->q_cv);
    pthread_cond_destroy(&ls->done_cv);
    free(ls->dir);
    free(ls);
}

/* ---- batches ---- */

logstore_batch *logstore_batch_new(uint64_t id)
{
    logstore_batch *b = calloc(1, sizeof(*b));
    if (b) b->id = id;
    return b;
}

void logstore_batch_free(logstore_batch *b)
{
    if (!b) return;
    mbuf_free(&b->rec);
    free(b);
}

static int batch_add(logstore_batch *b, uint8_t type, uint64_t group, uint64_t slot,
                     uint64_t ballot, const void *p, size_t n)
{
    int rc = lsf_encode(&b->rec, type, group, slot, ballot, p, n);
    if (!rc) b->nrec++;
    return rc;
}

int logstore_batch_hardstate(logstore_batch *b, uint64_t group, const void *p, size_t n)
{
    return batch_add(b, LSF_HARDSTATE, group, 0, 0, p, n);
}

int logstore_batch_entry(logstore_batch *b, uint64_t group, uint64_t slot, uint64_t ballot,
                         const void *p, size_t n)
{
    return batch_add(b, LSF_ENTRY, group, slot, ballot, p, n);
}

int logstore_batch_truncate(logstore_batch *b, uint64_t group, uint64_t slot)
{
    return batch_add(b, LSF_TRUNCATE, group, slot, 0, NULL, 0);
}

int logstore_batch_drop(logstore_batch *b, uint64_t group)
{
    return batch_add(b, LSF_DROP, group, 0, 0, NULL, 0);
}

size_t logstore_batch_records(const logstore_batch *b)
{
    return b->nrec;
}

/* ---- submit ---- */

static int enqueue(logstore *ls, logstore_batch *b)
{
    /* Never touches ix_mu: the I/O thread may hold it while it reads a segment
     * for compaction, and the event loop must not wait for disk. */
    pthread_mutex_lock(&ls->q_mu);
    int rc = ls->stopping ? MERR_CLOSED : 0;
    if (!rc && __atomic_load_n(&ls->failed, __ATOMIC_ACQUIRE)) rc = MERR_IO;
    if (!rc) {
        b->next = NULL;
        if (ls->q_tail)
            ls->q_tail->next = b;
        else
            ls->q_head = b;
        ls->q_tail = b;
        pthread_cond_signal(&ls->q_cv);
    }
    pthread_mutex_unlock(&ls->q_mu);
    return rc;
}

int logstore_submit(logstore *ls, logstore_batch *b)
{
    b->sync = 0;
    int rc = enqueue(ls, b);
    if (rc) logstore_batch_free(b);
    return rc;
}

int logstore_write(logstore *ls, logstore_batch *b, merr *e)
{
    b->sync = 1;
    b->done = 0;
    int rc = enqueue(ls, b);
    if (rc) {
        logstore_batch_free(b);
        return merr_set(e, rc, "log store %s: %s", ls->dir,
                        rc == MERR_IO ? logstore_error(ls) : merr_str(rc));
    }
    pthread_mutex_lock(&ls->q_mu);
    while (!b->done) pthread_cond_wait(&ls->done_cv, &ls->q_mu);
    pthread_mutex_unlock(&ls->q_mu);
    rc = b->status;
    logstore_batch_free(b);
    if (rc)
        return merr_set(e, rc, "log store %s: %s", ls->dir,
                        rc == MERR_IO ? logstore_error(ls) : merr_str(rc));
    return 0;
}

/* ---- reads ---- */

int logstore_group_info_get(logstore *ls, uint64_t group, logstore_group_info *out)
{
    memset(out, 0, sizeof(*out));
    out->group = group;
    pthread_mutex_lock(&ls->ix_mu);
    const lsx_group *g = lsx_find(&ls->ix, group);
    if (g) {
        out->has_hardstate = g->hs_loc.seg != 0;
        out->truncated = g->trunc;
        out->n_entries = g->n;
        if (g->n) {
            out->first_slot = g->ents[0].slot;
            out->last_slot = g->ents[g->n - 1].slot;
        }
    }
    pthread_mutex_unlock(&ls->ix_mu);
    return g ? 0 : MERR_NOTFOUND;
}

int logstore_hardstate(logstore *ls, uint64_t group, mbuf *out)
{
    int rc = MERR_NOTFOUND;
    mbuf_reset(out);
    pthread_mutex_lock(&ls->ix_mu);
    const lsx_group *g = lsx_find(&ls->ix, group);
    if (g && g->hs_loc.seg) rc = mbuf_append(out, g->hs, g->hs_len);
    pthread_mutex_unlock(&ls->ix_mu);
    return rc;
}

/* Reads the first present entry of `group` at or after *slot (up to `to`) into
 * val and sets *slot and *ballot. MERR_NOTFOUND if there is none. */
static int read_entry_from(logstore *ls, uint64_t group, uint64_t *slot, uint64_t to, int exact,
                           uint64_t *ballot, mbuf *val, merr *e)
{
    int rc = 0;
    mbuf_reset(val);
    /* Under ix_mu so compaction cannot delete the segment under the pread. */
    pthread_mutex_lock(&ls->ix_mu);
    const lsx_group *g = lsx_find(&ls->ix, group);
    const lsx_entry *en = g ? (exact ? lsx_get(g, *slot) : lsx_get_from(g, *slot)) : NULL;
    if (!en || en->slot > to) {
        rc = MERR_NOTFOUND;
        goto out;
    }
    uint64_t at = en->slot;
    ls_segment *s = ls_seg_find(ls, en->loc.seg);
    if (!s) { /* cannot happen: live records keep their segment */
        rc = merr_set(e, MERR_INTERNAL, "read group %" PRIu64 " slot %" PRIu64 ": no segment",
                      group, at);
        goto out;
    }
    rc = mbuf_reserve(val, en->loc.rec_len);
    if (rc) goto out;
    size_t got = 0;
    while (got < en->loc.rec_len) {
        ssize_t r =
            pread(s->fd, val->data + got, en->loc.rec_len - got, (off_t)(en->loc.off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = merr_set(e, r < 0 ? merr_from_errno(errno) : MERR_CORRUPT,
                          "read group %" PRIu64 " slot %" PRIu64 ": %s", group, at,
                          r < 0 ? strerror(errno) : "short segment");
            goto out;
        }
        got += (size_t)r;
    }
    /* Checked again: the disk or page cache may have changed since recovery. */
    lsf_rec r;
    if (lsf_decode(val->data, got, &r) || r.type != LSF_ENTRY || r.group != group || r.slot != at) {
        rc = merr_set(e, MERR_CORRUPT, "read group %" PRIu64 " slot %" PRIu64 ": bad record", group,
                      at);
        goto out;
    }
    *slot = at;
    *ballot = r.ballot;
    memmove(val->data, r.payload, r.len);
    val->len = r.len;
out:
    pthread_mutex_unlock(&ls->ix_mu);
    if (rc) mbuf_reset(val);
    return rc;
}

int logstore_entry(logstore *ls, uint64_t group, uint64_t slot, uint64_t *ballot, mbuf *val,
                   merr *e)
{
    return read_entry_from(ls, group, &slot, slot, 1, ballot, val, e);
}

int logstore_scan(logstore *ls, uint64_t group, uint64_t from, uint64_t to, logstore_scan_fn fn,
                  void *arg, merr *e)
{
    mbuf val = MBUF_INIT;
    int rc = 0;
    for (uint64_t slot = from; slot <= to;) {
        uint64_t ballot;
        rc = read_entry_from(ls, group, &slot, to, 0, &ballot, &val, e);
        if (rc == MERR_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) break;
        rc = fn(arg, slot, ballot, val.data, val.len);
        if (rc || slot == UINT64_MAX) break;
        slot++;
    }
    mbuf_free(&val);
    return rc;
}

typedef struct ids_ctx {
    uint64_t *v;
    size_t n;
} ids_ctx;

static int collect_id(void *arg, const lsx_group *g)
{
    ids_ctx *c = arg;
    c->v[c->n++] = g->id;
    return 0;
}

int logstore_groups(logstore *ls, uint64_t **ids, size_t *n)
{
    pthread_mutex_lock(&ls->ix_mu);
    ids_ctx c = {malloc((ls->ix.ngroups ? ls->ix.ngroups : 1) * sizeof(uint64_t)), 0};
    if (c.v) lsx_each(&ls->ix, collect_id, &c);
    pthread_mutex_unlock(&ls->ix_mu);
    if (!c.v) return MERR_NOMEM;
    if (c.n) qsort(c.v, c.n, sizeof(uint64_t), cmp_u64);
    *ids = c.v;
    *n = c.n;
    return 0;
}

void logstore_get_stats(logstore *ls, logstore_stats *st)
{
    pthread_mutex_lock(&ls->ix_mu);
    *st = ls->st;
    st->segments = ls->nsegs;
    st->groups = ls->ix.ngroups;
    st->disk_bytes = 0;
    for (size_t i = 0; i < ls->nsegs; i++) st->disk_bytes += ls->segs[i].size;
    pthread_mutex_unlock(&ls->ix_mu);
}

const char *logstore_error(logstore *ls)
{
    /* err is written once, before failed is set with release order. */
    return __atomic_load_n(&ls->failed, __ATOMIC_ACQUIRE) ? ls->err : "";
}
