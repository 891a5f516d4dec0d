/* storage/range_snap.c: range snapshots as a stream of chunks, and building a
 * replica from such a stream.
 *
 * Format (hand-written, big-endian; docs/storage.md). Storage needs only a
 * flat record stream with checksums, and the replication layer carries each
 * chunk as opaque bytes inside its own protobuf message, so a protobuf schema
 * here would add a copy and nothing else. Chunk:
 *   "MRS1" | seq u32 | flags u8 (1 first, 2 last) | len u32 | payload | crc32c u32
 * (the crc covers everything before it). Payload: records, each a tag byte:
 *   'M' range_id gen applied gc_horizon (u64 each) live_keys live_bytes
 *       total_bytes versions (u64 each) start end (varint length + bytes)
 *   'V' key ts(u64) tomb(u8) [val]       versions, key order, newest first
 *   'F' slot(u64)                        the freeze mark (range_freeze.c),
 *                                         right after 'M', only when frozen:
 *                                         a replica that catches up by
 *                                         snapshot past a FREEZE must refuse
 *                                         writes as the others do
 *   'I' txn prepare_ts(u64) coord        prepared transactions
 *   'T' txn seq(varint) kind(u8) key has_val(u8) [val]   their items
 *   'E' records(u64) crc32c(u32)         end: count and crc of all payload
 *                                         bytes before this record
 * A chunk holds whole records: at most chunk_bytes plus one record. The
 * installer recomputes the stats from the rows and rejects any mismatch. */
#include "storage/range_int.h"

#include "common/crc32c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SNAP_MAGIC 0x4D525331u /* "MRS1" */
#define SNAP_HDR   13
#define F_FIRST    1
#define F_LAST     2

struct range_snap {
    sqlite3 *db;
    sqlite3_stmt *st[3]; /* versions, intents, items */
    int phase;           /* 0 meta, 1..3 statements, 4 end written, 5 done */
    size_t chunk_bytes;
    uint32_t seq, crc;
    uint64_t records, applied, frozen;
    mbuf meta, out;
};

static int put_bytes(mbuf *b, const void *p, size_t n)
{
    return mbuf_append_varint(b, n) || mbuf_append(b, p, n);
}

static int snap_fail(merr *e, sqlite3 *db, int rc, const char *ctx)
{
    int code = (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB ? MERR_CORRUPT
               : (rc & 0xff) == SQLITE_NOMEM                                 ? MERR_NOMEM
                                                                             : MERR_IO;
    return merr_set(e, code, "snapshot: %s: %s", ctx, db ? sqlite3_errmsg(db) : "");
}

int range_snap_open(range *r, size_t chunk_bytes, range_snap **out, merr *e)
{
    if (r->corrupt) return merr_set(e, MERR_CORRUPT, "snapshot: range %s is corrupt", r->path);
    range_snap *s = calloc(1, sizeof(*s));
    if (!s) return merr_set(e, MERR_NOMEM, "snapshot");
    s->chunk_bytes = chunk_bytes ? chunk_bytes : RANGE_SNAP_CHUNK_DEFAULT;
    /* Own connection: its read transaction pins a consistent state while the
     * range's handle keeps applying (WAL readers do not block the writer). */
    int rc = sqlite3_open_v2(r->path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    static const char *const q[3] = {
        "SELECT key, ts, val FROM versions ORDER BY key, ts DESC",
        "SELECT txn, prepare_ts, coord FROM intents ORDER BY txn",
        "SELECT txn, seq, kind, key, val FROM intent_items ORDER BY txn, seq",
    };
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "PRAGMA cache_size=-512; BEGIN", 0, 0, 0);
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v2(s->db, q[i], -1, &s->st[i], NULL);
    sqlite3_stmt *m = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db,
                                "SELECT range_id, generation, applied, gc_horizon, live_keys,"
                                " live_bytes, total_bytes, versions, start_key, end_key FROM meta",
                                -1, &m, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(m)) == SQLITE_ROW) {
        int bad = mbuf_append_u8(&s->meta, 'M');
        for (int i = 0; i < 8; i++)
            bad |= mbuf_append_u64be(&s->meta, (uint64_t)sqlite3_column_int64(m, i));
        for (int i = 8; i < 10; i++)
            bad |=
                put_bytes(&s->meta, sqlite3_column_blob(m, i), (size_t)sqlite3_column_bytes(m, i));
        s->applied = (uint64_t)sqlite3_column_int64(m, 2);
        rc = bad ? SQLITE_NOMEM : SQLITE_OK;
    }
    sqlite3_finalize(m);
    if (rc == SQLITE_OK) {
        /* The freeze mark's table exists only once a range was frozen. */
        sqlite3_stmt *f = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT slot FROM frozen WHERE id = 1", -1, &f, NULL) ==
            SQLITE_OK) {
            int src = sqlite3_step(f);
            if (src == SQLITE_ROW)
                s->frozen = (uint64_t)sqlite3_column_int64(f, 0);
            else if (src != SQLITE_DONE)
                rc = src;
        }
        sqlite3_finalize(f);
        if (rc == SQLITE_OK && s->frozen &&
            (mbuf_append_u8(&s->meta, 'F') || mbuf_append_u64be(&s->meta, s->frozen)))
            rc = SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK) {
        rc = snap_fail(e, s->db, rc, r->path);
        range_snap_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint64_t range_snap_applied(const range_snap *s)
{
    return s->applied;
}

/* Appends the current row of statement `ph` as a record. */
static int row_record(range_snap *s, int ph, mbuf *b)
{
    sqlite3_stmt *q = s->st[ph - 1];
    int bad = 0;
    if (ph == 1) {
        int tomb = sqlite3_column_type(q, 2) == SQLITE_NULL;
        bad |= mbuf_append_u8(b, 'V');
        bad |= put_bytes(b, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
        bad |= mbuf_append_u64be(b, range_ts_from_sql(sqlite3_column_int64(q, 1)));
        bad |= mbuf_append_u8(b, (uint8_t)tomb);
        if (!tomb)
            bad |= put_bytes(b, sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2));
    } else if (ph == 2) {
        bad |= mbuf_append_u8(b, 'I');
        bad |= put_bytes(b, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
        bad |= mbuf_append_u64be(b, (uint64_t)sqlite3_column_int64(q, 1));
        bad |= put_bytes(b, sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2));
    } else {
        int has = sqlite3_column_type(q, 4) != SQLITE_NULL;
        bad |= mbuf_append_u8(b, 'T');
        bad |= put_bytes(b, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
        bad |= mbuf_append_varint(b, (uint64_t)sqlite3_column_int64(q, 1));
        bad |= mbuf_append_u8(b, (uint8_t)sqlite3_column_int(q, 2));
        bad |= put_bytes(b, sqlite3_column_blob(q, 3), (size_t)sqlite3_column_bytes(q, 3));
        bad |= mbuf_append_u8(b, (uint8_t)has);
        if (has) bad |= put_bytes(b, sqlite3_column_blob(q, 4), (size_t)sqlite3_column_bytes(q, 4));
    }
    return bad ? MERR_NOMEM : 0;
}

int range_snap_next(range_snap *s, const uint8_t **chunk, size_t *len, merr *e)
{
    *chunk = NULL;
    *len = 0;
    if (s->phase == 5) return 0;
    mbuf_reset(&s->out);
    uint8_t hdr[SNAP_HDR] = {0};
    if (mbuf_append(&s->out, hdr, SNAP_HDR)) return merr_set(e, MERR_NOMEM, "snapshot");
    uint8_t flags = s->seq == 0 ? F_FIRST : 0;
    int rc = 0;
    while (s->out.len - SNAP_HDR < s->chunk_bytes && s->phase < 4) {
        size_t before = s->out.len;
        if (s->phase == 0) {
            rc = mbuf_append(&s->out, s->meta.data, s->meta.len) ? MERR_NOMEM : 0;
            if (s->frozen) s->records++; /* 'F' follows 'M' in the same buffer */
            s->phase = 1;
        } else {
            int src = sqlite3_step(s->st[s->phase - 1]);
            if (src == SQLITE_DONE) {
                s->phase++;
                continue;
            }
            if (src != SQLITE_ROW) return snap_fail(e, s->db, src, "read");
            rc = row_record(s, s->phase, &s->out);
        }
        if (rc) return merr_set(e, rc, "snapshot: build chunk");
        s->records++;
        s->crc = crc32c(s->crc, s->out.data + before, s->out.len - before);
    }
    if (s->phase == 4 && s->out.len - SNAP_HDR < s->chunk_bytes) {
        if (mbuf_append_u8(&s->out, 'E') || mbuf_append_u64be(&s->out, s->records) ||
            mbuf_append_u32be(&s->out, s->crc))
            return merr_set(e, MERR_NOMEM, "snapshot");
        flags |= F_LAST;
        s->phase = 5;
    }
    uint32_t plen = (uint32_t)(s->out.len - SNAP_HDR);
    mbe32_put(s->out.data, SNAP_MAGIC);
    mbe32_put(s->out.data + 4, s->seq++);
    s->out.data[8] = flags;
    mbe32_put(s->out.data + 9, plen);
    uint32_t c = crc32c(0, s->out.data, s->out.len);
    if (mbuf_append_u32be(&s->out, c)) return merr_set(e, MERR_NOMEM, "snapshot");
    *chunk = s->out.data;
    *len = s->out.len;
    return 0;
}

void range_snap_close(range_snap *s)
{
    if (!s) return;
    for (int i = 0; i < 3; i++) sqlite3_finalize(s->st[i]);
    if (s->db) sqlite3_close_v2(s->db);
    mbuf_free(&s->meta);
    mbuf_free(&s->out);
    free(s);
}
