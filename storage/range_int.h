/* storage/range_int.h: internals shared by the storage/ files (not an API).
 * Holds the handle struct, the statement cache and the SQLite error mapping. */
#ifndef MERIDIAN_STORAGE_RANGE_INT_H
#define MERIDIAN_STORAGE_RANGE_INT_H

#include <sqlite3.h>

#include "common/buf.h"
#include "common/localkey.h"
#include "storage/range.h"

/* Cached prepared statements, one slot each, prepared on first use. */
enum range_stmt_id {
    RS_GET,
    RS_LATEST,
    RS_EXACT,
    RS_PUT,
    RS_PUT_NEW,
    RS_DEL_VERSION,
    RS_META_SAVE,
    RS_SCAN_FWD,
    RS_SCAN_REV,
    RS_SCAN_FWD_OPEN,
    RS_SCAN_REV_OPEN,
    RS_INTENT_PUT,
    RS_INTENT_ITEM_PUT,
    RS_INTENT_GET,
    RS_INTENT_ITEMS,
    RS_INTENT_DEL,
    RS_INTENT_ITEMS_DEL,
    RS_BEGIN,
    RS_COMMIT,
    RS_ROLLBACK,
    RS__COUNT
};

struct range {
    sqlite3 *db;
    char *path;
    range_opts opts;
    int corrupt;
    merr err;
    sqlite3_stmt *stmts[RS__COUNT];
    /* Cached metadata row, authoritative in memory between transactions. */
    uint64_t range_id, generation, applied, gc_horizon;
    mbuf start, end;
    range_stats stats;
    /* GC resumes here (range_gc.c); gc_active 0 = start from the first key. */
    mbuf gc_cursor;
    int gc_active;
};

/* SQL condition on versions.key: not a range-local key (localkey.h: they
 * are exactly [00 00, 00 01)). Split keys are chosen among the others. */
#define RANGE_NOT_LOCAL "(key < X'0000' OR key >= X'0001')"

/* Maps an SQLite result to a MERR code, records "ctx: sqlite message" in
 * r->err, and marks the replica corrupt on SQLITE_CORRUPT / SQLITE_NOTADB. */
int range_sqlerr(range *r, int rc, const char *ctx);
/* Returns the cached statement `id`, reset (callers bind every parameter). */
sqlite3_stmt *range_stmt(range *r, int id);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK through the cache. */
int range_begin(range *r);
int range_commit(range *r);
void range_rollback(range *r);
/* Writes the cached metadata (applied, stats, span, ...) into the meta row. */
int range_meta_save(range *r);
/* 1 if key lies in the range's span. */
int range_in_span(const range *r, const uint8_t *key, size_t klen);
int range_check_ts(range *r, uint64_t ts, const char *what);
/* memcmp order of byte strings. */
/* Applies SQLite settings (see range_db.c) to a fresh connection. */
int range_configure(sqlite3 *db, const range_opts *o, merr *e);
/* Creates the schema in an empty database. */
int range_schema_create(sqlite3 *db, merr *e);
/* fsyncs the directory that holds `path` (after a rename or unlink). */
int range_fsync_dir(const char *path, merr *e);
/* Writes/clears/tests the "<path>.corrupt" marker file. */
int range_mark_corrupt(const char *path);
int range_marked_corrupt(const char *path);
/* Split/merge recovery at open (range_split.c). */
int range_recover(range *r);
/* Puts one version with stats accounting (range_mvcc.c); inside a txn. */
int range_put_version(range *r, const uint8_t *key, size_t klen, uint64_t ts, const uint8_t *val,
                      size_t vlen, int del);
/* Binds a blob that may be empty (a NULL pointer would bind SQL NULL). */
int range_bind_bytes(sqlite3_stmt *s, int i, const void *p, size_t n);
/* versions.ts holds ts XOR 2^63 in SQLite's signed INTEGER: unsigned order
 * becomes signed order, so every uint64 timestamp sorts right (an HLC with
 * 52 bits of microseconds passes 2^63 in 2041). */
static inline sqlite3_int64 range_ts_sql(uint64_t ts)
{
    return (sqlite3_int64)(ts ^ ((uint64_t)1 << 63));
}
static inline uint64_t range_ts_from_sql(sqlite3_int64 v)
{
    return (uint64_t)v ^ ((uint64_t)1 << 63);
}
/* Read-timestamp checks (corrupt, 0, below GC horizon) and its SQL value. */
int range_check_read(range *r, uint64_t t);
sqlite3_int64 range_read_ts(uint64_t t);
/* Re-reads the meta row into the handle. */
int range_meta_load(range *r);

#endif
