/* `meridian bench storage`: MVCC point reads and batched writes on one range
 * against raw SQLite doing the same operations on a plain key->value table
 * with the same settings, in the same run; prints ops/s and the ratios. */
#include "common/cli.h"
#include "common/mtime.h"
#include "server/commands.h"
#include "storage/range.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bench_cfg {
    int64_t keys, value_size, batch, duration_ns;
    int cache_kib;
} bench_cfg;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Keys are 13 bytes: "key" + 10 digits, so both sides store the same bytes. */
static void key_of(uint64_t i, char *k)
{
    snprintf(k, 32, "key%010llu", (unsigned long long)(i % 10000000000ull));
}

/* ---- raw SQLite side ---- */

typedef struct raw {
    sqlite3 *db;
    sqlite3_stmt *put, *get, *scan, *begin, *commit;
} raw;

#define SCAN_ROWS 100

static int raw_open(raw *r, const char *path, int cache_kib)
{
    char sql[512];
    /* The same settings as storage/range_db.c, so only the data model differs. */
    snprintf(sql, sizeof(sql),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-%d;"
             " PRAGMA mmap_size=0; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=1000;"
             " PRAGMA journal_size_limit=4194304;"
             " CREATE TABLE kv(key BLOB PRIMARY KEY, val BLOB) WITHOUT ROWID;",
             cache_kib);
    if (sqlite3_open(path, &r->db) != SQLITE_OK ||
        sqlite3_exec(r->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO kv VALUES (?1, ?2)", -1, &r->put, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(r->db, "SELECT val FROM kv WHERE key = ?1", -1, &r->get, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(r->db, "SELECT key, val FROM kv WHERE key >= ?1 ORDER BY key LIMIT 100",
                           -1, &r->scan, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db, "BEGIN IMMEDIATE", -1, &r->begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db, "COMMIT", -1, &r->commit, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench storage: raw sqlite: %s\n", sqlite3_errmsg(r->db));
        return -1;
    }
    return 0;
}

static void raw_close(raw *r)
{
    sqlite3_finalize(r->put);
    sqlite3_finalize(r->get);
    sqlite3_finalize(r->scan);
    sqlite3_finalize(r->begin);
    sqlite3_finalize(r->commit);
    sqlite3_close(r->db);
}

static int raw_step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int raw_batch(raw *r, const bench_cfg *c, uint64_t *rng, const uint8_t *val, int seq)
{
    char k[32];
    if (raw_step(r->begin)) return -1;
    for (int64_t j = 0; j < c->batch; j++) {
        key_of(seq >= 0 ? (uint64_t)seq * (uint64_t)c->batch + (uint64_t)j
                        : rng_next(rng) % (uint64_t)c->keys,
               k);
        sqlite3_bind_blob(r->put, 1, k, 13, SQLITE_STATIC);
        sqlite3_bind_blob(r->put, 2, val, (int)c->value_size, SQLITE_STATIC);
        if (raw_step(r->put)) return -1;
    }
    return raw_step(r->commit);
}

static int raw_read(raw *r, uint64_t i, uint8_t *out)
{
    char k[32];
    key_of(i, k);
    sqlite3_bind_blob(r->get, 1, k, 13, SQLITE_STATIC);
    int rc = sqlite3_step(r->get);
    if (rc == SQLITE_ROW) {
        /* Copy out, as range_get does. */
        int n = sqlite3_column_bytes(r->get, 0);
        uint8_t *v = malloc((size_t)n + 1);
        if (v) memcpy(v, sqlite3_column_blob(r->get, 0), (size_t)n);
        if (v) out[0] ^= v[0];
        free(v);
    }
    sqlite3_reset(r->get);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Rows of a SCAN_ROWS-key scan from key i; both sides touch every value. */
static int64_t raw_scan(raw *r, uint64_t i, uint8_t *out)
{
    char k[32];
    key_of(i, k);
    sqlite3_bind_blob(r->scan, 1, k, 13, SQLITE_STATIC);
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(r->scan)) == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(r->scan, 1);
        if (v) out[0] ^= v[0];
        n++;
    }
    sqlite3_reset(r->scan);
    return rc == SQLITE_DONE ? n : -1;
}

/* ---- MVCC side ---- */

static int scan_cb(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, uint64_t ts)
{
    if (vl) *(uint8_t *)arg ^= v[0];
    return 0;
}

static int64_t mvcc_scan(range *r, uint64_t i, uint8_t *out)
{
    char k[32];
    key_of(i, k);
    size_t n = 0;
    if (range_scan(r, (const uint8_t *)k, 13, NULL, 0, RANGE_TS_MAX, SCAN_ROWS, 0, scan_cb, out,
                   &n))
        return -1;
    return (int64_t)n;
}

static int mvcc_batch(range *r, const bench_cfg *c, uint64_t *rng, const uint8_t *val, int seq,
                      uint64_t *slot, range_write *w, char (*keys)[32])
{
    for (int64_t j = 0; j < c->batch; j++) {
        key_of(seq >= 0 ? (uint64_t)seq * (uint64_t)c->batch + (uint64_t)j
                        : rng_next(rng) % (uint64_t)c->keys,
               keys[j]);
        w[j] = (range_write){(const uint8_t *)keys[j], 13, val, (size_t)c->value_size, 0};
    }
    ++*slot;
    range_batch b = {.ts = *slot, .writes = w, .nwrites = (size_t)c->batch};
    int rc = range_apply(r, &b, *slot, NULL);
    if (rc) fprintf(stderr, "bench storage: %s\n", range_err(r)->msg);
    return rc;
}

static int mvcc_read(range *r, uint64_t i, uint8_t *out)
{
    char k[32];
    key_of(i, k);
    uint8_t *v = NULL;
    size_t n = 0;
    int rc = range_get(r, (const uint8_t *)k, 13, RANGE_TS_MAX, &v, &n, NULL);
    if (!rc && v) out[0] ^= v[0];
    free(v);
    return rc;
}

typedef struct result {
    double read_ops, write_ops, scan_rows;
} result;

static int run(const bench_cfg *c, const char *dir, result *mv, result *rw)
{
    char rpath[512], kpath[512];
    snprintf(rpath, sizeof(rpath), "%s/mvcc.db", dir);
    snprintf(kpath, sizeof(kpath), "%s/raw.db", dir);
    uint8_t *val = malloc((size_t)c->value_size + 1);
    range_write *w = calloc((size_t)c->batch, sizeof(*w));
    char(*keys)[32] = calloc((size_t)c->batch, 32);
    range *r = NULL;
    raw k = {0};
    merr e = {0};
    int rc = -1;
    if (!val || !w || !keys) goto out;
    memset(val, 'v', (size_t)c->value_size + 1);
    range_desc d = {1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
    range_opts o = {.cache_kib = c->cache_kib};
    if (range_create(rpath, &d, &o, &r, &e)) {
        fprintf(stderr, "bench storage: %s\n", e.msg);
        goto out;
    }
    if (raw_open(&k, kpath, c->cache_kib)) goto out;
    uint64_t slot = 0, rng = 88172645463325252ull;
    int64_t nbatches = (c->keys + c->batch - 1) / c->batch;
    for (int64_t i = 0; i < nbatches; i++)
        if (mvcc_batch(r, c, &rng, val, (int)i, &slot, w, keys) ||
            raw_batch(&k, c, &rng, val, (int)i))
            goto out;
    uint8_t sink = 0;
    /* Each phase runs in rounds that alternate the two sides, so background
     * load and checkpoints hit both alike; each side replays the same op
     * sequence (same seed). */
    enum { ROUNDS = 6 };
    for (int phase = 0; phase < 3; phase++) {
        int64_t ops[2] = {0, 0}, ns[2] = {0, 0};
        uint64_t seeds[2] = {0x9E3779B97F4A7C15ull + (uint64_t)phase,
                             0x9E3779B97F4A7C15ull + (uint64_t)phase};
        for (int round = 0; round < ROUNDS; round++) {
            for (int side = 0; side < 2; side++) {
                uint64_t *sd = &seeds[side];
                int64_t t0 = mtime_mono_ns(), t1 = t0;
                while ((t1 = mtime_mono_ns()) - t0 < c->duration_ns / ROUNDS) {
                    for (int i = 0; i < 64; i++) {
                        int err;
                        if (phase == 0) {
                            err = side ? raw_batch(&k, c, sd, val, -1)
                                       : mvcc_batch(r, c, sd, val, -1, &slot, w, keys);
                            ops[side] += c->batch;
                            i += 7; /* batches are long: check the clock more often */
                        } else if (phase == 1) {
                            uint64_t key = rng_next(sd) % (uint64_t)c->keys;
                            err = side ? raw_read(&k, key, &sink) : mvcc_read(r, key, &sink);
                            ops[side]++;
                        } else {
                            uint64_t key = rng_next(sd) % (uint64_t)c->keys;
                            int64_t rows =
                                side ? raw_scan(&k, key, &sink) : mvcc_scan(r, key, &sink);
                            err = rows < 0;
                            ops[side] += rows;
                            i += 3;
                        }
                        if (err) goto out;
                    }
                }
                ns[side] += t1 - t0;
            }
        }
        for (int side = 0; side < 2; side++) {
            double rate = (double)ops[side] / ((double)ns[side] / 1e9);
            result *res = side ? rw : mv;
            if (phase == 0)
                res->write_ops = rate;
            else if (phase == 1)
                res->read_ops = rate;
            else
                res->scan_rows = rate;
        }
    }
    range_meta m;
    range_get_meta(r, &m);
    printf("mvcc range: %lld versions, %lld live keys, %.1f MiB total\n",
           (long long)m.stats.versions, (long long)m.stats.live_keys,
           (double)m.stats.total_bytes / (1024.0 * 1024.0));
    printf("(checksum of values read: %u)\n", sink);
    /* GC of every version but the newest, in steps of at most 1000 rows: how
     * long the write lock is held at worst is what foreground work feels. */
    int64_t g0 = mtime_mono_ns(), longest = 0;
    size_t dropped = 0, n = 0;
    int gdone = 0;
    while (!gdone) {
        int64_t s0 = mtime_mono_ns();
        if (range_gc_step(r, slot, 1000, &n, &gdone)) {
            fprintf(stderr, "bench storage: gc: %s\n", range_err(r)->msg);
            goto out;
        }
        int64_t dt = mtime_mono_ns() - s0;
        if (dt > longest) longest = dt;
        dropped += n;
    }
    double gsec = (double)(mtime_mono_ns() - g0) / 1e9;
    printf("gc: dropped %zu old versions in %.2fs (%.0f/s), longest step %.2f ms"
           " (<= 1000 rows per step)\n",
           dropped, gsec, (double)dropped / (gsec > 0 ? gsec : 1e-9), (double)longest / 1e6);
    rc = 0;
out:
    range_close(r);
    raw_close(&k);
    range_destroy(rpath, NULL);
    range_destroy(kpath, NULL);
    free(val);
    free(w);
    free(keys);
    return rc;
}

/* Resident set size in KiB (Linux /proc), 0 if unknown. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

/* Many ranges on one node: N range databases used round-robin through a
 * handle cache of `cap` entries; reports memory and reopen cost. */
static int run_many(int64_t n, int64_t cap, int cache_kib, const char *dir)
{
    range_cache *c = NULL;
    range_opts o = {.cache_kib = cache_kib};
    if (range_cache_new((size_t)cap, &o, &c)) return -1;
    char p[600], k[32];
    int rc = -1;
    long rss0 = rss_kib();
    int64_t t0 = mtime_mono_ns();
    for (int64_t i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/r%06lld.db", dir, (long long)i);
        range_desc d = {(uint64_t)i + 1, 1, (const uint8_t *)"", 0, (const uint8_t *)"", 0};
        range *r = NULL;
        merr e = {0};
        if (range_create(p, &d, &o, &r, &e)) {
            fprintf(stderr, "bench storage: %s\n", e.msg);
            goto out;
        }
        range_close(r);
    }
    int64_t t1 = mtime_mono_ns();
    uint8_t val[100] = {0};
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < n; i++) {
            snprintf(p, sizeof(p), "%s/r%06lld.db", dir, (long long)i);
            range *r = NULL;
            merr e = {0};
            if (range_cache_acquire(c, p, &r, &e)) {
                fprintf(stderr, "bench storage: %s\n", e.msg);
                goto out;
            }
            key_of((uint64_t)pass, k);
            range_write w = {(const uint8_t *)k, 13, val, sizeof(val), 0};
            range_batch b = {.ts = (uint64_t)pass + 1, .writes = &w, .nwrites = 1};
            int err = range_apply(r, &b, (uint64_t)pass + 1, NULL);
            range_cache_release(c, r);
            if (err) goto out;
        }
    }
    int64_t t2 = mtime_mono_ns();
    printf("many ranges: %lld ranges, handle cache %lld: create %.0f/s, acquire+write %.0f/s,"
           " opens %llu, open handles %zu, RSS %+ld KiB\n",
           (long long)n, (long long)cap, (double)n / ((double)(t1 - t0) / 1e9),
           (double)(2 * n) / ((double)(t2 - t1) / 1e9), (unsigned long long)range_cache_opens(c),
           range_cache_open_count(c), rss_kib() - rss0);
    rc = 0;
out:
    range_cache_free(c);
    for (int64_t i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/r%06lld.db", dir, (long long)i);
        range_destroy(p, NULL);
    }
    return rc;
}

int cmd_bench_storage(int argc, char **argv)
{
    bench_cfg c = {.keys = 100000, .value_size = 100, .batch = 100, .duration_ns = 3 * MTIME_S};
    int64_t cache = 1024 * 1024;
    const char *dir = NULL;
    int64_t ranges = 0, handles = 64;
    const cli_flag flags[] = {
        {"ranges", CLI_INT, &ranges, "N", "also run the many-ranges test with N ranges"},
        {"handles", CLI_INT, &handles, "N", "handle cache size for --ranges (default 64)"},
        {"keys", CLI_INT, &c.keys, "N", "keys loaded before measuring (default 100000)"},
        {"value-size", CLI_SIZE, &c.value_size, "B", "value bytes (default 100)"},
        {"batch", CLI_INT, &c.batch, "N", "writes per batch/transaction (default 100)"},
        {"duration", CLI_DURATION, &c.duration_ns, "D", "time per measured phase (default 3s)"},
        {"cache", CLI_SIZE, &cache, "B", "SQLite page cache per database (default 1MiB)"},
        {"dir", CLI_STR, &dir, "PATH", "where to put the databases (default a /tmp folder)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || c.keys < 1 || c.value_size < 0 || c.value_size > RANGE_VALUE_MAX || c.batch < 1 ||
        c.batch > 1000000 || c.duration_ns <= 0 || cache < 64 * 1024 || ranges < 0 ||
        ranges > 1000000 || handles < 1) {
        fprintf(stderr, "%s: bad arguments (see --help)\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    c.cache_kib = (int)(cache / 1024);
    char tmpl[] = "/tmp/meridian-bench-storage-XXXXXX";
    int own = !dir;
    if (own && !(dir = mkdtemp(tmpl))) {
        perror("mkdtemp");
        return 1;
    }
    char dur[32];
    cli_format_duration(c.duration_ns, dur, sizeof(dur));
    printf("bench storage: keys=%lld value=%lldB batch=%lld duration=%s per phase cache=%dKiB\n",
           (long long)c.keys, (long long)c.value_size, (long long)c.batch, dur, c.cache_kib);
    result mv = {0}, rw = {0};
    rc = run(&c, dir, &mv, &rw);
    if (!rc && ranges) rc = run_many(ranges, handles, c.cache_kib, dir);
    if (own) rmdir(dir);
    if (rc) {
        fprintf(stderr, "%s: benchmark failed\n", argv[0]);
        return 1;
    }
    printf("%-22s %14s %14s %8s\n", "operation", "mvcc ops/s", "raw ops/s", "ratio");
    printf("%-22s %14.0f %14.0f %8.2f\n", "point reads", mv.read_ops, rw.read_ops,
           mv.read_ops / rw.read_ops);
    printf("%-22s %14.0f %14.0f %8.2f\n", "batched writes", mv.write_ops, rw.write_ops,
           mv.write_ops / rw.write_ops);
    printf("%-22s %14.0f %14.0f %8.2f\n", "scans (rows/s, 100/op)", mv.scan_rows, rw.scan_rows,
           mv.scan_rows / rw.scan_rows);
    printf("target: reads and writes each >= 0.50\n");
    return 0;
}
