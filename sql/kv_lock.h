/* A sql_kv_ops wrapper that serializes every call on one mutex, so a KV
 * written for one thread (sql/kv_mem) can back the sessions of a node, each
 * of which runs on its own worker thread. Transactions still interleave
 * between calls exactly as with one thread; only the calls are exclusive. */
#ifndef MERIDIAN_SQL_KV_LOCK_H
#define MERIDIAN_SQL_KV_LOCK_H

#include "sql/kv.h"

typedef struct sql_kv_lock sql_kv_lock;

/* The ops to use with a sql_kv_lock as kv_ctx. */
extern const sql_kv_ops sql_kv_lock_ops;

/* Wraps (ops, ctx); the inner KV must outlive the wrapper. */
int sql_kv_lock_open(const sql_kv_ops *ops, void *ctx, sql_kv_lock **out, merr *e);
void sql_kv_lock_close(sql_kv_lock *l);

#endif
