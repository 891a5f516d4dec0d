/* Linearizability of single registers (read / write / cas), key by key.
 *
 * Linearizability is compositional (Herlihy & Wing), so each key is checked
 * alone. For one key the search is Wing & Gong's: walk the call/return events
 * in time order; at a call, try to linearize that operation now (apply it to
 * the register model, take its call and return events out of the list, start
 * again from the head); at a return whose operation has not been linearized,
 * the choice made last was wrong: undo it and try the next candidate. Lowe's
 * memoization ("Testing for linearizability", 2017) prunes the search: a
 * configuration is (set of linearized ops, register state); reaching one that
 * was seen before cannot succeed where it failed before, so it is skipped.
 * The set hash is Zobrist-style (XOR of per-op random words) so that it is
 * updated in O(1).
 *
 * One more pruning: an op that never changes the state (a read, a cas to
 * the value it expects) and is legal now is linearized greedily, with no
 * alternative tried. If any linearization exists from here, one exists with
 * that op first: it changes nothing for the ops after it, and every op that
 * had to precede it is already linearized (else its return event would have
 * come first). A write of the current value does not qualify: moved from a
 * later, different state to now, it would lose its effect there.
 *
 * Indeterminate (info) operations have no return event: they may be
 * linearized anywhere after their call, and the search succeeds as soon as
 * no return event is left, i.e. when every ok operation is linearized —
 * which leaves the remaining info operations as never having happened.
 * Failed operations did not happen and are dropped; so are info reads and ok
 * reads without a value (they constrain nothing).
 *
 * Bounds (steps, cache bytes, ops per key) turn a search that would run too
 * long into an UNKNOWN verdict for that key. */
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_check.h"

typedef struct reg_state {
    int64_t v;
    int has; /* 0 = nil */
} reg_state;

typedef struct lop { /* one operation of the key under check */
    const jp_op *op;
    const jp_call *call;
    uint64_t zob;
    int64_t ret; /* its return event, INT64_MAX if it has none */
} lop;

typedef struct node {
    int op;      /* index into lops */
    int is_call; /* else a return event */
    int64_t t;
    int match; /* call: its return node or -1 (info) */
    int prev, next;
} node;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t state_hash(reg_state s)
{
    uint64_t x = (uint64_t)s.v ^ ((uint64_t)s.has << 63);
    return splitmix(&x);
}

/* Applies op to s. Returns 1 if the op is legal in state s. */
static int step(reg_state s, const jp_op *op, reg_state *out)
{
    *out = s;
    switch (op->f) {
    case JP_F_READ:
        if (op->v1.kind == JP_V_NIL) return !s.has;
        return s.has && s.v == op->v1.i;
    case JP_F_WRITE:
        out->has = 1;
        out->v = op->v1.i;
        return 1;
    case JP_F_CAS:
        if (op->v1.kind == JP_V_NIL ? s.has : (!s.has || s.v != op->v1.i)) return 0;
        out->has = 1;
        out->v = op->v2.i;
        return 1;
    default: return 0;
    }
}

/* 1 if op leaves every state it is legal in unchanged: a read, or a cas to
 * the value it expects. (A write of the current value is not: later, in
 * another state, the same write would change it.) */
static int preserving(const jp_op *op)
{
    return op->f == JP_F_READ ||
           (op->f == JP_F_CAS && op->v1.kind == JP_V_INT && op->v1.i == op->v2.i);
}

/* ---- the memo: a set of (bitset, state) ---- */

typedef struct memo {
    size_t words;  /* bitset words */
    uint64_t *ent; /* arena: per entry words + 2 (state v, has) */
    size_t nent, capent;
    uint32_t *slot; /* open addressing: entry index + 1, 0 = empty */
    uint64_t *slothash;
    size_t nslot;
    size_t max_bytes;
} memo;

static size_t memo_bytes(const memo *m)
{
    return m->capent * (m->words + 2) * 8 + m->nslot * 12;
}

static int memo_grow_slots(memo *m)
{
    size_t n = m->nslot ? m->nslot * 2 : 1024;
    uint32_t *slot = calloc(n, sizeof(uint32_t));
    uint64_t *sh = calloc(n, sizeof(uint64_t));
    if (!slot || !sh) {
        free(slot);
        free(sh);
        return MERR_NOMEM;
    }
    for (size_t i = 0; i < m->nslot; i++) {
        if (!m->slot[i]) continue;
        size_t j = m->slothash[i] & (n - 1);
        while (slot[j]) j = (j + 1) & (n - 1);
        slot[j] = m->slot[i];
        sh[j] = m->slothash[i];
    }
    free(m->slot);
    free(m->slothash);
    m->slot = slot;
    m->slothash = sh;
    m->nslot = n;
    return 0;
}

/* Adds (bits, s) unless present. Returns 1 if added, 0 if seen before,
 * MERR_TOOBIG past the byte budget, MERR_NOMEM. */
static int memo_add(memo *m, const uint64_t *bits, reg_state s, uint64_t h)
{
    if ((m->nent + 1) * 2 > m->nslot) {
        if (m->nslot && memo_bytes(m) * 2 > m->max_bytes) return MERR_TOOBIG;
        if (memo_grow_slots(m)) return MERR_NOMEM;
    }
    size_t stride = m->words + 2;
    size_t j = h & (m->nslot - 1);
    for (; m->slot[j]; j = (j + 1) & (m->nslot - 1)) {
        if (m->slothash[j] != h) continue;
        const uint64_t *e = m->ent + (size_t)(m->slot[j] - 1) * stride;
        if (e[m->words] == (uint64_t)s.v && e[m->words + 1] == (uint64_t)s.has &&
            memcmp(e, bits, m->words * 8) == 0)
            return 0;
    }
    if (m->nent == m->capent) {
        size_t cap = m->capent ? m->capent * 2 : 1024;
        if ((cap * stride * 8) > m->max_bytes || cap >= UINT32_MAX) return MERR_TOOBIG;
        uint64_t *ent = realloc(m->ent, cap * stride * 8);
        if (!ent) return MERR_NOMEM;
        m->ent = ent;
        m->capent = cap;
    }
    uint64_t *e = m->ent + m->nent * stride;
    memcpy(e, bits, m->words * 8);
    e[m->words] = (uint64_t)s.v;
    e[m->words + 1] = (uint64_t)s.has;
    m->slot[j] = (uint32_t)(++m->nent);
    m->slothash[j] = h;
    return 1;
}

static void memo_free(memo *m)
{
    free(m->ent);
    free(m->slot);
    free(m->slothash);
}

/* ---- events ---- */

static int node_cmp(const void *a, const void *b)
{
    const node *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    /* At equal times calls come first: the two ops count as concurrent, the
     * permissive reading of a tie. */
    if (x->is_call != y->is_call) return x->is_call ? -1 : 1;
    return x->op - y->op;
}

static void lift(node *n, int i)
{
    n[n[i].prev].next = n[i].next;
    if (n[i].next >= 0) n[n[i].next].prev = n[i].prev;
    int m = n[i].match;
    if (m >= 0) {
        n[n[m].prev].next = n[m].next;
        if (n[m].next >= 0) n[n[m].next].prev = n[m].prev;
    }
}

static void unlift(node *n, int i)
{
    int m = n[i].match;
    if (m >= 0) {
        n[n[m].prev].next = m;
        if (n[m].next >= 0) n[n[m].next].prev = m;
    }
    n[n[i].prev].next = i;
    if (n[i].next >= 0) n[n[i].next].prev = i;
}

static void fmt_state(mbuf *b, reg_state s)
{
    if (s.has)
        mbuf_printf(b, "%lld", (long long)s.v);
    else
        mbuf_append_str(b, "nil");
}

#define MAX_EXPLAIN_STATES 8

/* Checks one key. Returns 0 (report updated) or MERR_NOMEM. */
static int check_key(const jp_history *h, int64_t key, lop *ops, int m, const jp_register_opts *o,
                     uint64_t *total_steps, jp_report *r)
{
    int rc = 0;
    int nn = 0;
    uint64_t steps = 0;
    node *n = calloc((size_t)(2 * m + 1), sizeof(node));
    struct frame {
        int node;
        int greedy; /* linearized without changing the state: no alternative */
        reg_state prev;
    } *stack = calloc((size_t)m + 1, sizeof(*stack));
    int *pos = malloc((size_t)(2 * m + 1) * sizeof(int));
    memo mm = {.words = ((size_t)m + 63) / 64, .max_bytes = o->max_cache_bytes};
    uint64_t *bits = calloc(mm.words, 8);
    if (!n || !stack || !bits || !pos) {
        rc = MERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < m; i++) {
        n[nn++] = (node){.op = i, .is_call = 1, .t = ops[i].call->t_inv, .match = -1};
        if (ops[i].ret != INT64_MAX)
            n[nn++] = (node){.op = i, .is_call = 0, .t = ops[i].ret, .match = -1};
    }
    qsort(n, (size_t)nn, sizeof(node), node_cmp);
    /* Link calls to their returns; the sentinel head is node nn. */
    for (int i = 0; i < nn; i++) pos[i] = -1;
    for (int i = 0; i < nn; i++)
        if (n[i].is_call) pos[n[i].op] = i;
    for (int i = 0; i < nn; i++)
        if (!n[i].is_call) n[pos[n[i].op]].match = i;
    int head = nn;
    n[head] = (node){.op = -1, .prev = -1, .next = nn ? 0 : -1};
    for (int i = 0; i < nn; i++) {
        n[i].prev = i == 0 ? head : i - 1;
        n[i].next = i + 1 < nn ? i + 1 : -1;
    }

    reg_state s = {0, 0};
    uint64_t hset = 0;
    int sp = 0;
    int best_depth = -1, best_op = -1, nbest = 0;
    reg_state best_states[MAX_EXPLAIN_STATES];
    int cur = n[head].next;
    while (cur >= 0) {
        if (++steps > o->max_steps) {
            jp_report_unknown(r, "key %lld: search gave up after %llu steps (%d ops)",
                              (long long)key, (unsigned long long)o->max_steps, m);
            goto out;
        }
        node *c = &n[cur];
        if (c->is_call) {
            reg_state ns;
            if (step(s, ops[c->op].op, &ns)) {
                bits[c->op / 64] |= 1ULL << (c->op % 64);
                uint64_t hh = hset ^ ops[c->op].zob;
                int added = memo_add(&mm, bits, ns, hh ^ state_hash(ns));
                if (added < 0) {
                    bits[c->op / 64] &= ~(1ULL << (c->op % 64));
                    if (added == MERR_NOMEM) {
                        rc = MERR_NOMEM;
                        goto out;
                    }
                    jp_report_unknown(r, "key %lld: search cache exceeded %zu bytes (%d ops)",
                                      (long long)key, o->max_cache_bytes, m);
                    goto out;
                }
                int greedy = preserving(ops[c->op].op);
                if (added) {
                    stack[sp++] = (struct frame){cur, greedy, s};
                    s = ns;
                    hset = hh;
                    lift(n, cur);
                    cur = n[head].next;
                    continue;
                }
                bits[c->op / 64] &= ~(1ULL << (c->op % 64));
                if (greedy) goto backtrack;
            }
            cur = c->next;
            continue;
        }
        /* A return event of an op not yet linearized: dead end. */
        if (sp > best_depth || (sp == best_depth && c->op != best_op)) {
            best_depth = sp;
            best_op = c->op;
            nbest = 0;
        }
        if (sp == best_depth && c->op == best_op && nbest < MAX_EXPLAIN_STATES) {
            int dup = 0;
            for (int i = 0; i < nbest; i++)
                dup |= best_states[i].has == s.has && best_states[i].v == s.v;
            if (!dup) best_states[nbest++] = s;
        }
    backtrack:
        while (sp > 0 && stack[sp - 1].greedy) { /* undo greedy steps wholesale */
            struct frame f = stack[--sp];
            int op = n[f.node].op;
            bits[op / 64] &= ~(1ULL << (op % 64));
            hset ^= ops[op].zob;
            s = f.prev;
            unlift(n, f.node);
        }
        if (sp == 0) {
            const jp_op *bad = ops[best_op >= 0 ? best_op : 0].op;
            mbuf ex = MBUF_INIT;
            mbuf_printf(&ex, "key %lld: line %zu (process %lld %s", (long long)key, bad->line,
                        (long long)bad->process, jp_fn_name(bad->f));
            if (bad->v1.kind == JP_V_INT) mbuf_printf(&ex, " %lld", (long long)bad->v1.i);
            if (bad->v1.kind == JP_V_NIL) mbuf_append_str(&ex, " nil");
            if (bad->f == JP_F_CAS) mbuf_printf(&ex, " -> %lld", (long long)bad->v2.i);
            mbuf_printf(&ex,
                        ") cannot be linearized after %d of %d ops; register states "
                        "reachable there: ",
                        best_depth, m);
            for (int i = 0; i < nbest; i++) {
                if (i) mbuf_append_str(&ex, ", ");
                fmt_state(&ex, best_states[i]);
            }
            mbuf_append_u8(&ex, 0);
            jp_report_add(r, JP_A_NONLINEAR, "%s", ex.data ? (char *)ex.data : "");
            mbuf_free(&ex);
            goto out;
        }
        struct frame f = stack[--sp];
        int op = n[f.node].op;
        bits[op / 64] &= ~(1ULL << (op % 64));
        hset ^= ops[op].zob;
        s = f.prev;
        unlift(n, f.node);
        cur = n[f.node].next;
    }
out:
    *total_steps += steps;
    free(n);
    free(stack);
    free(pos);
    free(bits);
    memo_free(&mm);
    return rc;
}

/* ---- taming indeterminate operations ----
 *
 * Every info op doubles the configurations to search (it happened here, or
 * later, or never), so they are narrowed first, without changing the
 * verdict. A value is observed if an ok read returns it or an ok cas expects
 * it; its deadline is the earliest completion among those observers. It is
 * needed if observed, or expected by an info cas whose new value is needed.
 *  - An info op whose written value is not needed is dropped: had it
 *    happened, only observers of its value could tell, and there are none.
 *  - An info op that is the only writer of an observed value must have
 *    happened before the value's deadline: it gets that as its return. */

typedef struct obs {
    int64_t v;
    int64_t deadline; /* earliest completion of an ok observer; INT64_MAX: none */
    int needed;       /* observed, directly or through info cas that may need it */
    int writers;
} obs;

static int obs_cmp(const void *a, const void *b)
{
    const obs *x = a, *y = b;
    return (x->v > y->v) - (x->v < y->v);
}

static obs *obs_find(obs *o, size_t n, int64_t v)
{
    obs k = {.v = v};
    return bsearch(&k, o, n, sizeof(obs), obs_cmp);
}

static int64_t written_val(const jp_op *op)
{
    return op->f == JP_F_WRITE ? op->v1.i : op->v2.i;
}

/* Returns the number of ops kept (moved to the front), or MERR_NOMEM. */
static int narrow_info(lop *ops, int m)
{
    obs *o = malloc(((size_t)m * 2 + 1) * sizeof(obs));
    if (!o) return MERR_NOMEM;
    size_t no = 0;
    for (int i = 0; i < m; i++) { /* every value any op mentions */
        const jp_op *op = ops[i].op;
        ops[i].ret = ops[i].call->type == JP_OK ? ops[i].call->t_done : INT64_MAX;
        if (op->v1.kind == JP_V_INT) o[no++] = (obs){op->v1.i, INT64_MAX, 0, 0};
        if (op->f == JP_F_CAS) o[no++] = (obs){op->v2.i, INT64_MAX, 0, 0};
    }
    qsort(o, no, sizeof(obs), obs_cmp);
    size_t u = 0;
    for (size_t i = 0; i < no; i++)
        if (u == 0 || o[u - 1].v != o[i].v) o[u++] = o[i];
    no = u;
    for (int i = 0; i < m; i++) {
        const jp_op *op = ops[i].op;
        if (op->f != JP_F_READ) obs_find(o, no, written_val(op))->writers++;
        if (ops[i].call->type != JP_OK || op->f == JP_F_WRITE || op->v1.kind != JP_V_INT) continue;
        obs *p = obs_find(o, no, op->v1.i);
        p->needed = 1;
        if (ops[i].ret < p->deadline) p->deadline = ops[i].ret;
    }
    /* An info cas whose new value is needed may itself be needed, and then so
     * is the value it expects. Only "may": the new value could have come from
     * another writer, so no deadline follows from this. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < m; i++) {
            const jp_op *op = ops[i].op;
            if (ops[i].call->type == JP_OK || op->f != JP_F_CAS || op->v1.kind != JP_V_INT)
                continue;
            obs *old = obs_find(o, no, op->v1.i);
            if (obs_find(o, no, op->v2.i)->needed && !old->needed) {
                old->needed = 1;
                changed = 1;
            }
        }
    }
    int k = 0;
    for (int i = 0; i < m; i++) {
        if (ops[i].call->type != JP_OK && ops[i].op->f != JP_F_READ) {
            obs *p = obs_find(o, no, written_val(ops[i].op));
            if (!p->needed) continue; /* unobserved: as if it never happened */
            if (p->writers == 1 && p->deadline != INT64_MAX)
                ops[i].ret = p->deadline > ops[i].call->t_inv ? p->deadline : ops[i].call->t_inv;
        }
        ops[k++] = ops[i];
    }
    free(o);
    return k;
}

static int lop_cmp(const void *a, const void *b)
{
    const lop *x = a, *y = b;
    if (x->op->key != y->op->key) return x->op->key < y->op->key ? -1 : 1;
    return x->call->t_inv < y->call->t_inv ? -1 : x->call->t_inv > y->call->t_inv;
}

int jp_check_register(const jp_history *h, const jp_register_opts *opts, jp_report *r, merr *e)
{
    jp_register_opts o = opts ? *opts : (jp_register_opts){0};
    if (!o.max_steps) o.max_steps = 5000000;
    if (!o.max_cache_bytes) o.max_cache_bytes = (size_t)512 << 20;
    if (!o.max_ops_per_key) o.max_ops_per_key = 100000;
    lop *ops = calloc(h->ncalls ? h->ncalls : 1, sizeof(lop));
    if (!ops) return merr_set(e, MERR_NOMEM, "register: out of memory");
    size_t m = 0, other = 0;
    uint64_t seed = 0x6a09e667f3bcc909ULL;
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *c = &h->calls[i];
        const jp_op *op = jp_call_op(h, c);
        if (op->f != JP_F_READ && op->f != JP_F_WRITE && op->f != JP_F_CAS) {
            other++;
            continue;
        }
        if (c->type == JP_FAIL) continue;
        if (op->f == JP_F_READ && (c->type != JP_OK || op->v1.kind == JP_V_NONE)) continue;
        ops[m++] = (lop){.op = op, .call = c, .zob = splitmix(&seed)};
    }
    if (other) jp_report_unknown(r, "%zu operations are not read/write/cas; ignored", other);
    qsort(ops, m, sizeof(lop), lop_cmp);
    int rc = 0;
    size_t nkeys = 0, nkept = 0;
    uint64_t steps = 0;
    for (size_t i = 0; i < m && rc == 0;) {
        size_t j = i;
        while (j < m && ops[j].op->key == ops[i].op->key) j++;
        if (j - i > o.max_ops_per_key)
            jp_report_unknown(r, "key %lld: %zu ops exceed the bound of %zu",
                              (long long)ops[i].op->key, j - i, o.max_ops_per_key);
        else {
            int k = narrow_info(ops + i, (int)(j - i));
            rc = k < 0 ? k : check_key(h, ops[i].op->key, ops + i, k, &o, &steps, r);
            nkept += k > 0 ? (size_t)k : 0;
        }
        nkeys++;
        i = j;
    }
    if (rc == 0)
        (void)mbuf_printf(&r->text, "summary: %zu keys, %zu of %zu ops searched, %llu steps\n",
                          nkeys, nkept, m, (unsigned long long)steps);
    free(ops);
    if (rc) return merr_set(e, rc, "register: out of memory");
    return 0;
}
