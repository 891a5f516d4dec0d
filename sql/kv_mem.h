/* An in-memory implementation of the SQL layer's KV interface (sql/kv.h).
 *
 * An ordered multi-version map: every committed write is a new version
 * stamped with a commit counter; a transaction reads the versions at its start
 * stamp (snapshot) overlaid with its own buffered writes. Commit validates
 * optimistically: if any transaction that committed after our snapshot wrote a
 * key we read (by get, or inside a range we scanned), we abort with
 * MERR_ABORTED — so committed read-write transactions are serializable.
 * Read-only transactions always commit (a snapshot is consistent).
 *
 * Single-threaded: one process, sessions interleaved by the caller. Old
 * versions are never collected; this is for tests and the embedded demo.
 * Counters count calls, so tests can check access paths without timing. */
#ifndef MERIDIAN_SQL_KV_MEM_H
#define MERIDIAN_SQL_KV_MEM_H

#include "sql/kv.h"

typedef struct sql_kv_mem sql_kv_mem;

typedef struct sql_kv_mem_stats {
    uint64_t begins, ro_begins, gets, scans, rows, puts, dels, commits, aborts;
} sql_kv_mem_stats;

extern const sql_kv_ops sql_kv_mem_ops;

int sql_kv_mem_open(sql_kv_mem **out);
void sql_kv_mem_close(sql_kv_mem *m);
sql_kv_mem_stats sql_kv_mem_get_stats(const sql_kv_mem *m);
void sql_kv_mem_reset_stats(sql_kv_mem *m);
/* Number of keys with a live (not deleted) newest version. */
size_t sql_kv_mem_live_keys(const sql_kv_mem *m);
/* 1 when any key or any version's value holds needle (tests: what must
 * never be stored, like a clear password). */
int sql_kv_mem_contains(const sql_kv_mem *m, const char *needle);

#endif
