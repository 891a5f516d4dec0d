/* Scan rows into KeyValue messages (see kv_rows.h). */
#include "server/kv_rows.h"

#include <stdlib.h>
#include <string.h>

int kv_rows_add(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                uint64_t ts)
{
    kv_rows *a = arg;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        Meridian__Kv__KeyValue **nv = realloc(a->v, cap * sizeof(*nv));
        if (!nv) goto oom;
        a->v = nv;
        a->cap = cap;
    }
    Meridian__Kv__KeyValue *kv = malloc(sizeof(*kv) + klen + vlen + 1);
    if (!kv) goto oom;
    meridian__kv__key_value__init(kv);
    uint8_t *mem = (uint8_t *)(kv + 1);
    if (klen) memcpy(mem, key, klen);
    if (vlen) memcpy(mem + klen, val, vlen);
    kv->key.data = mem;
    kv->key.len = klen;
    kv->value.data = mem + klen;
    kv->value.len = vlen;
    kv->version_ts = ts;
    a->v[a->n++] = kv;
    return 0;
oom:
    a->oom = 1;
    return 1; /* stops the scan */
}

void kv_rows_free(kv_rows *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}
