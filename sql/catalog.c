/* The catalog: object descriptors stored in the KV under table id 0, the
 * schema version, and loading them into a session.
 *
 * A descriptor keeps the SQL text that creates the object plus the ids SQLite
 * knows nothing about (table id, index ids). Loading replays the SQL into a
 * scratch SQLite database of ordinary empty tables and reads the schema back
 * with PRAGMAs, so SQLite's own parser decides column types, affinities,
 * defaults, collations and key columns; the session then exposes each table
 * to the user connection as a virtual table of the same shape. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql_int.h"

/* ---- descriptor codec ---------------------------------------------------- */

#define DESC_FORMAT 1
#define DESC_STATES 1 /* tag of the optional trailer: one state byte per index */

static int put_str(mbuf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int rc = mbuf_append_varint(b, n);
    return rc ? rc : mbuf_append(b, s, n);
}

static int get_str(mreader *r, char **out)
{
    uint64_t n;
    const uint8_t *p;
    if (mreader_varint(r, &n) || n > mreader_left(r) || mreader_bytes(r, (size_t)n, &p))
        return MERR_CORRUPT;
    *out = strndup((const char *)p, (size_t)n);
    return *out ? 0 : MERR_NOMEM;
}

void sql_desc_free(sql_desc *d)
{
    if (!d) return;
    free(d->name);
    free(d->sql);
    for (size_t i = 0; i < d->nidx; i++) {
        free(d->idx[i].name);
        free(d->idx[i].sql);
    }
    free(d->idx);
    memset(d, 0, sizeof(*d));
}

int sql_desc_encode(const sql_desc *d, mbuf *out)
{
    int rc = mbuf_append_u8(out, DESC_FORMAT);
    rc = rc ? rc : mbuf_append_u8(out, (uint8_t)d->kind);
    rc = rc ? rc : mbuf_append_varint(out, d->id);
    rc = rc ? rc : mbuf_append_varint(out, d->next_index_id);
    rc = rc ? rc : put_str(out, d->name);
    rc = rc ? rc : put_str(out, d->sql);
    rc = rc ? rc : mbuf_append_varint(out, d->nidx);
    for (size_t i = 0; i < d->nidx && !rc; i++) {
        rc = mbuf_append_varint(out, d->idx[i].id);
        rc = rc ? rc : put_str(out, d->idx[i].name);
        rc = rc ? rc : mbuf_append_u8(out, d->idx[i].sql != NULL);
        if (!rc && d->idx[i].sql) rc = put_str(out, d->idx[i].sql);
    }
    /* Index states trail the descriptor, only when some index is not
     * PUBLIC: an all-public descriptor encodes as it always did. */
    int states = 0;
    for (size_t i = 0; i < d->nidx; i++) states |= d->idx[i].state != SQL_IDX_PUBLIC;
    if (states && !rc) rc = mbuf_append_u8(out, DESC_STATES);
    for (size_t i = 0; i < d->nidx && states && !rc; i++)
        rc = mbuf_append_u8(out, (uint8_t)d->idx[i].state);
    return rc;
}

int sql_desc_decode(const uint8_t *p, size_t n, sql_desc *d, merr *e)
{
    mreader r;
    uint8_t fmt, kind, has;
    uint64_t id, next, nidx;
    memset(d, 0, sizeof(*d));
    mreader_init(&r, p, n);
    if (mreader_u8(&r, &fmt) || fmt != DESC_FORMAT || mreader_u8(&r, &kind) ||
        (kind != SQL_OBJ_TABLE && kind != SQL_OBJ_VIEW) || mreader_varint(&r, &id) ||
        id > UINT32_MAX || mreader_varint(&r, &next) || next > UINT32_MAX)
        goto corrupt;
    d->kind = kind;
    d->id = (uint32_t)id;
    d->next_index_id = (uint32_t)next;
    if (get_str(&r, &d->name) || get_str(&r, &d->sql) || mreader_varint(&r, &nidx) ||
        nidx > mreader_left(&r))
        goto corrupt;
    d->idx = calloc(nidx ? nidx : 1, sizeof(*d->idx));
    if (!d->idx) goto corrupt;
    for (d->nidx = 0; d->nidx < nidx; d->nidx++) {
        sql_desc_index *x = &d->idx[d->nidx];
        if (mreader_varint(&r, &id) || id > UINT32_MAX || get_str(&r, &x->name) ||
            mreader_u8(&r, &has) || has > 1 || (has && get_str(&r, &x->sql))) {
            d->nidx++;
            goto corrupt;
        }
        x->id = (uint32_t)id;
    }
    if (mreader_left(&r)) {
        uint8_t tag, st;
        if (mreader_u8(&r, &tag) || tag != DESC_STATES) goto corrupt;
        for (size_t i = 0; i < d->nidx; i++) {
            if (mreader_u8(&r, &st) || st > SQL_IDX_WRITE_ONLY) goto corrupt;
            d->idx[i].state = st;
        }
    }
    if (mreader_left(&r)) goto corrupt;
    return 0;
corrupt:
    sql_desc_free(d);
    return merr_set(e, MERR_CORRUPT, "catalog: malformed descriptor");
}

/* ---- catalog keys -------------------------------------------------------- */

static int sys_key(mbuf *k, int64_t which, const char *name)
{
    mkey_val v[3] = {mkey_int(SQL_SYS_TABLE, 0), mkey_int(which, 0), mkey_null(0)};
    char low[256];
    size_t n = 2;
    if (name) {
        size_t len = strlen(name);
        if (len >= sizeof(low)) return MERR_TOOBIG;
        for (size_t i = 0; i < len; i++) low[i] = (char)tolower((unsigned char)name[i]);
        v[2] = mkey_text(low, len, 0);
        n = 3;
    }
    mbuf_reset(k);
    return mkey_encode(v, n, k);
}

static int get_u64(sql_session *s, int64_t which, uint64_t dflt, uint64_t *out, merr *e)
{
    mbuf k = MBUF_INIT, v = MBUF_INIT;
    int rc = sys_key(&k, which, NULL);
    if (rc) goto out;
    rc = s->ops->get(s->txn, k.data, k.len, &v, e);
    if (rc == MERR_NOTFOUND) {
        *out = dflt;
        rc = 0;
    } else if (!rc) {
        if (v.len != 8)
            rc = merr_set(e, MERR_CORRUPT, "catalog: bad counter");
        else
            *out = mbe64_get(v.data);
    }
out:
    mbuf_free(&k);
    mbuf_free(&v);
    return rc;
}

static int put_u64(sql_session *s, int64_t which, uint64_t val, merr *e)
{
    mbuf k = MBUF_INIT;
    uint8_t b[8];
    mbe64_put(b, val);
    int rc = sys_key(&k, which, NULL);
    if (!rc) rc = s->ops->put(s->txn, k.data, k.len, b, 8, e);
    mbuf_free(&k);
    return rc;
}

int sql_catalog_version(sql_session *s, uint64_t *v, merr *e)
{
    return get_u64(s, SQL_SYS_VERSION, 0, v, e);
}

int sql_catalog_bump(sql_session *s, merr *e)
{
    uint64_t v = 0;
    int rc = sql_catalog_version(s, &v, e);
    if (!rc) rc = put_u64(s, SQL_SYS_VERSION, v + 1, e);
    return rc;
}

int sql_catalog_next_id(sql_session *s, uint32_t *id, merr *e)
{
    uint64_t v = 0;
    int rc = get_u64(s, SQL_SYS_NEXT_ID, SQL_FIRST_TABLE_ID, &v, e);
    if (rc) return rc;
    if (v >= UINT32_MAX) return merr_set(e, MERR_TOOBIG, "catalog: table ids exhausted");
    *id = (uint32_t)v;
    return put_u64(s, SQL_SYS_NEXT_ID, v + 1, e);
}

int sql_catalog_put(sql_session *s, const sql_desc *d, merr *e)
{
    mbuf k = MBUF_INIT, v = MBUF_INIT;
    int rc = sys_key(&k, SQL_SYS_DESC, d->name);
    if (!rc) rc = sql_desc_encode(d, &v);
    if (rc)
        rc = merr_set(e, rc, "catalog: cannot encode %s", d->name);
    else
        rc = s->ops->put(s->txn, k.data, k.len, v.data, v.len, e);
    mbuf_free(&k);
    mbuf_free(&v);
    return rc;
}

int sql_catalog_del(sql_session *s, const char *name, merr *e)
{
    mbuf k = MBUF_INIT;
    int rc = sys_key(&k, SQL_SYS_DESC, name);
    if (!rc) rc = s->ops->del(s->txn, k.data, k.len, e);
    mbuf_free(&k);
    return rc;
}

int sql_catalog_read(sql_session *s, sql_desc **out, size_t *n, merr *e)
{
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    mkey_val pv[2] = {mkey_int(SQL_SYS_TABLE, 0), mkey_int(SQL_SYS_DESC, 0)};
    sql_kv_iter *it = NULL;
    sql_desc *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = mkey_encode_prefix(pv, 2, &lo);
    if (!rc) rc = mkey_encode_prefix(pv, 2, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (rc) goto err;
    rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, 0, 0, &it, e);
    if (rc) goto err;
    for (;;) {
        const uint8_t *k, *v;
        size_t kl, vl;
        rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
        if (rc <= 0) break;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 8;
            sql_desc *p = realloc(arr, nc * sizeof(*arr));
            if (!p) {
                rc = merr_set(e, MERR_NOMEM, "catalog: out of memory");
                break;
            }
            arr = p;
            cap = nc;
        }
        rc = sql_desc_decode(v, vl, &arr[cnt], e);
        if (rc) break;
        cnt++;
    }
    if (rc < 0) goto err;
    s->ops->iter_close(it);
    mbuf_free(&lo);
    mbuf_free(&hi);
    *out = arr;
    *n = cnt;
    return 0;
err:
    if (it) s->ops->iter_close(it);
    for (size_t i = 0; i < cnt; i++) sql_desc_free(&arr[i]);
    free(arr);
    mbuf_free(&lo);
    mbuf_free(&hi);
    return rc;
}

int sql_delete_prefix(sql_session *s, uint32_t tid, int64_t iid, merr *e)
{
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    mkey_val pv[2] = {mkey_int(tid, 0), mkey_int(iid, 0)};
    size_t n = iid < 0 ? 1 : 2;
    sql_kv_iter *it = NULL;
    int rc = mkey_encode_prefix(pv, n, &lo);
    if (!rc) rc = mkey_encode_prefix(pv, n, &hi);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (!rc) rc = s->ops->scan(s->txn, lo.data, lo.len, hi.data, hi.len, 0, 0, &it, e);
    while (!rc) {
        const uint8_t *k, *v;
        size_t kl, vl;
        rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
        if (rc <= 0) break;
        rc = s->ops->del(s->txn, k, kl, e);
    }
    if (it) s->ops->iter_close(it);
    mbuf_free(&lo);
    mbuf_free(&hi);
    return rc < 0 ? rc : 0;
}
