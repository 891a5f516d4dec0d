/* storage/range_install.c: building a replica from a snapshot stream (format
 * in range_snap.c). The replica is built in "<path>.tmp" and moved into place
 * only after the end record's count and checksum matched and the recomputed
 * stats equal the ones in the meta record; anything less leaves no file. */
#include "storage/range_int.h"

#include "common/crc32c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SNAP_MAGIC 0x4D525331u
#define SNAP_HDR   13

struct range_install {
    sqlite3 *db;
    sqlite3_stmt *ins[3]; /* versions, intents, items */
    char *path, *tmp;
    uint32_t seq, crc;
    uint64_t records, frozen;
    int have_meta, ended, failed;
    uint64_t meta_u64[8];
    mbuf start, end, lastkey;
    range_stats calc;
};

int range_install_begin(const char *path, const range_opts *o, range_install **out, merr *e)
{
    range_install *in = calloc(1, sizeof(*in));
    if (!in) return merr_set(e, MERR_NOMEM, "install");
    in->path = strdup(path);
    in->tmp = malloc(strlen(path) + 5);
    if (!in->path || !in->tmp) {
        range_install_abort(in);
        return merr_set(e, MERR_NOMEM, "install");
    }
    sprintf(in->tmp, "%s.tmp", path);
    unlink(in->tmp);
    int rc = sqlite3_open_v2(in->tmp, &in->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             o ? o->vfs : NULL);
    /* Private until renamed: no journal, one fsync of the whole at the end. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(in->db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", 0, 0, 0);
    merr se = {0};
    if (rc == SQLITE_OK && range_schema_create(in->db, &se) != 0) rc = SQLITE_IOERR;
    if (rc == SQLITE_OK) rc = sqlite3_exec(in->db, "BEGIN", 0, 0, 0);
    static const char *const q[3] = {
        "INSERT INTO versions(key, ts, val) VALUES (?1, ?2, ?3)",
        "INSERT INTO intents(txn, prepare_ts, coord) VALUES (?1, ?2, ?3)",
        "INSERT INTO intent_items(txn, seq, kind, key, val) VALUES (?1, ?2, ?3, ?4, ?5)",
    };
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v2(in->db, q[i], -1, &in->ins[i], NULL);
    if (rc != SQLITE_OK) {
        int code = (rc & 0xff) == SQLITE_FULL ? MERR_NOSPACE : MERR_IO;
        merr_set(e, code, "install %s: %s", path,
                 se.code  ? se.msg
                 : in->db ? sqlite3_errmsg(in->db)
                          : sqlite3_errstr(rc));
        range_install_abort(in);
        return code;
    }
    *out = in;
    return 0;
}

static int get_bytes(mreader *r, const uint8_t **p, size_t *n)
{
    uint64_t l;
    if (mreader_varint(r, &l) || l > mreader_left(r)) return MERR_CORRUPT;
    *n = (size_t)l;
    return mreader_bytes(r, *n, p);
}

static int step_insert(range_install *in, sqlite3_stmt *s, merr *e)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return 0;
    int code = (rc & 0xff) == SQLITE_FULL         ? MERR_NOSPACE
               : (rc & 0xff) == SQLITE_CONSTRAINT ? MERR_CORRUPT
                                                  : MERR_IO;
    return merr_set(e, code, "install: insert: %s", sqlite3_errmsg(in->db));
}

static int version_record(range_install *in, mreader *r, merr *e)
{
    const uint8_t *k, *v = NULL;
    size_t kl, vl = 0;
    uint64_t ts;
    uint8_t tomb;
    if (get_bytes(r, &k, &kl) || mreader_u64be(r, &ts) || mreader_u8(r, &tomb) || tomb > 1 ||
        (!tomb && get_bytes(r, &v, &vl)) || ts == 0 || ts == RANGE_TS_MAX)
        return merr_set(e, MERR_CORRUPT, "install: bad version record");
    if (mlocal_is(k, kl)
            ? !mlocal_in_span(k, kl, in->start.data, in->start.len, in->end.data, in->end.len)
            : (mbytes_cmp(k, kl, in->start.data, in->start.len) < 0 ||
               (in->end.len && mbytes_cmp(k, kl, in->end.data, in->end.len) >= 0)))
        return merr_set(e, MERR_CORRUPT, "install: version key outside the range's span");
    /* Records come in (key, ts DESC) order: the first of a key is its newest. */
    int newkey =
        in->calc.versions == 0 || mbytes_cmp(k, kl, in->lastkey.data, in->lastkey.len) != 0;
    int counted = !mlocal_is(k, kl); /* stats leave range-local keys out */
    if (newkey) {
        mbuf_reset(&in->lastkey);
        if (mbuf_append(&in->lastkey, k, kl)) return merr_set(e, MERR_NOMEM, "install");
        if (!tomb && counted) {
            in->calc.live_keys++;
            in->calc.live_bytes += (int64_t)(kl + vl);
        }
    }
    if (counted) {
        in->calc.versions++;
        in->calc.total_bytes += (int64_t)(kl + vl + 8);
    }
    sqlite3_stmt *s = in->ins[0];
    range_bind_bytes(s, 1, k, kl);
    sqlite3_bind_int64(s, 2, range_ts_sql(ts));
    if (tomb)
        sqlite3_bind_null(s, 3);
    else
        range_bind_bytes(s, 3, v, vl);
    return step_insert(in, s, e);
}

static int parse_record(range_install *in, mreader *r, merr *e)
{
    uint8_t tag;
    if (mreader_u8(r, &tag)) return merr_set(e, MERR_CORRUPT, "install: truncated record");
    if (in->ended) return merr_set(e, MERR_CORRUPT, "install: data after the end record");
    if (!in->have_meta && tag != 'M')
        return merr_set(e, MERR_CORRUPT, "install: stream does not start with metadata");
    const uint8_t *a, *b;
    size_t al, bl;
    uint64_t u;
    uint8_t kind, has;
    switch (tag) {
    case 'M':
        if (in->have_meta) return merr_set(e, MERR_CORRUPT, "install: second meta record");
        for (int i = 0; i < 8; i++)
            if (mreader_u64be(r, &in->meta_u64[i]))
                return merr_set(e, MERR_CORRUPT, "install: bad meta record");
        if (get_bytes(r, &a, &al) || get_bytes(r, &b, &bl) || in->meta_u64[0] == 0)
            return merr_set(e, MERR_CORRUPT, "install: bad meta record");
        if (mbuf_append(&in->start, a, al) || mbuf_append(&in->end, b, bl))
            return merr_set(e, MERR_NOMEM, "install");
        in->have_meta = 1;
        return 0;
    case 'F':
        if (in->frozen || in->calc.versions || mreader_u64be(r, &in->frozen) || !in->frozen ||
            in->frozen > in->meta_u64[2])
            return merr_set(e, MERR_CORRUPT, "install: bad freeze record");
        return 0;
    case 'V': return version_record(in, r, e);
    case 'I':
        if (get_bytes(r, &a, &al) || mreader_u64be(r, &u) || get_bytes(r, &b, &bl))
            return merr_set(e, MERR_CORRUPT, "install: bad intent record");
        range_bind_bytes(in->ins[1], 1, a, al);
        sqlite3_bind_int64(in->ins[1], 2, (sqlite3_int64)u);
        range_bind_bytes(in->ins[1], 3, b, bl);
        return step_insert(in, in->ins[1], e);
    case 'T':
        if (get_bytes(r, &a, &al) || mreader_varint(r, &u) || mreader_u8(r, &kind) || kind > 2 ||
            get_bytes(r, &b, &bl) || mreader_u8(r, &has) || has > 1)
            return merr_set(e, MERR_CORRUPT, "install: bad intent item");
        sqlite3_stmt *s = in->ins[2];
        range_bind_bytes(s, 1, a, al);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)(u & INT64_MAX));
        sqlite3_bind_int(s, 3, kind);
        range_bind_bytes(s, 4, b, bl);
        if (has) {
            if (get_bytes(r, &a, &al)) return merr_set(e, MERR_CORRUPT, "install: bad item");
            range_bind_bytes(s, 5, a, al);
        } else {
            sqlite3_bind_null(s, 5);
        }
        return step_insert(in, s, e);
    default: return merr_set(e, MERR_CORRUPT, "install: unknown record tag 0x%02x", tag);
    }
}

int range_install_chunk(range_install *in, const uint8_t *c, size_t len, merr *e)
{
    if (in->failed) return merr_set(e, MERR_INVALID, "install: already failed");
    int rc = MERR_CORRUPT;
    if (len < SNAP_HDR + 4 || mbe32_get(c) != SNAP_MAGIC) {
        merr_set(e, rc, "install: chunk %u: bad header", in->seq);
        goto fail;
    }
    uint32_t plen = mbe32_get(c + 9);
    if ((size_t)plen + SNAP_HDR + 4 != len || crc32c(0, c, len - 4) != mbe32_get(c + len - 4)) {
        merr_set(e, rc, "install: chunk %u: length or checksum mismatch", in->seq);
        goto fail;
    }
    if (mbe32_get(c + 4) != in->seq || ((c[8] & 1) != 0) != (in->seq == 0)) {
        merr_set(e, rc, "install: chunk out of order (got %u, want %u)", mbe32_get(c + 4), in->seq);
        goto fail;
    }
    in->seq++;
    mreader r;
    mreader_init(&r, c + SNAP_HDR, plen);
    while (mreader_left(&r)) {
        size_t at = r.pos;
        if (r.p[r.pos] == 'E' && !in->ended) {
            uint64_t n;
            uint32_t want;
            r.pos++;
            if (mreader_u64be(&r, &n) || mreader_u32be(&r, &want) || n != in->records ||
                want != in->crc) {
                merr_set(e, rc, "install: end record: count or stream checksum mismatch");
                goto fail;
            }
            in->ended = 1;
            continue;
        }
        if ((rc = parse_record(in, &r, e)) != 0) goto fail;
        rc = MERR_CORRUPT;
        in->records++;
        in->crc = crc32c(in->crc, r.p + at, r.pos - at);
    }
    if (((c[8] & 2) != 0) != in->ended) {
        merr_set(e, rc, "install: last-chunk flag and end record disagree");
        goto fail;
    }
    return 0;
fail:
    in->failed = 1;
    return e ? e->code : rc;
}

int range_install_finish(range_install *in, merr *e)
{
    int rc = MERR_CORRUPT;
    if (in->failed || !in->ended) {
        merr_set(e, rc, "install: stream incomplete");
        goto fail;
    }
    range_stats *c = &in->calc;
    if ((int64_t)in->meta_u64[4] != c->live_keys || (int64_t)in->meta_u64[5] != c->live_bytes ||
        (int64_t)in->meta_u64[6] != c->total_bytes || (int64_t)in->meta_u64[7] != c->versions) {
        merr_set(e, rc, "install: stats in the snapshot do not match its rows");
        goto fail;
    }
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(in->db,
                                 "INSERT INTO meta VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6,"
                                 " ?7, ?8, ?9, ?10, 0)",
                                 -1, &s, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)in->meta_u64[0]);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)in->meta_u64[1]);
        range_bind_bytes(s, 3, in->start.data, in->start.len);
        range_bind_bytes(s, 4, in->end.data, in->end.len);
        for (int i = 2; i < 8; i++) sqlite3_bind_int64(s, i + 3, (sqlite3_int64)in->meta_u64[i]);
        src = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    if (src == SQLITE_DONE && in->frozen) {
        /* As range_freeze writes it. */
        char *q = sqlite3_mprintf("CREATE TABLE frozen(id INTEGER PRIMARY KEY CHECK (id = 1),"
                                  " slot INTEGER NOT NULL); INSERT INTO frozen VALUES (1, %lld)",
                                  (long long)in->frozen);
        src = q ? sqlite3_exec(in->db, q, 0, 0, 0) : SQLITE_NOMEM;
        sqlite3_free(q);
        if (src == SQLITE_OK) src = SQLITE_DONE;
    }
    if (src == SQLITE_DONE) src = sqlite3_exec(in->db, "COMMIT; PRAGMA journal_mode=WAL", 0, 0, 0);
    if (src != SQLITE_OK && src != SQLITE_DONE) {
        rc = (src & 0xff) == SQLITE_FULL ? MERR_NOSPACE : MERR_IO;
        merr_set(e, rc, "install: commit: %s", sqlite3_errmsg(in->db));
        goto fail;
    }
    for (int i = 0; i < 3; i++) sqlite3_finalize(in->ins[i]);
    memset(in->ins, 0, sizeof(in->ins));
    sqlite3_close_v2(in->db);
    in->db = NULL;
    FILE *f = fopen(in->tmp, "r+");
    if (!f || fsync(fileno(f)) != 0) {
        if (f) fclose(f);
        rc = merr_set(e, MERR_IO, "install: fsync %s: %s", in->tmp, strerror(errno));
        goto fail;
    }
    fclose(f);
    /* Replace the old replica: its WAL must go first, or SQLite would replay
     * stale frames onto the new file. The corrupt marker goes last, once the
     * new file is durably in place. */
    char p[4200];
    static const char *const old[] = {"-wal", "-shm", "-journal"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", in->path, old[i]);
        unlink(p);
    }
    if (rename(in->tmp, in->path) != 0) {
        rc = merr_set(e, merr_from_errno(errno), "install: rename: %s", strerror(errno));
        goto fail;
    }
    if ((rc = range_fsync_dir(in->path, e)) != 0) goto fail;
    snprintf(p, sizeof(p), "%s.corrupt", in->path);
    unlink(p);
    range_fsync_dir(in->path, NULL);
    range_install_abort(in); /* frees; the tmp file is already gone */
    return 0;
fail:
    in->failed = 1;
    return rc;
}

void range_install_abort(range_install *in)
{
    if (!in) return;
    for (int i = 0; i < 3; i++) sqlite3_finalize(in->ins[i]);
    if (in->db) sqlite3_close_v2(in->db);
    if (in->tmp) {
        unlink(in->tmp);
        char p[4200];
        snprintf(p, sizeof(p), "%s-journal", in->tmp);
        unlink(p);
    }
    mbuf_free(&in->start);
    mbuf_free(&in->end);
    mbuf_free(&in->lastkey);
    free(in->path);
    free(in->tmp);
    free(in);
}
