/* Randomized model test of the lock table.
 *
 * Many transactions with random (often tied) priorities run scripts of random
 * point and range lock requests. A brute-force reference model, written
 * independently of the table's indexes, predicts every answer (granted or
 * waiting, whom it waits for, whom it wounds, what a release grants and in
 * which order), and after every step the table's whole contents must equal
 * the model's and every pair of granted locks must be compatible. A driver
 * aborts wounded transactions at once and retries them with their original
 * priority, sometimes prepares before committing, sometimes gives up a wait
 * (client timeout) and asks again. It checks:
 *  - no deadlock: some transaction can always move, and all finish within a
 *    step bound;
 *  - no starvation: the oldest unfinished transaction never waits except for
 *    prepared ones.
 *
 * Seeds: 1..500 by default; MERIDIAN_LOCK_SEEDS=A-B and MERIDIAN_LOCK_TXNS=N
 * for longer sweeps by hand. A failure prints its seed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "txn/lock.h"
#include "txn/lock_index.h"

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static uint64_t cur_seed;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("seed %llu: ", (unsigned long long)cur_seed);                              \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

/* Keys with prefix relations among them, in memcmp order. */
static const char *const KEYS[] = {"", "a", "ab", "b", "ba", "c", "d", "e"};
#define NK 8

/* A span as key indices: point k=s; range [s,e); to_end [s, +inf). */
typedef struct rspan {
    txn_span_kind kind;
    int s, e;
} rspan;

static txn_span to_span(rspan r)
{
    const char *s = KEYS[r.s];
    switch (r.kind) {
    case TXN_SPAN_POINT: return txn_span_point(s, strlen(s));
    case TXN_SPAN_TO_END: return txn_span_to_end(s, strlen(s));
    default: return txn_span_range(s, strlen(s), KEYS[r.e], strlen(KEYS[r.e]));
    }
}

/* Overlap on key indices: the point k occupies just itself, and since KEYS
 * is sorted, index order is key order. A range [s,e) holds indices s..e-1. */
static int r_lo(rspan r)
{
    return r.s;
}
static int r_hi(rspan r) /* exclusive */
{
    return r.kind == TXN_SPAN_POINT ? r.s + 1 : r.kind == TXN_SPAN_TO_END ? NK : r.e;
}
static int r_overlap(rspan a, rspan b)
{
    /* A range [s,e) over this key set also contains keys between the listed
     * ones, but no request names such keys, so index intervals decide. */
    return r_lo(a) < r_hi(b) && r_lo(b) < r_hi(a);
}
static int r_same(rspan a, rspan b)
{
    return a.kind == b.kind && a.s == b.s && (a.kind != TXN_SPAN_RANGE || a.e == b.e);
}

enum { MAXE = 1024, MAXT = 64, MAXSCRIPT = 6 };

typedef struct rent {
    int txn; /* index */
    rspan sp;
    int mode;
    int granted;
    uint64_t seq, tag;
} rent;

typedef enum { T_RUN, T_WAIT, T_PREP, T_DONE } tstate;

typedef struct rtxn {
    txn_id id;
    txn_ts prio;
    tstate st;
    int pc, len;
    rspan script[MAXSCRIPT];
    int modes[MAXSCRIPT];
    int wounded, prepared;
    int retries;
} rtxn;

typedef struct model {
    rent e[MAXE];
    int ne;
    rtxn t[MAXT];
    int nt;
    uint64_t seq;
    txn_lock_table *lt;
    txn_lock_out out;
} model;

static int older(const model *m, int a, int b)
{
    return txn_prio_older(m->t[a].prio, m->t[a].id, m->t[b].prio, m->t[b].id);
}

static int conflicts(const rent *a, const rent *b)
{
    return a->txn != b->txn && r_overlap(a->sp, b->sp) && (a->mode == 2 || b->mode == 2);
}

/* Does entry x (of txn x->txn, maybe not in the table yet) meet a blocker? */
static int blocked_by(const model *m, const rent *x, int *oldest, int *wound, int *nwound)
{
    int blocked = 0;
    *oldest = -1;
    for (int i = 0; i < m->ne; i++) {
        const rent *o = &m->e[i];
        if (o == x || !conflicts(o, x)) continue;
        int is_older = older(m, o->txn, x->txn);
        if (!o->granted && !is_older) continue;
        blocked = 1;
        if (*oldest < 0 || older(m, o->txn, *oldest)) *oldest = o->txn;
        if (wound && o->granted && !is_older && !m->t[o->txn].wounded && !m->t[o->txn].prepared) {
            int seen = 0;
            for (int k = 0; k < *nwound; k++) seen |= wound[k] == o->txn;
            if (!seen) wound[(*nwound)++] = o->txn;
        }
    }
    return blocked;
}

static int own_granted(const model *m, int txn, rspan sp)
{
    for (int i = 0; i < m->ne; i++)
        if (m->e[i].txn == txn && m->e[i].granted && r_same(m->e[i].sp, sp)) return i;
    return -1;
}

static int by_id(const void *a, const void *b)
{
    txn_id x = *(const txn_id *)a, y = *(const txn_id *)b;
    return x < y ? -1 : x > y;
}

/* The model's answer to an acquire, checked against the table's. Returns
 * 1 granted, 2 waiting; wounded txns are listed in wound/nwound. */
static int do_acquire(model *m, int ti, rspan sp, int mode, int *wound, int *nwound)
{
    rtxn *t = &m->t[ti];
    uint64_t tag = m->seq + 1000;
    txn_lock_req req = {.txn = t->id,
                        .prio = t->prio,
                        .span = to_span(sp),
                        .mode = (txn_lock_mode)mode,
                        .tag = tag};
    merr err = {0};
    int rc = txn_lock_acquire(m->lt, &req, &m->out, &err);
    CHECK(rc == 0, "acquire failed: %s", err.msg);

    *nwound = 0;
    int want = 1, oldest = -1;
    if (!(sp.kind == TXN_SPAN_RANGE && sp.s == sp.e)) {
        int own = own_granted(m, ti, sp);
        if (own < 0 || m->e[own].mode < mode) {
            rent x = {.txn = ti, .sp = sp, .mode = mode, .seq = ++m->seq, .tag = tag};
            int blocked = blocked_by(m, &x, &oldest, wound, nwound);
            if (!blocked && own >= 0) {
                m->e[own].mode = mode;
            } else {
                CHECK(m->ne < MAXE, "model full");
                x.granted = !blocked;
                m->e[m->ne++] = x;
                want = blocked ? 2 : 1;
            }
        }
    }
    int got = m->out.status == TXN_LOCK_GRANTED ? 1 : 2;
    CHECK(got == want, "txn %llu: table says %d, model %d", (unsigned long long)t->id, got, want);
    if (want == 2)
        CHECK(m->out.waits_for == m->t[oldest].id, "waits for %llu, model %llu",
              (unsigned long long)m->out.waits_for, (unsigned long long)m->t[oldest].id);
    CHECK(m->out.n_wounded == (size_t)*nwound, "wounded %zu, model %d", m->out.n_wounded, *nwound);
    txn_id a[MAXT], b[MAXT];
    for (int i = 0; i < *nwound; i++) {
        a[i] = m->out.wounded[i];
        b[i] = m->t[wound[i]].id;
        m->t[wound[i]].wounded = 1;
        /* Wound-wait: only ever the younger is wounded. */
        CHECK(older(m, ti, wound[i]), "txn %llu wounded an older one", (unsigned long long)t->id);
    }
    qsort(a, (size_t)*nwound, sizeof(txn_id), by_id);
    qsort(b, (size_t)*nwound, sizeof(txn_id), by_id);
    CHECK(!memcmp(a, b, sizeof(txn_id) * (size_t)*nwound), "wounded set differs");
    return want;
}

static model *sort_m;
static int cand_cmp(const void *a, const void *b)
{
    const rent *x = &sort_m->e[*(const int *)a], *y = &sort_m->e[*(const int *)b];
    if (x->txn != y->txn) return older(sort_m, x->txn, y->txn) ? -1 : 1;
    return x->seq < y->seq ? -1 : 1;
}

static void grant_to(model *m, int ti);

/* Release (all, or only the waits) in table and model; compares the grants. */
static void do_release(model *m, int ti, int waits_only)
{
    rtxn *t = &m->t[ti];
    int rc = waits_only ? txn_lock_cancel_waits(m->lt, t->id, &m->out)
                        : txn_lock_release_all(m->lt, t->id, &m->out);
    CHECK(rc == 0, "release failed");
    int w = 0;
    for (int i = 0; i < m->ne; i++)
        if (m->e[i].txn != ti || (waits_only && m->e[i].granted)) m->e[w++] = m->e[i];
    m->ne = w;
    if (!waits_only) t->wounded = t->prepared = 0;

    /* Every waiter of a live transaction is a candidate here, not only those
     * overlapping what left: this checks the table's shortcut too. */
    int idx[MAXE], nc = 0;
    for (int i = 0; i < m->ne; i++)
        if (!m->e[i].granted && !m->t[m->e[i].txn].wounded) idx[nc++] = i;
    sort_m = m;
    qsort(idx, (size_t)nc, sizeof(int), cand_cmp);
    uint64_t seqs[MAXE];
    for (int i = 0; i < nc; i++) seqs[i] = m->e[idx[i]].seq;
    size_t ng = 0;
    txn_lock_grant grants[MAXE];
    for (int i = 0; i < nc; i++) {
        int k = -1;
        for (int j = 0; j < m->ne; j++)
            if (m->e[j].seq == seqs[i]) k = j;
        rent *c = &m->e[k];
        int oldest;
        if (blocked_by(m, c, &oldest, NULL, NULL)) continue;
        grants[ng++] = (txn_lock_grant){m->t[c->txn].id, c->tag, (txn_lock_mode)c->mode};
        int own = own_granted(m, c->txn, c->sp);
        if (own >= 0) {
            if (c->mode > m->e[own].mode) m->e[own].mode = c->mode;
            m->e[k] = m->e[--m->ne];
        } else {
            c->granted = 1;
        }
    }
    CHECK(m->out.n_granted == ng, "release of %llu granted %zu, model %zu",
          (unsigned long long)t->id, m->out.n_granted, ng);
    for (size_t i = 0; i < ng; i++)
        CHECK(m->out.granted[i].txn == grants[i].txn && m->out.granted[i].tag == grants[i].tag &&
                  m->out.granted[i].mode == grants[i].mode,
              "grant %zu differs", i);
    /* Copy: grant_to may release again and reuse the output. */
    for (size_t i = 0; i < ng; i++) {
        int g = -1;
        for (int j = 0; j < m->nt; j++)
            if (m->t[j].id == grants[i].txn) g = j;
        grant_to(m, g);
    }
}

static void grant_to(model *m, int ti)
{
    CHECK(m->t[ti].st == T_WAIT, "grant to a txn that does not wait");
    m->t[ti].st = T_RUN;
    m->t[ti].pc++;
}

static void abort_retry(model *m, int ti)
{
    do_release(m, ti, 0);
    m->t[ti].st = T_RUN;
    m->t[ti].pc = 0;
    m->t[ti].retries++;
}

/* The table's contents equal the model's, and granted locks are compatible. */
typedef struct dump {
    char rows[MAXE][48];
    int n;
} dump;

static int span_index(const uint8_t *k, size_t len)
{
    for (int i = 0; i < NK; i++)
        if (strlen(KEYS[i]) == len && !memcmp(KEYS[i], k, len)) return i;
    return -1;
}

static void dump_row(void *ctx, const txn_lock_info *in)
{
    dump *d = ctx;
    int s = span_index(in->span.start, in->span.start_len);
    int e = in->span.kind == TXN_SPAN_RANGE ? span_index(in->span.end, in->span.end_len) : 0;
    snprintf(d->rows[d->n++], 48, "%llu %d %d %d %d %d %llu", (unsigned long long)in->txn,
             (int)in->span.kind, s, e, (int)in->mode, in->granted, (unsigned long long)in->tag);
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void check_contents(model *m)
{
    static dump got, want;
    got.n = want.n = 0;
    txn_span all = txn_span_to_end("", 0);
    CHECK(txn_lock_visit(m->lt, &all, dump_row, &got) == 0, "visit");
    for (int i = 0; i < m->ne; i++) {
        rent *x = &m->e[i];
        snprintf(want.rows[want.n++], 48, "%llu %d %d %d %d %d %llu",
                 (unsigned long long)m->t[x->txn].id, (int)x->sp.kind, x->sp.s,
                 x->sp.kind == TXN_SPAN_RANGE ? x->sp.e : 0, x->mode, x->granted,
                 (unsigned long long)x->tag);
        for (int j = 0; j < i; j++)
            CHECK(!(x->granted && m->e[j].granted && conflicts(x, &m->e[j])),
                  "incompatible locks granted together");
    }
    qsort(got.rows, (size_t)got.n, 48, row_cmp);
    qsort(want.rows, (size_t)want.n, 48, row_cmp);
    CHECK(got.n == want.n, "table has %d entries, model %d", got.n, want.n);
    for (int i = 0; i < got.n; i++)
        CHECK(!strcmp(got.rows[i], want.rows[i]), "entry differs: %s vs %s", got.rows[i],
              want.rows[i]);
    CHECK(txn_lock_check(m->lt) == 0, "index invariants");
}

static void random_script(rtxn *t)
{
    t->len = 1 + (int)rn(MAXSCRIPT);
    for (int i = 0; i < t->len; i++) {
        rspan *s = &t->script[i];
        unsigned r = rn(10);
        s->s = (int)rn(NK);
        if (r < 6) {
            s->kind = TXN_SPAN_POINT;
        } else if (r < 9) {
            s->kind = TXN_SPAN_RANGE;
            s->e = s->s + (int)rn((unsigned)(NK - s->s)); /* may be empty */
        } else {
            s->kind = TXN_SPAN_TO_END;
        }
        t->modes[i] = rn(3) ? TXN_LOCK_S : TXN_LOCK_X;
    }
}

static void run_seed(uint64_t seed, int ntxn, long *steps_out, long *retries_out)
{
    static model m;
    memset(&m, 0, sizeof(m));
    cur_seed = seed;
    rng_state = seed;
    CHECK(txn_lock_table_new(NULL, &m.lt) == 0, "new");
    txn_lock_out_init(&m.out);
    m.nt = ntxn;
    for (int i = 0; i < ntxn; i++) {
        m.t[i].id = 100 + (txn_id)i;
        m.t[i].prio = rn((unsigned)ntxn / 2 + 1); /* ties are common */
        random_script(&m.t[i]);
    }
    long bound = 2000L * ntxn, step = 0;
    int done = 0;
    while (done < ntxn) {
        CHECK(step++ < bound, "not finished after %ld steps", bound);
        int movable[MAXT], nm = 0, waiting[MAXT], nw = 0;
        for (int i = 0; i < ntxn; i++) {
            if (m.t[i].st == T_RUN || m.t[i].st == T_PREP) movable[nm++] = i;
            if (m.t[i].st == T_WAIT) waiting[nw++] = i;
        }
        CHECK(nm > 0, "deadlock: %d transactions wait and none can move", nw);
        if (nw && rn(20) == 0) {
            /* A client gives up waiting; it will ask again. */
            int ti = waiting[rn((unsigned)nw)];
            m.t[ti].st = T_RUN;
            do_release(&m, ti, 1);
            check_contents(&m);
            continue;
        }
        int ti = movable[rn((unsigned)nm)];
        rtxn *t = &m.t[ti];
        if (t->st == T_PREP || (t->pc == t->len && rn(2))) {
            do_release(&m, ti, 0); /* commit */
            t->st = T_DONE;
            done++;
        } else if (t->pc == t->len) {
            int holds = 0;
            for (int i = 0; i < m.ne; i++) holds |= m.e[i].txn == ti;
            int rc = txn_lock_set_prepared(m.lt, t->id);
            CHECK(rc == (holds ? 0 : MERR_NOTFOUND), "prepare answered %d", rc);
            t->prepared = 1;
            t->st = T_PREP;
        } else {
            int wound[MAXT], nwound;
            int r = do_acquire(&m, ti, t->script[t->pc], t->modes[t->pc], wound, &nwound);
            if (r == 1)
                t->pc++;
            else
                t->st = T_WAIT;
            for (int k = 0; k < nwound; k++) abort_retry(&m, wound[k]);
        }
        check_contents(&m);

        /* The oldest unfinished transaction waits only for prepared ones. */
        int old = -1;
        for (int i = 0; i < ntxn; i++)
            if (m.t[i].st != T_DONE && (old < 0 || older(&m, i, old))) old = i;
        if (old >= 0 && m.t[old].st == T_WAIT) {
            for (int i = 0; i < m.ne; i++) {
                if (m.e[i].txn != old || m.e[i].granted) continue;
                for (int j = 0; j < m.ne; j++)
                    if (m.e[j].granted && conflicts(&m.e[i], &m.e[j]))
                        CHECK(m.t[m.e[j].txn].st == T_PREP,
                              "oldest txn %llu blocked by unprepared %llu",
                              (unsigned long long)m.t[old].id,
                              (unsigned long long)m.t[m.e[j].txn].id);
            }
        }
    }
    txn_lock_stats st;
    txn_lock_get_stats(m.lt, &st);
    CHECK(st.entries == 0 && st.objects == 0 && st.txns == 0, "memory left after all commits");
    long retries = 0;
    for (int i = 0; i < ntxn; i++) retries += m.t[i].retries;
    *steps_out += step;
    *retries_out += retries;
    txn_lock_table_free(m.lt);
    txn_lock_out_free(&m.out);
}

static void test_random_model(void **state)
{
    (void)state;
    uint64_t a = 1, b = 500;
    int ntxn = 10;
    const char *env = getenv("MERIDIAN_LOCK_SEEDS");
    if (env && sscanf(env, "%llu-%llu", (unsigned long long *)&a, (unsigned long long *)&b) != 2)
        fail_msg("MERIDIAN_LOCK_SEEDS wants A-B");
    env = getenv("MERIDIAN_LOCK_TXNS");
    if (env) ntxn = atoi(env);
    if (ntxn < 1 || ntxn > MAXT) fail_msg("MERIDIAN_LOCK_TXNS wants 1..%d", MAXT);
    long steps = 0, retries = 0;
    for (uint64_t s = a; s <= b; s++) run_seed(s, ntxn, &steps, &retries);
    print_message("lock model: seeds %llu-%llu, %d txns: %ld steps, %ld wound retries\n",
                  (unsigned long long)a, (unsigned long long)b, ntxn, steps, retries);
    assert_true(retries > 0); /* the sweep did exercise wounding */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
