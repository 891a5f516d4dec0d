/* Histories: in-memory model, the text parser and writer, and the pairing of
 * invocations with completions that every checker starts from. */
#include "tests/jepsen/jp_history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"

#define JP_MAX_FILE ((size_t)1 << 30)
#define JP_TOK_MAX  32

static const char *const type_names[] = {"invoke", "ok", "fail", "info"};
static const char *const fn_names[] = {"read",     "write",    "cas",    "append", "txn",
                                       "transfer", "balances", "insert", "members"};
static const char *const mop_names[] = {"r", "w", "append"};

const char *jp_type_name(jp_type t)
{
    return (unsigned)t < 4 ? type_names[t] : "?";
}

const char *jp_fn_name(jp_fn f)
{
    return (unsigned)f < sizeof(fn_names) / sizeof(fn_names[0]) ? fn_names[f] : "?";
}

void jp_history_init(jp_history *h)
{
    memset(h, 0, sizeof(*h));
}

void jp_val_free(jp_val *v)
{
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static void op_free(jp_op *op)
{
    jp_val_free(&op->v1);
    jp_val_free(&op->v2);
    for (size_t i = 0; i < op->nmops; i++) jp_val_free(&op->mops[i].val);
    free(op->mops);
    memset(op, 0, sizeof(*op));
}

void jp_history_free(jp_history *h)
{
    for (size_t i = 0; i < h->n; i++) op_free(&h->ops[i]);
    free(h->ops);
    free(h->calls);
    memset(h, 0, sizeof(*h));
}

int jp_val_copy(jp_val *dst, const jp_val *src)
{
    *dst = *src;
    dst->items = NULL;
    if (src->kind == JP_V_LIST && src->n > 0) {
        dst->items = malloc(src->n * sizeof(int64_t));
        if (!dst->items) return MERR_NOMEM;
        memcpy(dst->items, src->items, src->n * sizeof(int64_t));
    }
    return 0;
}

int jp_op_copy(jp_op *dst, const jp_op *src)
{
    *dst = *src;
    memset(&dst->v1, 0, sizeof(dst->v1));
    memset(&dst->v2, 0, sizeof(dst->v2));
    dst->mops = NULL;
    dst->nmops = 0;
    if (jp_val_copy(&dst->v1, &src->v1) || jp_val_copy(&dst->v2, &src->v2)) goto err;
    if (src->nmops) {
        dst->mops = calloc(src->nmops, sizeof(jp_mop));
        if (!dst->mops) goto err;
        for (size_t i = 0; i < src->nmops; i++) {
            dst->mops[i] = src->mops[i];
            dst->mops[i].val.items = NULL;
            dst->nmops = i + 1;
            if (jp_val_copy(&dst->mops[i].val, &src->mops[i].val)) goto err;
        }
    }
    return 0;
err:
    op_free(dst);
    return MERR_NOMEM;
}

/* Takes ownership of op's allocations (the parser's path). */
static int history_push(jp_history *h, jp_op *op, merr *e)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        jp_op *ops = realloc(h->ops, cap * sizeof(jp_op));
        if (!ops) return merr_set(e, MERR_NOMEM, "history: out of memory");
        h->ops = ops;
        h->cap = cap;
    }
    h->ops[h->n++] = *op;
    return 0;
}

int jp_history_add(jp_history *h, const jp_op *op, merr *e)
{
    jp_op c;
    if (jp_op_copy(&c, op)) return merr_set(e, MERR_NOMEM, "history: out of memory");
    /* Built in memory: the line it will have in jp_history_write's output
     * (after the header), so explanations point into the written file. */
    if (!c.line) c.line = h->n + 2;
    int rc = history_push(h, &c, e);
    if (rc) op_free(&c);
    return rc;
}

/* ---- pairing ---- */

static int same_shape(const jp_op *a, const jp_op *b)
{
    if (a->f != b->f) return 0;
    if (a->f == JP_F_TXN || a->f == JP_F_APPEND) {
        if (a->nmops != b->nmops) return 0;
        for (size_t i = 0; i < a->nmops; i++) {
            const jp_mop *x = &a->mops[i], *y = &b->mops[i];
            if (x->kind != y->kind || x->key != y->key) return 0;
            if (x->kind != JP_MOP_R && x->val.i != y->val.i) return 0;
        }
    }
    return 1;
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int jp_history_index(jp_history *h, merr *e)
{
    free(h->calls);
    h->calls = NULL;
    h->ncalls = 0;
    size_t ninv = 0;
    for (size_t i = 0; i < h->n; i++) ninv += h->ops[i].type == JP_INVOKE;
    for (size_t i = 0; i < h->n; i++)
        if (h->ops[i].process < 0)
            return merr_set(e, MERR_INVALID, "line %zu: negative process",
                            h->ops[i].line ? h->ops[i].line : i + 1);
    /* Process ids can be sparse (retired ids grow), so they are mapped to
     * dense slots through a sorted list of the distinct ids. */
    int64_t *pids = malloc((h->n ? h->n : 1) * sizeof(int64_t));
    size_t np = 0;
    size_t *pending = malloc((h->n ? h->n : 1) * sizeof(size_t));
    h->calls = calloc(ninv ? ninv : 1, sizeof(jp_call));
    if (!pids || !pending || !h->calls) {
        free(pids);
        free(pending);
        return merr_set(e, MERR_NOMEM, "history: out of memory");
    }
    for (size_t i = 0; i < h->n; i++) pids[i] = h->ops[i].process;
    qsort(pids, h->n, sizeof(int64_t), i64_cmp);
    for (size_t i = 0; i < h->n; i++)
        if (np == 0 || pids[np - 1] != pids[i]) pids[np++] = pids[i];
    for (size_t p = 0; p < np; p++) pending[p] = SIZE_MAX;
    int rc = 0;
    for (size_t i = 0; i < h->n; i++) {
        const jp_op *op = &h->ops[i];
        size_t ln = op->line ? op->line : i + 1;
        const int64_t *slot = bsearch(&op->process, pids, np, sizeof(int64_t), i64_cmp);
        size_t *pend = &pending[slot - pids];
        if (op->type == JP_INVOKE) {
            if (*pend != SIZE_MAX) {
                rc = merr_set(e, MERR_INVALID,
                              "line %zu: process %lld invokes while its previous operation "
                              "is still pending",
                              ln, (long long)op->process);
                goto err;
            }
            jp_call *c = &h->calls[h->ncalls];
            c->inv = i;
            c->done = SIZE_MAX;
            c->type = JP_INFO;
            c->t_inv = op->time;
            c->t_done = INT64_MAX;
            *pend = h->ncalls++;
            continue;
        }
        if (*pend == SIZE_MAX) {
            rc = merr_set(e, MERR_INVALID, "line %zu: %s completion of process %lld without invoke",
                          ln, jp_type_name(op->type), (long long)op->process);
            goto err;
        }
        jp_call *c = &h->calls[*pend];
        const jp_op *inv = &h->ops[c->inv];
        if (!same_shape(inv, op)) {
            rc = merr_set(e, MERR_INVALID,
                          "line %zu: completion does not match the invocation (%s) of process %lld",
                          ln, jp_fn_name(inv->f), (long long)op->process);
            goto err;
        }
        if (op->time < inv->time) {
            rc =
                merr_set(e, MERR_INVALID, "line %zu: completes before its invocation (%lld < %lld)",
                         ln, (long long)op->time, (long long)inv->time);
            goto err;
        }
        c->done = i;
        c->type = op->type;
        c->t_done = op->type == JP_INFO ? INT64_MAX : op->time;
        *pend = SIZE_MAX;
    }
    free(pids);
    free(pending);
    return 0;
err:
    free(pids);
    free(pending);
    free(h->calls);
    h->calls = NULL;
    h->ncalls = 0;
    return rc;
}

const jp_op *jp_call_op(const jp_history *h, const jp_call *c)
{
    if (c->type == JP_OK && c->done != SIZE_MAX) return &h->ops[c->done];
    return &h->ops[c->inv];
}

/* ---- parser ---- */

typedef struct lexer {
    const char *p, *end;
    size_t line;
    merr *e;
} lexer;

/* Next token of the current line: "[", "]" or a run of other non-space
 * characters. Returns its length, 0 at end of line. */
static size_t lex_next(lexer *lx, const char **tok)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r')) lx->p++;
    if (lx->p >= lx->end || *lx->p == '#') return 0;
    *tok = lx->p;
    if (*lx->p == '[' || *lx->p == ']') {
        lx->p++;
        return 1;
    }
    while (lx->p < lx->end && !strchr(" \t\r[]#", *lx->p)) lx->p++;
    return (size_t)(lx->p - *tok);
}

static int tok_is(const char *t, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(t, word, n) == 0;
}

static int bad(lexer *lx, const char *what, const char *t, size_t n)
{
    if (n == 0) return merr_set(lx->e, MERR_INVALID, "line %zu: expected %s", lx->line, what);
    if (n > JP_TOK_MAX) n = JP_TOK_MAX;
    return merr_set(lx->e, MERR_INVALID, "line %zu: expected %s, got '%.*s'", lx->line, what,
                    (int)n, t);
}

static int parse_int_tok(const char *t, size_t n, int64_t *out)
{
    char buf[JP_TOK_MAX + 1];
    if (n == 0 || n > JP_TOK_MAX) return -1;
    memcpy(buf, t, n);
    buf[n] = 0;
    char *endp;
    errno = 0;
    long long v = strtoll(buf, &endp, 10);
    if (errno || *endp || endp == buf) return -1;
    *out = v;
    return 0;
}

static int lex_int(lexer *lx, const char *what, int64_t *out)
{
    const char *t = NULL;
    size_t n = lex_next(lx, &t);
    if (parse_int_tok(t, n, out)) return bad(lx, what, t, n);
    return 0;
}

static int list_push(jp_val *v, int64_t x, size_t *cap)
{
    if (v->n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        int64_t *it = realloc(v->items, c * sizeof(int64_t));
        if (!it) return MERR_NOMEM;
        v->items = it;
        *cap = c;
    }
    v->items[v->n++] = x;
    return 0;
}

/* A list's items after its "[" up to and including "]". */
static int lex_list_rest(lexer *lx, jp_val *v)
{
    size_t cap = 0;
    v->kind = JP_V_LIST;
    for (;;) {
        const char *t = NULL;
        size_t n = lex_next(lx, &t);
        if (n == 1 && *t == ']') return 0;
        int64_t x;
        if (parse_int_tok(t, n, &x)) return bad(lx, "an integer or ']'", t, n);
        if (list_push(v, x, &cap)) return merr_set(lx->e, MERR_NOMEM, "out of memory");
    }
}

/* value := int | nil | _ | '[' int* ']' ; allowed kinds are a bitmask. */
static int lex_value(lexer *lx, const char *what, unsigned allow, jp_val *v)
{
    const char *t = NULL;
    size_t n = lex_next(lx, &t);
    memset(v, 0, sizeof(*v));
    if (tok_is(t, n, "_") && (allow & (1u << JP_V_NONE))) return 0;
    if (tok_is(t, n, "nil") && (allow & (1u << JP_V_NIL))) {
        v->kind = JP_V_NIL;
        return 0;
    }
    if (n == 1 && *t == '[' && (allow & (1u << JP_V_LIST))) return lex_list_rest(lx, v);
    if ((allow & (1u << JP_V_INT)) && parse_int_tok(t, n, &v->i) == 0) {
        v->kind = JP_V_INT;
        return 0;
    }
    return bad(lx, what, t, n);
}

#define A_NONE (1u << JP_V_NONE)
#define A_NIL  (1u << JP_V_NIL)
#define A_INT  (1u << JP_V_INT)
#define A_LIST (1u << JP_V_LIST)

static int grow_mops(jp_op *op, size_t *cap)
{
    if (op->nmops < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 4;
    jp_mop *m = realloc(op->mops, c * sizeof(jp_mop));
    if (!m) return MERR_NOMEM;
    op->mops = m;
    *cap = c;
    return 0;
}

static int lex_mop(lexer *lx, jp_mop *m)
{
    const char *t = NULL;
    size_t n = lex_next(lx, &t);
    memset(m, 0, sizeof(*m));
    if (tok_is(t, n, "r"))
        m->kind = JP_MOP_R;
    else if (tok_is(t, n, "w"))
        m->kind = JP_MOP_W;
    else if (tok_is(t, n, "append"))
        m->kind = JP_MOP_APPEND;
    else
        return bad(lx, "a micro-op r, w or append", t, n);
    int rc = lex_int(lx, "a key", &m->key);
    if (rc) return rc;
    if (m->kind == JP_MOP_R)
        rc = lex_value(lx, "a read value (int, list, nil or _)", A_NONE | A_NIL | A_INT | A_LIST,
                       &m->val);
    else
        rc = lex_value(lx, "an integer value", A_INT, &m->val);
    if (rc) return rc;
    n = lex_next(lx, &t);
    if (!(n == 1 && *t == ']')) return bad(lx, "']' closing the micro-op", t, n);
    return 0;
}

static int parse_args(lexer *lx, jp_op *op)
{
    int rc = 0;
    const char *t = NULL;
    size_t n, cap = 0;
    switch (op->f) {
    case JP_F_READ:
        if ((rc = lex_int(lx, "a key", &op->key))) return rc;
        return lex_value(lx, "a value (int, nil or _)", A_NONE | A_NIL | A_INT, &op->v1);
    case JP_F_WRITE:
        if ((rc = lex_int(lx, "a key", &op->key))) return rc;
        return lex_value(lx, "an integer value", A_INT, &op->v1);
    case JP_F_CAS:
        if ((rc = lex_int(lx, "a key", &op->key))) return rc;
        if ((rc = lex_value(lx, "the expected value (int or nil)", A_INT | A_NIL, &op->v1)))
            return rc;
        return lex_value(lx, "the new value", A_INT, &op->v2);
    case JP_F_APPEND:
        if (grow_mops(op, &cap)) return merr_set(lx->e, MERR_NOMEM, "out of memory");
        op->nmops = 1;
        memset(&op->mops[0], 0, sizeof(jp_mop));
        op->mops[0].kind = JP_MOP_APPEND;
        if ((rc = lex_int(lx, "a key", &op->mops[0].key))) return rc;
        return lex_value(lx, "an integer value", A_INT, &op->mops[0].val);
    case JP_F_TXN:
        while ((n = lex_next(lx, &t)) > 0) {
            if (!(n == 1 && *t == '[')) return bad(lx, "'[' opening a micro-op", t, n);
            if (grow_mops(op, &cap)) return merr_set(lx->e, MERR_NOMEM, "out of memory");
            op->nmops++;
            if ((rc = lex_mop(lx, &op->mops[op->nmops - 1]))) return rc;
        }
        if (op->nmops == 0) return bad(lx, "at least one micro-op", t, 0);
        return 0;
    case JP_F_TRANSFER:
        if ((rc = lex_int(lx, "the source account", &op->key))) return rc;
        if ((rc = lex_int(lx, "the target account", &op->key2))) return rc;
        return lex_value(lx, "an integer amount", A_INT, &op->v1);
    case JP_F_BALANCES:
        op->v1.kind = JP_V_LIST;
        while ((n = lex_next(lx, &t)) > 0) {
            int64_t a, b;
            if (!(n == 1 && *t == '['))
                return bad(lx, "'[' opening an [ACCOUNT BALANCE] pair", t, n);
            if ((rc = lex_int(lx, "an account", &a)) || (rc = lex_int(lx, "a balance", &b)))
                return rc;
            n = lex_next(lx, &t);
            if (!(n == 1 && *t == ']')) return bad(lx, "']' closing the pair", t, n);
            if (list_push(&op->v1, a, &cap) || list_push(&op->v1, b, &cap))
                return merr_set(lx->e, MERR_NOMEM, "out of memory");
        }
        return 0;
    case JP_F_INSERT: return lex_value(lx, "an integer value", A_INT, &op->v1);
    case JP_F_MEMBERS:
        return lex_value(lx, "a list of members (or _)", A_NONE | A_NIL | A_LIST, &op->v1);
    }
    return merr_set(lx->e, MERR_INTERNAL, "unknown function");
}

static int parse_line(lexer *lx, jp_op *op, int *empty)
{
    const char *t = NULL;
    size_t n = lex_next(lx, &t);
    int rc;
    memset(op, 0, sizeof(*op));
    op->line = lx->line;
    *empty = n == 0;
    if (n == 0) return 0;
    if (parse_int_tok(t, n, &op->time)) return bad(lx, "a time in nanoseconds", t, n);
    if ((rc = lex_int(lx, "a process id", &op->process))) return rc;
    if (op->process < 0)
        return merr_set(lx->e, MERR_INVALID, "line %zu: negative process", lx->line);
    n = lex_next(lx, &t);
    size_t k;
    for (k = 0; k < 4; k++)
        if (tok_is(t, n, type_names[k])) break;
    if (k == 4) return bad(lx, "a type (invoke, ok, fail, info)", t, n);
    op->type = (jp_type)k;
    n = lex_next(lx, &t);
    size_t nf = sizeof(fn_names) / sizeof(fn_names[0]);
    for (k = 0; k < nf; k++)
        if (tok_is(t, n, fn_names[k])) break;
    if (k == nf) return bad(lx, "a function (read, write, cas, append, txn, ...)", t, n);
    op->f = (jp_fn)k;
    if ((rc = parse_args(lx, op))) return rc;
    n = lex_next(lx, &t);
    if (n) return bad(lx, "end of line", t, n);
    return 0;
}

int jp_history_parse(const char *text, size_t len, jp_history *h, merr *e)
{
    jp_history_init(h);
    lexer lx = {.p = text, .end = text + len, .line = 0, .e = e};
    const char *p = text, *end = text + len;
    int rc = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lx.line++;
        if (memchr(p, 0, (size_t)(le - p))) {
            rc = merr_set(e, MERR_INVALID, "line %zu: NUL byte", lx.line);
            goto err;
        }
        lx.p = p;
        lx.end = le;
        jp_op op;
        int empty;
        rc = parse_line(&lx, &op, &empty);
        if (rc == 0 && !empty) rc = history_push(h, &op, e);
        if (rc || empty) op_free(&op);
        if (rc) goto err;
        p = nl ? nl + 1 : end;
    }
    if ((rc = jp_history_index(h, e))) goto err;
    return 0;
err:
    jp_history_free(h);
    return rc;
}

int jp_history_load(const char *path, jp_history *h, merr *e)
{
    mbuf b = MBUF_INIT;
    jp_history_init(h);
    int rc = mfs_read_all(path, JP_MAX_FILE, &b, e);
    if (rc == 0) {
        rc = jp_history_parse(b.data ? (const char *)b.data : "", b.len, h, e);
        if (rc) merr_wrap(e, "%s", path);
    }
    mbuf_free(&b);
    return rc;
}

/* ---- writer ---- */

static int fmt_val(mbuf *out, const jp_val *v)
{
    switch (v->kind) {
    case JP_V_NONE: return mbuf_append_str(out, " _");
    case JP_V_NIL: return mbuf_append_str(out, " nil");
    case JP_V_INT: return mbuf_printf(out, " %lld", (long long)v->i);
    case JP_V_LIST: {
        int rc = mbuf_append_str(out, " [");
        for (size_t i = 0; i < v->n && rc == 0; i++)
            rc = mbuf_printf(out, i ? " %lld" : "%lld", (long long)v->items[i]);
        return rc ? rc : mbuf_append_str(out, "]");
    }
    }
    return MERR_INTERNAL;
}

int jp_op_format(const jp_op *op, mbuf *out)
{
    int rc = mbuf_printf(out, "%lld %lld %s %s", (long long)op->time, (long long)op->process,
                         jp_type_name(op->type), jp_fn_name(op->f));
    switch (op->f) {
    case JP_F_READ:
    case JP_F_WRITE:
        if (!rc) rc = mbuf_printf(out, " %lld", (long long)op->key);
        if (!rc) rc = fmt_val(out, &op->v1);
        break;
    case JP_F_CAS:
        if (!rc) rc = mbuf_printf(out, " %lld", (long long)op->key);
        if (!rc) rc = fmt_val(out, &op->v1);
        if (!rc) rc = fmt_val(out, &op->v2);
        break;
    case JP_F_APPEND:
        if (!rc && op->nmops == 1)
            rc = mbuf_printf(out, " %lld %lld", (long long)op->mops[0].key,
                             (long long)op->mops[0].val.i);
        break;
    case JP_F_TXN:
        for (size_t i = 0; i < op->nmops && !rc; i++) {
            rc = mbuf_printf(out, " [%s %lld", mop_names[op->mops[i].kind],
                             (long long)op->mops[i].key);
            if (!rc) rc = fmt_val(out, &op->mops[i].val);
            if (!rc) rc = mbuf_append_str(out, "]");
        }
        break;
    case JP_F_TRANSFER:
        if (!rc)
            rc = mbuf_printf(out, " %lld %lld %lld", (long long)op->key, (long long)op->key2,
                             (long long)op->v1.i);
        break;
    case JP_F_BALANCES:
        for (size_t i = 0; i + 1 < op->v1.n && !rc; i += 2)
            rc = mbuf_printf(out, " [%lld %lld]", (long long)op->v1.items[i],
                             (long long)op->v1.items[i + 1]);
        break;
    case JP_F_INSERT:
    case JP_F_MEMBERS:
        if (!rc) rc = fmt_val(out, &op->v1);
        break;
    }
    return rc;
}

int jp_history_write(const jp_history *h, FILE *f, merr *e)
{
    mbuf b = MBUF_INIT;
    int rc = mbuf_append_str(&b, "# meridian jepsen history: TIME PROCESS TYPE FUNCTION ARGS...\n");
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        rc = jp_op_format(&h->ops[i], &b);
        if (!rc) rc = mbuf_append_u8(&b, '\n');
    }
    if (rc) {
        mbuf_free(&b);
        return merr_set(e, rc, "history: out of memory");
    }
    if (b.len && fwrite(b.data, 1, b.len, f) != b.len) rc = merr_set(e, MERR_IO, "write history");
    if (!rc && fflush(f)) rc = merr_set(e, MERR_IO, "flush history");
    mbuf_free(&b);
    return rc;
}
