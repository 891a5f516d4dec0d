/* Rows gathered from a range scan into KeyValue messages for a reply: one
 * allocation per row (key and value copied behind the struct), one array. */
#ifndef MERIDIAN_SERVER_KV_ROWS_H
#define MERIDIAN_SERVER_KV_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/kv.pb-c.h"

typedef struct kv_rows {
    Meridian__Kv__KeyValue **v;
    size_t n, cap;
    int oom; /* a row could not be kept: the scan stopped; answer MERR_NOMEM */
} kv_rows;

/* A range_scan_fn: arg is a kv_rows. */
int kv_rows_add(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                uint64_t ts);
void kv_rows_free(kv_rows *r);

#endif
