/* The harness's workloads on the key-value API (see jh_run.h):
 *
 * register: single-key reads and writes of unique integers, checked for
 *   linearizability. A few keys are live at a time and each is retired after
 *   ops_per_key operations, so each key's history stays small for the search
 *   (docs/jepsen.md: "use more keys and fewer processes per key"). There is
 *   no compare-and-set in the API yet, so there are no cas ops. At the end,
 *   every key used is read once more.
 * set: inserts of unique values, each its own key under one prefix; at the
 *   end one scan of the prefix is the final `members` read, which must hold
 *   every acknowledged insert.
 *
 * bank and list-append are SQL transactions: jh_sql.c.
 *
 * Keys: "jp/r/%08lld" and "jp/s/%016lld" (zero-padded, so scans return set
 * members in numeric order); values are decimal. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "tests/jepsen/jh_run.h"

#define REG_PREFIX "jp/r/"
#define REG_END    "jp/r0" /* '/' + 1 */
#define SET_PREFIX "jp/s/"
#define SET_END    "jp/s0" /* '/' + 1: the end of the prefix */

typedef struct wl_state {
    atomic_uint_fast64_t next_value; /* last value handed out */
    atomic_uint_fast64_t ops;        /* register: ops started */
    atomic_int_fast64_t max_key;     /* register: highest key used */
    atomic_int_fast64_t acked;       /* testing_bug: a key/value with an ok write (+1) */
} wl_state;

int64_t jh_next_value(jh_run *r)
{
    return (int64_t)atomic_fetch_add(&((wl_state *)r->wl_state)->next_value, 1) + 1;
}

int64_t jh_live_key(jh_worker *w)
{
    jh_run *r = w->run;
    wl_state *s = r->wl_state;
    uint64_t n = atomic_fetch_add(&s->ops, 1);
    uint64_t per_epoch = (uint64_t)r->keys * (uint64_t)r->ops_per_key;
    int64_t k =
        (int64_t)((n / per_epoch) * (uint64_t)r->keys + rpc_rng_next(&w->rng) % (uint64_t)r->keys);
    int64_t m = atomic_load(&s->max_key);
    while (k > m && !atomic_compare_exchange_weak(&s->max_key, &m, k)) {
    }
    return k;
}

int64_t jh_max_key(jh_run *r)
{
    return atomic_load(&((wl_state *)r->wl_state)->max_key);
}

/* Parses a value we wrote. Anything else becomes -1, a value nobody
 * writes, so a corrupted read is an anomaly rather than a harness error. */
static int64_t parse_value(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    return (*s && !*end && v > 0) ? (int64_t)v : -1;
}

/* ---- register ---- */

static void reg_key(int64_t k, char *buf, size_t cap)
{
    snprintf(buf, cap, REG_PREFIX "%08" PRId64, k);
}

/* One read of key k, recorded; ok reads carry the value or nil. */
static int reg_read(jh_worker *w, int64_t k, int64_t deadline, int lie, merr *e)
{
    jp_op op = {.f = JP_F_READ, .key = k, .v1 = {.kind = JP_V_NONE}};
    int rc = jh_invoke(w, &op, e);
    if (rc) return rc;
    char key[32], val[64];
    reg_key(k, key, sizeof(key));
    int found = 0;
    merr why = {0};
    jh_outcome o = jh_kv_get(w->cl, key, deadline, &found, val, sizeof(val), &why);
    op.type = o == JH_OK ? JP_OK : JP_FAIL; /* a read has no effect: never info */
    if (o == JH_OK && found && !lie)
        op.v1 = (jp_val){.kind = JP_V_INT, .i = parse_value(val)};
    else if (o == JH_OK)
        op.v1 = (jp_val){.kind = JP_V_NIL};
    return jh_complete(w, &op, e);
}

static int reg_op(jh_worker *w, merr *e)
{
    jh_run *r = w->run;
    wl_state *s = r->wl_state;
    int64_t k = jh_live_key(w);
    int64_t deadline = mtime_mono_ns() + r->op_timeout_ns;
    if (rpc_rng_next(&w->rng) % 2) return reg_read(w, k, deadline, 0, e);
    jp_op op = {.f = JP_F_WRITE, .key = k, .v1 = {.kind = JP_V_INT, .i = jh_next_value(r)}};
    int rc = jh_invoke(w, &op, e);
    if (rc) return rc;
    char key[32], val[32];
    reg_key(k, key, sizeof(key));
    snprintf(val, sizeof(val), "%" PRId64, op.v1.i);
    merr why = {0};
    jh_outcome o = jh_kv_put(w->cl, key, val, deadline, &why);
    op.type = o == JH_OK ? JP_OK : o == JH_FAIL ? JP_FAIL : JP_INFO;
    if (o == JH_OK) atomic_store(&s->acked, k + 1);
    return jh_complete(w, &op, e);
}

static int reg_final(jh_worker *w, merr *e)
{
    jh_run *r = w->run;
    wl_state *s = r->wl_state;
    int64_t lie_key = r->testing_bug ? atomic_load(&s->acked) - 1 : -1;
    int64_t max = atomic_load(&s->max_key);
    for (int64_t k = 0; k <= max; k++) {
        if (atomic_load(&r->interrupted)) return merr_set(e, MERR_CANCELED, "interrupted");
        int rc = reg_read(w, k, mtime_mono_ns() + r->final_timeout_ns, k == lie_key, e);
        if (rc) return rc;
    }
    return 0;
}

/* ---- set ---- */

static int set_op(jh_worker *w, merr *e)
{
    jh_run *r = w->run;
    jp_op op = {.f = JP_F_INSERT, .v1 = {.kind = JP_V_INT, .i = jh_next_value(r)}};
    int rc = jh_invoke(w, &op, e);
    if (rc) return rc;
    char key[48];
    snprintf(key, sizeof(key), SET_PREFIX "%016" PRId64, op.v1.i);
    merr why = {0};
    jh_outcome o = jh_kv_put(w->cl, key, "1", mtime_mono_ns() + r->op_timeout_ns, &why);
    op.type = o == JH_OK ? JP_OK : o == JH_FAIL ? JP_FAIL : JP_INFO;
    if (o == JH_OK) {
        int64_t zero = 0;
        atomic_compare_exchange_strong(&((wl_state *)r->wl_state)->acked, &zero, op.v1.i);
    }
    return jh_complete(w, &op, e);
}

typedef struct members {
    int64_t *v;
    size_t n, cap;
    int64_t skip; /* testing_bug: leave this acknowledged member out */
} members;

static void members_reset(void *arg)
{
    ((members *)arg)->n = 0;
}

static int members_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    members *m = arg;
    (void)val, (void)vlen;
    char buf[64];
    size_t pl = sizeof(SET_PREFIX) - 1;
    int64_t v = -1; /* a key under the prefix that we did not write */
    if (klen > pl && klen - pl < sizeof(buf)) {
        memcpy(buf, key + pl, klen - pl);
        buf[klen - pl] = '\0';
        v = parse_value(buf);
    }
    if (v == m->skip) return 0;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        int64_t *nv = realloc(m->v, cap * sizeof(*nv));
        if (!nv) return 1;
        m->v = nv;
        m->cap = cap;
    }
    m->v[m->n++] = v;
    return 0;
}

static int set_final(jh_worker *w, merr *e)
{
    jh_run *r = w->run;
    members m = {.skip = r->testing_bug ? atomic_load(&((wl_state *)r->wl_state)->acked) : 0};
    int rc = 0;
    /* A failed read is recorded and tried again: the verdict needs one ok. */
    for (int attempt = 0; attempt < 3 && !rc; attempt++) {
        jp_op op = {.f = JP_F_MEMBERS, .v1 = {.kind = JP_V_NONE}};
        if ((rc = jh_invoke(w, &op, e))) break;
        merr why = {0};
        jh_outcome o = jh_kv_scan(w->cl, SET_PREFIX, SET_END, mtime_mono_ns() + r->final_timeout_ns,
                                  members_reset, members_row, &m, &why);
        op.type = o == JH_OK ? JP_OK : JP_FAIL;
        if (o == JH_OK) op.v1 = (jp_val){.kind = JP_V_LIST, .items = m.v, .n = m.n};
        rc = jh_complete(w, &op, e);
        if (o == JH_OK) break;
        fprintf(stderr, "jp_run: final read failed: %s\n", merr_msg(&why));
    }
    free(m.v);
    return rc;
}

/* ---- split points (the split nemesis) ---- */

/* A key near the live window [max_key - keys, max_key + 2 keys], so splits
 * fall between keys in use and just ahead of them. */
static int64_t near_live(jh_run *r, rpc_rng *g)
{
    int64_t hi = jh_max_key(r) + 2 * (int64_t)r->keys, lo = hi - 3 * (int64_t)r->keys;
    if (lo < 1) lo = 1;
    return lo + (int64_t)(rpc_rng_next(g) % (uint64_t)(hi - lo + 1));
}

static int text_hex(const char *text, char *hex, size_t cap)
{
    return jh_hex((const uint8_t *)text, strlen(text), hex, cap);
}

int jh_split_point(jh_run *r, rpc_rng *g, char *hex, size_t cap)
{
    char key[48];
    const char *w = r->wl->name;
    if (!strcmp(w, "register")) {
        reg_key(near_live(r, g), key, sizeof(key));
        return text_hex(key, hex, cap);
    }
    if (!strcmp(w, "set")) { /* around the values handed out last */
        int64_t next = (int64_t)atomic_load(&((wl_state *)r->wl_state)->next_value);
        int64_t lo = next > 50 ? next - 50 : 1;
        snprintf(key, sizeof(key), SET_PREFIX "%016" PRId64,
                 lo + (int64_t)(rpc_rng_next(g) % (uint64_t)(next + 50 - lo + 1)));
        return text_hex(key, hex, cap);
    }
    if (!r->table_id) return -1;
    if (!strcmp(w, "bank")) /* accounts 0..accounts-1: a boundary inside */
        return jh_row_key_hex(
            r->table_id, 1 + (int64_t)(rpc_rng_next(g) % (uint64_t)(r->accounts - 1)), hex, cap);
    return jh_row_key_hex(r->table_id, near_live(r, g), hex, cap);
}

static void text_span(const char *lo, const char *hi, jh_keyspan *sp)
{
    sp->lo_len = strlen(lo);
    sp->hi_len = strlen(hi);
    memcpy(sp->lo, lo, sp->lo_len);
    memcpy(sp->hi, hi, sp->hi_len);
}

int jh_key_space(jh_run *r, jh_keyspan *sp)
{
    const char *w = r->wl->name;
    if (!strcmp(w, "register")) {
        text_span(REG_PREFIX, REG_END, sp);
        return 0;
    }
    if (!strcmp(w, "set")) {
        text_span(SET_PREFIX, SET_END, sp);
        return 0;
    }
    return r->table_id ? jh_table_span(r->table_id, sp) : -1;
}

/* ---- the table ---- */

static const jh_workload workloads[] = {
    {"register", NULL, reg_op, reg_final},
    {"set", NULL, set_op, set_final},
    {"bank", jh_bank_setup, jh_bank_op, jh_bank_final},
    {"list-append", jh_la_setup, jh_la_op, jh_la_final},
};

const jh_workload *jh_workload_find(const char *name)
{
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        if (!strcmp(workloads[i].name, name)) return &workloads[i];
    return NULL;
}

const char *jh_workload_names(void)
{
    return "register|set|bank|list-append";
}

int jh_workload_init(jh_run *r, merr *e)
{
    wl_state *s = calloc(1, sizeof(*s));
    if (!s) return merr_set(e, MERR_NOMEM, "out of memory");
    atomic_init(&s->next_value, 0);
    atomic_init(&s->ops, 0);
    atomic_init(&s->max_key, -1);
    atomic_init(&s->acked, 0);
    r->wl_state = s;
    return 0;
}

void jh_workload_free(jh_run *r)
{
    free(r->wl_state);
    r->wl_state = NULL;
}
