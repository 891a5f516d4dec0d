/* Test helper: split a SQL table's rows between ranges on a real cluster
 * (`meridian debug split --key` at a row key). */
#ifndef MERIDIAN_TESTS_SQL_TSPLIT_H
#define MERIDIAN_TESTS_SQL_TSPLIT_H

#include <stdint.h>

#include "include/meridian.h"

/* The table's id from the meridian_tables view, or -1. */
int64_t tsplit_table_id(meridian *db, const char *table);
/* Splits at the row key of integer primary key (or rowid) `at` of table
 * tid: rows below it stay, rows from it on go to the new range. Runs
 * `bin debug split`; 0 when it exited 0. */
int tsplit_at(const char *bin, const char *hosts, int64_t tid, int64_t at);
/* The same without waiting: the pid of the `debug split` process (reap it
 * with waitpid), or -1. */
int tsplit_start(const char *bin, const char *hosts, int64_t tid, int64_t at);

#endif
