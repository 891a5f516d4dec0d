/* AS OF SYSTEM TIME: historical reads from SQL (docs/sql.md "Reading the
 * past").
 *
 * SQLite's parser does not know the clause, so the session finds it with the
 * tokenizer of lex.c (never inside string literals, comments, quoted
 * identifiers or parentheses), blanks it out of the statement with spaces
 * (so error offsets and the statement's tail stay where they were) and runs
 * the rest as a read-only transaction begun with the KV's begin_at (sql/kv.h).
 * Pure: no clock; the KV resolves "now". */
#ifndef MERIDIAN_SQL_ASOF_H
#define MERIDIAN_SQL_ASOF_H

#include <stddef.h>

#include "common/err.h"
#include "sql/kv.h"

/* Parses the clause's expression (n bytes at expr, one token or
 * follower_read_timestamp()):
 *   '-10s', '-1m30s', '-500ms', '-0s'  relative to now (units h m s ms us;
 *                                      decimals allowed: '-1.5s')
 *   '2026-11-26 12:00:00.123456'       UTC (also ...T...Z, or a date alone)
 *   1795681234567890123 or '1795...'   a KV (HLC) timestamp, as meridian_now() prints
 *   follower_read_timestamp()          the newest any nearby replica can serve
 * MERR_INVALID with a message naming the accepted forms otherwise (a
 * positive interval, a bad date, a parameter, zero). */
int sql_asof_parse(const char *expr, size_t n, sql_kv_at *at, merr *e);

/* Looks for AS OF SYSTEM TIME <expr> in the first statement of sql (up to
 * its first top-level ';'). Absent: 0 with *out NULL. Present: 0 with *out a
 * malloc'd copy of the whole of sql, the clause replaced by spaces, and *at
 * filled. MERR_INVALID for a bad expression or a second clause, MERR_NOMEM. */
int sql_asof_strip(const char *sql, char **out, sql_kv_at *at, merr *e);

#endif
