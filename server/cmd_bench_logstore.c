/* `meridian bench logstore`: throughput and commit latency of the replication
 * log store's group commit. W writer threads play event loops: each keeps up to
 * --window batches in flight, every batch carrying --batch entries of random
 * groups it owns (and a truncation now and then, so compaction runs too). The
 * same run first times a raw write+fdatasync loop on the same disk, so the
 * report can say what group commit buys over one fsync per batch. */
#include "common/cli.h"
#include "common/mtime.h"
#include "replication/logstore.h"
#include "server/commands.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bench {
    logstore *ls;
    int64_t groups, batch, value_size, writers, window;
    int64_t deadline;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t *inflight;  /* per writer */
    int64_t *submit_ns; /* per writer ring of window slots, by batch seq */
    int64_t *lat;       /* completed batch latencies */
    size_t nlat, caplat;
    uint64_t failed;
} bench;

static void bench_notify(void *arg, const logstore_done *d, size_t n)
{
    bench *b = arg;
    int64_t now = mtime_mono_ns();
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < n; i++) {
        uint64_t w = d[i].id >> 48, seq = d[i].id & 0xffffffffffffULL;
        int64_t t0 = b->submit_ns[w * (uint64_t)b->window + seq % (uint64_t)b->window];
        if (d[i].status) b->failed++;
        if (b->nlat == b->caplat) {
            size_t cap = b->caplat ? b->caplat * 2 : 1 << 16;
            int64_t *l = realloc(b->lat, cap * sizeof(*l));
            if (l) {
                b->lat = l;
                b->caplat = cap;
            }
        }
        if (b->nlat < b->caplat) b->lat[b->nlat++] = now - t0;
        b->inflight[w]--;
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

typedef struct writer {
    bench *b;
    uint64_t w;
    uint64_t submitted;
} writer;

static void *writer_main(void *arg)
{
    writer *wr = arg;
    bench *b = wr->b;
    uint64_t rs = 0x9e3779b97f4a7c15ULL * (wr->w + 1);
    /* Writer w owns groups g with g % writers == w, as a node's groups are
     * spread over its event loops. */
    int64_t mine = (b->groups + b->writers - 1 - (int64_t)wr->w) / b->writers;
    if (mine < 1) mine = 1;
    uint64_t *next_slot = calloc((size_t)mine, sizeof(uint64_t));
    uint8_t *val = malloc((size_t)b->value_size + 1);
    if (!next_slot || !val) goto out;
    memset(val, 'v', (size_t)b->value_size);
    for (uint64_t seq = 0; mtime_mono_ns() < b->deadline; seq++) {
        pthread_mutex_lock(&b->mu);
        while (b->inflight[wr->w] >= b->window) pthread_cond_wait(&b->cv, &b->mu);
        b->inflight[wr->w]++;
        pthread_mutex_unlock(&b->mu);
        logstore_batch *bt = logstore_batch_new((wr->w << 48) | seq);
        if (!bt) break;
        for (int64_t i = 0; i < b->batch; i++) {
            rs ^= rs << 13;
            rs ^= rs >> 7;
            rs ^= rs << 17;
            uint64_t k = rs % (uint64_t)mine;
            uint64_t g = k * (uint64_t)b->writers + wr->w + 1;
            uint64_t slot = ++next_slot[k];
            logstore_batch_entry(bt, g, slot, 1, val, (size_t)b->value_size);
            if (slot % 256 == 0) logstore_batch_truncate(bt, g, slot - 128);
        }
        b->submit_ns[wr->w * (uint64_t)b->window + seq % (uint64_t)b->window] = mtime_mono_ns();
        if (logstore_submit(b->ls, bt)) {
            pthread_mutex_lock(&b->mu);
            b->failed++;
            pthread_mutex_unlock(&b->mu);
            break;
        }
        wr->submitted++;
    }
    /* Wait for our in-flight batches before the store closes. */
    pthread_mutex_lock(&b->mu);
    while (b->inflight[wr->w] > 0) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
out:
    free(next_slot);
    free(val);
    return NULL;
}

/* One write of `size` bytes + fdatasync, repeated for `dur` ns. */
static int raw_fsync_loop(const char *dir, int64_t size, int64_t dur, double *per_s)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/raw-fsync.bench", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    char *buf = calloc(1, (size_t)size);
    int64_t t0 = mtime_mono_ns(), n = 0, off = 0;
    while (buf && mtime_mono_ns() - t0 < dur) {
        if (pwrite(fd, buf, (size_t)size, off) != size || fdatasync(fd)) break;
        off += size;
        n++;
    }
    double secs = (double)(mtime_mono_ns() - t0) / 1e9;
    free(buf);
    close(fd);
    unlink(path);
    *per_s = n / secs;
    return n ? 0 : -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void rm_store(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[4400];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int cmd_bench_logstore(int argc, char **argv)
{
    int64_t groups = 1000, batch = 8, value_size = 256, writers = 4, window = 64;
    int64_t duration = 5 * MTIME_S, segment = LOGSTORE_DEFAULT_SEGMENT_SIZE;
    const char *dir_flag = NULL;
    const cli_flag flags[] = {
        {"groups", CLI_INT, &groups, "G", "Paxos groups written (default 1000)"},
        {"batch", CLI_INT, &batch, "B", "entries per batch (default 8)"},
        {"value-size", CLI_SIZE, &value_size, "S", "bytes per entry value (default 256)"},
        {"writers", CLI_INT, &writers, "W", "submitting threads (default 4)"},
        {"window", CLI_INT, &window, "N", "batches in flight per writer (default 64)"},
        {"duration", CLI_DURATION, &duration, "D", "how long to write (default 5s)"},
        {"segment-size", CLI_SIZE, &segment, "S", "segment file size (default 64MiB)"},
        {"dir", CLI_STR, &dir_flag, "PATH",
         "where to put the store folder (default $TMPDIR or /tmp)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[1]);
        return CLI_EXIT_USAGE;
    }
    if (groups < 1 || batch < 1 || writers < 1 || writers > 256 || window < 1 || value_size < 0 ||
        value_size > LOGSTORE_MAX_VALUE || duration <= 0 || segment < 4096) {
        fprintf(stderr,
                "%s: groups, batch, writers (<=256), window must be >= 1, value-size "
                "<= 32MiB, duration > 0, segment-size >= 4KiB\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    /* Always a fresh folder of our own (inside --dir if given), removed at the end. */
    char dir[4096];
    const char *base = dir_flag ? dir_flag : getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/meridian-bench-logstore-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", argv[0], dir, strerror(errno));
        return 1;
    }

    bench b = {.groups = groups,
               .batch = batch,
               .value_size = value_size,
               .writers = writers,
               .window = window};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    b.inflight = calloc((size_t)writers, sizeof(int64_t));
    b.submit_ns = calloc((size_t)(writers * window), sizeof(int64_t));
    writer *ws = calloc((size_t)writers, sizeof(writer));
    pthread_t *th = calloc((size_t)writers, sizeof(pthread_t));
    int status = 1;
    if (!b.inflight || !b.submit_ns || !ws || !th) goto out;

    /* The disk's own cost first: one fdatasync per write of a typical batch. */
    int64_t batch_bytes = batch * (value_size + 33);
    double raw_per_s = 0;
    int64_t raw_dur = duration / 2 < 2 * MTIME_S ? duration / 2 : 2 * MTIME_S;
    if (raw_fsync_loop(dir, batch_bytes, raw_dur, &raw_per_s)) {
        fprintf(stderr, "%s: raw write+fdatasync in %s failed: %s\n", argv[0], dir,
                strerror(errno));
        goto out;
    }

    logstore_opts o = {.segment_size = (uint64_t)segment, .notify = bench_notify, .notify_arg = &b};
    merr e = {0};
    if (logstore_open(dir, &o, &b.ls, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], merr_msg(&e));
        goto out;
    }
    int64_t t0 = mtime_mono_ns();
    b.deadline = t0 + duration;
    for (int64_t i = 0; i < writers; i++) {
        ws[i] = (writer){&b, (uint64_t)i, 0};
        pthread_create(&th[i], NULL, writer_main, &ws[i]);
    }
    for (int64_t i = 0; i < writers; i++) pthread_join(th[i], NULL);
    double secs = (double)(mtime_mono_ns() - t0) / 1e9;
    logstore_stats st;
    logstore_get_stats(b.ls, &st);
    logstore_close(b.ls);
    b.ls = NULL;

    /* Recovery: how long a restart takes to rebuild the index from disk. */
    logstore_opts ro = {.segment_size = (uint64_t)segment};
    int64_t r0 = mtime_mono_ns();
    logstore *rls = NULL;
    if (logstore_open(dir, &ro, &rls, &e)) {
        fprintf(stderr, "%s: reopen: %s\n", argv[0], merr_msg(&e));
        goto out;
    }
    int64_t reopen_ns = mtime_mono_ns() - r0;
    logstore_stats rst;
    logstore_get_stats(rls, &rst);
    logstore_close(rls);

    qsort(b.lat, b.nlat, sizeof(int64_t), cmp_i64);
    char p50[32] = "-", p99[32] = "-", pmax[32] = "-";
    if (b.nlat) {
        cli_format_duration(b.lat[b.nlat / 2], p50, sizeof(p50));
        cli_format_duration(b.lat[(size_t)((double)b.nlat * 0.99)], p99, sizeof(p99));
        cli_format_duration(b.lat[b.nlat - 1], pmax, sizeof(pmax));
    }
    double bps = (double)st.batches / secs, fps = (double)st.fsyncs / secs;
    printf("logstore bench: groups=%lld batch=%lld value=%lldB writers=%lld window=%lld "
           "duration=%.1fs\n",
           (long long)groups, (long long)batch, (long long)value_size, (long long)writers,
           (long long)window, secs);
    printf("  batches/s      %.0f\n", bps);
    printf("  records/s      %.0f\n", (double)st.records / secs);
    printf("  MB/s           %.1f written (%.1f of it compaction rewrites)\n",
           (double)st.bytes / secs / 1e6, (double)st.compacted_bytes / secs / 1e6);
    printf("  fsyncs/s       %.0f\n", fps);
    printf("  batches/fsync  %.1f (coalescing factor)\n",
           st.fsyncs ? (double)st.batches / (double)st.fsyncs : 0);
    printf("  commit latency p50 %s  p99 %s  max %s\n", p50, p99, pmax);
    printf("  compactions    %llu rounds, %llu segments deleted, %llu left (%.1f MB on disk)\n",
           (unsigned long long)st.compactions, (unsigned long long)st.segments_deleted,
           (unsigned long long)st.segments, (double)st.disk_bytes / 1e6);
    printf("  raw write(%lldB)+fdatasync loop: %.0f/s (%.0f us each)\n", (long long)batch_bytes,
           raw_per_s, 1e6 / raw_per_s);
    printf("  ratio: store batches/s / raw fsyncs/s = %.1fx; store fsyncs/s / raw = %.2f\n",
           bps / raw_per_s, fps / raw_per_s);
    char rt[32];
    cli_format_duration(reopen_ns, rt, sizeof(rt));
    printf("  reopen         %s for %.1f MB in %llu segments, %llu groups\n", rt,
           (double)rst.disk_bytes / 1e6, (unsigned long long)rst.segments,
           (unsigned long long)rst.groups);
    if (b.failed) printf("  FAILED batches: %llu\n", (unsigned long long)b.failed);
    status = b.failed ? 1 : 0;
out:
    rm_store(dir);
    free(b.inflight);
    free(b.submit_ns);
    free(b.lat);
    free(ws);
    free(th);
    return status;
}
