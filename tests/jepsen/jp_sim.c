/* Seeded simulations of correct register, list-append, bank and set systems,
 * and injectors of one anomaly each (see jp_sim.h). */
#include "tests/jepsen/jp_sim.h"

#include <stdlib.h>
#include <string.h>

typedef struct sim sim;
struct sim {
    jp_sim_opts o;
    uint64_t rng;
    int64_t next_unique;
    int64_t *reg; /* registers / balances */
    int *has;
    jp_val *lists; /* list-append state and the set (lists[0]) */
    void (*gen)(sim *, jp_op *);
    int (*apply)(sim *, jp_op *); /* on the completion op: JP_OK / JP_FAIL / <0 */
};

static uint64_t next_u64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t rnd(sim *s, int64_t n)
{
    return (int64_t)(next_u64(&s->rng) % (uint64_t)n);
}

static double rnd01(uint64_t *x)
{
    return (double)(next_u64(x) >> 11) * (1.0 / 9007199254740992.0);
}

static int list_push(jp_val *v, int64_t x)
{
    int64_t *it = realloc(v->items, (v->n + 1) * sizeof(int64_t));
    if (!it) return MERR_NOMEM;
    v->items = it;
    v->items[v->n++] = x;
    v->kind = JP_V_LIST;
    return 0;
}

/* ---- register ---- */

static void reg_gen(sim *s, jp_op *op)
{
    op->key = rnd(s, s->o.keys);
    int64_t r = rnd(s, 10);
    if (r < 4) {
        op->f = JP_F_READ;
    } else if (r < 7) {
        op->f = JP_F_WRITE;
        op->v1 = (jp_val){.kind = JP_V_INT, .i = s->next_unique++};
    } else {
        op->f = JP_F_CAS;
        if (rnd(s, 2) && s->has[op->key])
            op->v1 = (jp_val){.kind = JP_V_INT, .i = s->reg[op->key]};
        else if (s->next_unique > 1)
            op->v1 = (jp_val){.kind = JP_V_INT, .i = 1 + rnd(s, s->next_unique - 1)};
        else
            op->v1.kind = JP_V_NIL;
        op->v2 = (jp_val){.kind = JP_V_INT, .i = s->next_unique++};
    }
}

static int reg_apply(sim *s, jp_op *op)
{
    int64_t k = op->key;
    switch (op->f) {
    case JP_F_READ:
        op->v1 =
            s->has[k] ? (jp_val){.kind = JP_V_INT, .i = s->reg[k]} : (jp_val){.kind = JP_V_NIL};
        return JP_OK;
    case JP_F_WRITE:
        s->has[k] = 1;
        s->reg[k] = op->v1.i;
        return JP_OK;
    default:
        if (op->v1.kind == JP_V_NIL ? s->has[k] : (!s->has[k] || s->reg[k] != op->v1.i))
            return JP_FAIL;
        s->has[k] = 1;
        s->reg[k] = op->v2.i;
        return JP_OK;
    }
}

/* ---- list-append ---- */

static void la_gen(sim *s, jp_op *op)
{
    op->f = JP_F_TXN;
    op->nmops = (size_t)(1 + rnd(s, 4));
    op->mops = calloc(op->nmops, sizeof(jp_mop));
    if (!op->mops) {
        op->nmops = 0; /* la_apply reports it */
        return;
    }
    for (size_t i = 0; i < op->nmops; i++) {
        jp_mop *m = &op->mops[i];
        m->key = rnd(s, s->o.keys);
        if (rnd(s, 2)) {
            m->kind = JP_MOP_R;
        } else {
            m->kind = JP_MOP_APPEND;
            m->val = (jp_val){.kind = JP_V_INT, .i = s->next_unique++};
        }
    }
}

static int la_apply(sim *s, jp_op *op)
{
    if (!op->nmops) return MERR_NOMEM;
    for (size_t i = 0; i < op->nmops; i++) {
        jp_mop *m = &op->mops[i];
        if (m->kind == JP_MOP_APPEND) {
            if (list_push(&s->lists[m->key], m->val.i)) return MERR_NOMEM;
        } else {
            if (jp_val_copy(&m->val, &s->lists[m->key])) return MERR_NOMEM;
            m->val.kind = JP_V_LIST;
        }
    }
    return JP_OK;
}

/* ---- rw-register ---- */

static void rw_gen(sim *s, jp_op *op)
{
    la_gen(s, op); /* the same shapes, with writes for appends */
    for (size_t i = 0; i < op->nmops; i++)
        if (op->mops[i].kind == JP_MOP_APPEND) op->mops[i].kind = JP_MOP_W;
}

static int rw_apply(sim *s, jp_op *op)
{
    if (!op->nmops) return MERR_NOMEM;
    for (size_t i = 0; i < op->nmops; i++) {
        jp_mop *m = &op->mops[i];
        if (m->kind == JP_MOP_W) {
            s->has[m->key] = 1;
            s->reg[m->key] = m->val.i;
        } else {
            m->val = s->has[m->key] ? (jp_val){.kind = JP_V_INT, .i = s->reg[m->key]}
                                    : (jp_val){.kind = JP_V_NIL};
        }
    }
    return JP_OK;
}

/* ---- bank ---- */

static void bank_gen(sim *s, jp_op *op)
{
    if (rnd(s, 10) < 7 && s->o.keys > 1) {
        op->f = JP_F_TRANSFER;
        op->key = rnd(s, s->o.keys);
        op->key2 = (op->key + 1 + rnd(s, s->o.keys - 1)) % s->o.keys;
        op->v1 = (jp_val){.kind = JP_V_INT, .i = 1 + rnd(s, 5)};
    } else {
        op->f = JP_F_BALANCES;
        op->v1.kind = JP_V_LIST;
    }
}

static int bank_apply(sim *s, jp_op *op)
{
    if (op->f == JP_F_TRANSFER) {
        if (s->reg[op->key] < op->v1.i) return JP_FAIL; /* no overdrafts */
        s->reg[op->key] -= op->v1.i;
        s->reg[op->key2] += op->v1.i;
        return JP_OK;
    }
    for (int a = 0; a < s->o.keys; a++)
        if (list_push(&op->v1, a) || list_push(&op->v1, s->reg[a])) return MERR_NOMEM;
    return JP_OK;
}

/* ---- set ---- */

static void set_gen(sim *s, jp_op *op)
{
    if (rnd(s, 10) < 9) {
        op->f = JP_F_INSERT;
        op->v1 = (jp_val){.kind = JP_V_INT, .i = s->next_unique++};
    } else {
        op->f = JP_F_MEMBERS;
    }
}

static int set_apply(sim *s, jp_op *op)
{
    if (op->f == JP_F_INSERT) return list_push(&s->lists[0], op->v1.i) ? MERR_NOMEM : JP_OK;
    jp_val_free(&op->v1);
    if (jp_val_copy(&op->v1, &s->lists[0])) return MERR_NOMEM;
    op->v1.kind = JP_V_LIST;
    return JP_OK;
}

/* ---- the engine ---- */

enum { P_IDLE, P_INVOKED, P_APPLIED };

typedef struct proc {
    int state;
    int64_t id;
    jp_op inv, done;
} proc;

static void op_clear(jp_op *op)
{
    jp_val_free(&op->v1);
    jp_val_free(&op->v2);
    for (size_t i = 0; i < op->nmops; i++) jp_val_free(&op->mops[i].val);
    free(op->mops);
    memset(op, 0, sizeof(*op));
}

/* Appends a copy of `op` with the given type and time. */
static int emit(jp_history *h, const jp_op *op, jp_type type, int64_t t, merr *e)
{
    jp_op c = *op;
    c.type = type;
    c.time = t;
    return jp_history_add(h, &c, e);
}

/* final_read: 0, or the function of a read run after everything else. */
static int run(sim *s, jp_history *h, int final_read, merr *e)
{
    jp_history_init(h);
    int np = s->o.processes, rc = 0, invoked = 0, busy = 0;
    proc *p = calloc((size_t)np, sizeof(proc));
    if (!p) return merr_set(e, MERR_NOMEM, "sim: out of memory");
    for (int i = 0; i < np; i++) p[i].id = i;
    int64_t t = 1000;
    while (rc == 0 && (invoked < s->o.ops || busy)) {
        t += 1 + rnd(s, 10);
        proc *q = &p[rnd(s, np)];
        double r = rnd01(&s->rng);
        if (q->state == P_IDLE) {
            if (invoked >= s->o.ops) continue;
            op_clear(&q->inv);
            s->gen(s, &q->inv);
            q->inv.process = q->id;
            q->inv.type = JP_INVOKE;
            if ((rc = emit(h, &q->inv, JP_INVOKE, t, e))) break;
            q->state = P_INVOKED;
            invoked++;
            busy++;
            continue;
        }
        int info = 0, idle = 1;
        if (q->state == P_INVOKED) {
            if (r < s->o.p_fail) {
                rc = emit(h, &q->inv, JP_FAIL, t, e);
            } else if (r < s->o.p_fail + s->o.p_info / 2) {
                info = 1;
            } else {
                op_clear(&q->done);
                if (jp_op_copy(&q->done, &q->inv)) {
                    rc = merr_set(e, MERR_NOMEM, "sim: out of memory");
                    break;
                }
                int res = s->apply(s, &q->done);
                if (res < 0) {
                    rc = merr_set(e, res, "sim: out of memory");
                    break;
                }
                if (res == JP_FAIL)
                    rc = emit(h, &q->inv, JP_FAIL, t, e);
                else
                    idle = 0, q->state = P_APPLIED;
            }
        } else if (r < s->o.p_info / 2) {
            info = 1;
        } else {
            rc = emit(h, &q->done, JP_OK, t, e);
        }
        if (info) {
            rc = emit(h, &q->inv, JP_INFO, t, e);
            q->id += np; /* an indeterminate process is retired */
        }
        if (idle) {
            q->state = P_IDLE;
            busy--;
        }
    }
    if (rc == 0 && final_read) { /* one read after everything, by a fresh process */
        jp_op op = {.process = (int64_t)np * (s->o.ops + 2), .f = (jp_fn)final_read};
        if (op.f == JP_F_BALANCES) op.v1.kind = JP_V_LIST;
        rc = emit(h, &op, JP_INVOKE, t + 10, e);
        if (rc == 0 && s->apply(s, &op) < 0) rc = merr_set(e, MERR_NOMEM, "sim: out of memory");
        if (rc == 0) rc = emit(h, &op, JP_OK, t + 20, e);
        op_clear(&op);
    }
    for (int i = 0; i < np; i++) {
        op_clear(&p[i].inv);
        op_clear(&p[i].done);
    }
    free(p);
    if (rc == 0) rc = jp_history_index(h, e);
    if (rc) jp_history_free(h);
    return rc;
}

static int sim_run(const jp_sim_opts *o, void (*gen)(sim *, jp_op *), int (*apply)(sim *, jp_op *),
                   int final_read, jp_history *h, merr *e)
{
    sim s = {.o = *o, .rng = o->seed, .next_unique = 1, .gen = gen, .apply = apply};
    if (s.o.processes <= 0) s.o.processes = 5;
    if (s.o.ops <= 0) s.o.ops = 100;
    if (s.o.keys <= 0) s.o.keys = 3;
    if (s.o.total <= 0) s.o.total = 100;
    s.reg = calloc((size_t)s.o.keys, sizeof(int64_t));
    s.has = calloc((size_t)s.o.keys, sizeof(int));
    s.lists = calloc((size_t)s.o.keys, sizeof(jp_val));
    int rc;
    if (!s.reg || !s.has || !s.lists) {
        rc = merr_set(e, MERR_NOMEM, "sim: out of memory");
        jp_history_init(h);
        goto out;
    }
    if (apply == bank_apply) s.reg[0] = s.o.total; /* all the money starts in account 0 */
    rc = run(&s, h, final_read, e);
out:
    for (int i = 0; s.lists && i < s.o.keys; i++) jp_val_free(&s.lists[i]);
    free(s.reg);
    free(s.has);
    free(s.lists);
    return rc;
}

int jp_sim_register(const jp_sim_opts *o, jp_history *h, merr *e)
{
    return sim_run(o, reg_gen, reg_apply, 0, h, e);
}

int jp_sim_list_append(const jp_sim_opts *o, jp_history *h, merr *e)
{
    return sim_run(o, la_gen, la_apply, 0, h, e);
}

int jp_sim_rw_register(const jp_sim_opts *o, jp_history *h, merr *e)
{
    return sim_run(o, rw_gen, rw_apply, 0, h, e);
}

int jp_sim_bank(const jp_sim_opts *o, jp_history *h, merr *e)
{
    return sim_run(o, bank_gen, bank_apply, JP_F_BALANCES, h, e);
}

int jp_sim_set(const jp_sim_opts *o, jp_history *h, merr *e)
{
    return sim_run(o, set_gen, set_apply, JP_F_MEMBERS, h, e);
}
