/* Jepsen-style histories: what a test harness records while clients run
 * against a cluster, and what the checkers (jp_check.h) read.
 *
 * A history is a list of operations in the order they were recorded. Each
 * client process invokes one operation at a time: an `invoke` line, later
 * followed by exactly one completion line of the same process and function:
 *   ok    the operation took effect and its result is known;
 *   fail  the operation certainly did not take effect (aborted, rejected);
 *   info  indeterminate: it may have taken effect, at any time after its
 *         invocation, or never (timeout, crash, lost connection).
 * An invocation with no completion by the end of the history counts as info.
 *
 * Text format (docs/jepsen.md has the full grammar), one operation a line,
 * `#` starts a comment:
 *   TIME PROCESS TYPE FUNCTION ARGS...
 *   1000 0 invoke write 7 42
 *   1500 0 ok write 7 42
 *   1600 1 ok txn [append 3 9] [r 4 [1 2]]
 * TIME is a monotonic clock in nanoseconds; real-time order between
 * operations (A completed before B was invoked) is read from it. */
#ifndef MERIDIAN_TESTS_JEPSEN_JP_HISTORY_H
#define MERIDIAN_TESTS_JEPSEN_JP_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"

typedef enum jp_type { JP_INVOKE, JP_OK, JP_FAIL, JP_INFO } jp_type;

typedef enum jp_fn {
    JP_F_READ,     /* read K V: register read, V the value or nil */
    JP_F_WRITE,    /* write K V */
    JP_F_CAS,      /* cas K OLD NEW */
    JP_F_APPEND,   /* append K V: a one-micro-op txn (stored as mops) */
    JP_F_TXN,      /* txn [MOP]...: micro-ops (stored as mops) */
    JP_F_TRANSFER, /* transfer FROM TO AMOUNT (bank) */
    JP_F_BALANCES, /* balances [ACCT BAL]...: a bank snapshot read */
    JP_F_INSERT,   /* insert V (set) */
    JP_F_MEMBERS,  /* members [V...]: a set read */
} jp_fn;

typedef enum jp_vkind {
    JP_V_NONE, /* `_`: unknown / not given (invocations) */
    JP_V_NIL,  /* `nil`: the register or list does not exist */
    JP_V_INT,
    JP_V_LIST,
} jp_vkind;

typedef struct jp_val {
    jp_vkind kind;
    int64_t i;      /* JP_V_INT */
    int64_t *items; /* JP_V_LIST (owned); balances: acct, bal, acct, bal... */
    size_t n;
} jp_val;

typedef enum jp_mop_kind { JP_MOP_R, JP_MOP_W, JP_MOP_APPEND } jp_mop_kind;

/* One micro-operation of a transaction: [r K V], [w K V], [append K V]. */
typedef struct jp_mop {
    jp_mop_kind kind;
    int64_t key;
    jp_val val; /* r: NONE/NIL/INT/LIST; w, append: INT */
} jp_mop;

typedef struct jp_op {
    size_t line; /* 1-based line in the file; 0 if built in memory */
    int64_t time;
    int64_t process;
    jp_type type;
    jp_fn f;
    int64_t key;  /* read/write/cas; transfer: from */
    int64_t key2; /* transfer: to */
    jp_val v1;    /* read/write value, cas old, transfer amount, insert value,
                     members list, balances flattened pairs */
    jp_val v2;    /* cas new */
    jp_mop *mops; /* txn, append (owned) */
    size_t nmops;
} jp_op;

/* An invocation paired with its completion. */
typedef struct jp_call {
    size_t inv;     /* index of the invoke op */
    size_t done;    /* index of the completion op, or SIZE_MAX if none */
    jp_type type;   /* JP_OK, JP_FAIL or JP_INFO (no completion -> JP_INFO) */
    int64_t t_inv;  /* invocation time */
    int64_t t_done; /* completion time; INT64_MAX for info */
} jp_call;

typedef struct jp_history {
    jp_op *ops;
    size_t n, cap;
    jp_call *calls; /* filled by jp_history_index, in invocation order */
    size_t ncalls;
} jp_history;

void jp_history_init(jp_history *h);
void jp_history_free(jp_history *h);
void jp_val_free(jp_val *v);
/* Deep copy (lists and mops). */
int jp_val_copy(jp_val *dst, const jp_val *src);
int jp_op_copy(jp_op *dst, const jp_op *src);

/* Appends a deep copy of op. Call jp_history_index afterwards. An op with
 * line 0 gets the line it will have in jp_history_write's output. */
int jp_history_add(jp_history *h, const jp_op *op, merr *e);

/* Pairs invocations with completions into h->calls and validates the pairing:
 * a completion needs a pending invocation of its process with the same
 * function, no earlier time, and (for txns) the same micro-op shapes; a
 * process invokes again only after its previous operation completed.
 * MERR_INVALID with the line number otherwise. */
int jp_history_index(jp_history *h, merr *e);

/* The op that carries a call's values: the completion for ok calls (reads
 * carry results there), the invocation otherwise. */
const jp_op *jp_call_op(const jp_history *h, const jp_call *c);

/* Parses text in the format above and indexes it. Malformed lines get
 * MERR_INVALID with "line N: ..." and h is left empty. */
int jp_history_parse(const char *text, size_t len, jp_history *h, merr *e);
/* Reads and parses a file (at most 1 GiB). */
int jp_history_load(const char *path, jp_history *h, merr *e);

/* Formats one op as a line (no newline) appended to out. */
int jp_op_format(const jp_op *op, mbuf *out);
/* Writes the whole history, one line an op, with a header comment. */
int jp_history_write(const jp_history *h, FILE *f, merr *e);

const char *jp_type_name(jp_type t);
const char *jp_fn_name(jp_fn f);

#endif
