/* Internal to the lock table (txn/lock.c): the records it keeps and the two
 * indexes it finds them with.
 *
 *  - lt_obj: one distinct span that has at least one entry. Its bytes are
 *    owned: start, then end. A point key k is stored as the range
 *    [k, k||0x00) — k's immediate successor in memcmp order — so points and
 *    ranges share one overlap test and one tree code.
 *  - lt_tree: an AVL tree of objects ordered by (start, end) and augmented
 *    with the object of greatest end in each subtree, which turns "all objects
 *    overlapping [s, e)" into O(log n + hits): a subtree whose greatest end is
 *    <= s is skipped whole, and so is everything right of a start >= e.
 *  - lt_hmap: a chained hash table with power-of-two buckets, used for point
 *    objects by key and for transactions by id. */
#ifndef MERIDIAN_TXN_LOCK_INDEX_H
#define MERIDIAN_TXN_LOCK_INDEX_H

#include "txn/lock.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lt_obj lt_obj;
typedef struct lt_txn lt_txn;
typedef struct lt_entry lt_entry;

/* A borrowed span in internal form: end is a real byte string or +infinity. */
typedef struct lt_span {
    const uint8_t *s;
    size_t slen;
    const uint8_t *e;
    size_t elen;
    bool inf;
} lt_span;

/* A hash chain link; `h` caches the hash. */
typedef struct lt_hnode {
    struct lt_hnode *next;
    uint64_t h;
} lt_hnode;

typedef struct lt_hmap {
    lt_hnode **b;
    size_t nb; /* power of two */
    size_t n;
} lt_hmap;

struct lt_entry {
    lt_obj *obj;
    lt_txn *txn;
    lt_entry *oprev, *onext; /* the object's entries */
    lt_entry *tprev, *tnext; /* the transaction's entries */
    uint64_t seq;            /* arrival order, to keep a txn's own waits FIFO */
    uint64_t tag;
    uint32_t mark; /* scratch: dedupe in candidate lists */
    uint8_t mode;
    uint8_t granted;
};

struct lt_obj {
    lt_hnode hn; /* first: points hash by key */
    lt_span sp;  /* points into buf */
    uint8_t *buf;
    bool point;
    /* AVL */
    lt_obj *left, *right;
    lt_obj *maxend; /* the object with the greatest end in this subtree */
    int height;
    lt_entry *head;
    size_t n_entries;
};

struct lt_txn {
    lt_hnode hn; /* first: txns hash by id */
    txn_id id;
    txn_ts prio;
    lt_entry *head;
    size_t n_granted, n_waiting;
    uint32_t mark; /* scratch: dedupe of wound reports */
    bool wounded, prepared;
};

/* ---- spans ---- */

/* Compares key k with the end of span sp: <0 when k < end. */
int lt_key_vs_end(const uint8_t *k, size_t klen, const lt_span *sp);
int lt_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
bool lt_span_overlap(const lt_span *a, const lt_span *b);
/* Orders spans by start then end (+infinity last). */
int lt_span_cmp(const lt_span *a, const lt_span *b);

/* ---- interval tree ---- */

typedef struct lt_tree {
    lt_obj *root;
    size_t n;
} lt_tree;

/* Inserts o (not yet present; spans in a tree are unique). */
void lt_tree_insert(lt_tree *t, lt_obj *o);
void lt_tree_remove(lt_tree *t, lt_obj *o);
lt_obj *lt_tree_find(const lt_tree *t, const lt_span *sp);
/* Calls fn(ctx, o) for every object overlapping sp; stops early and returns
 * fn's value when it is non-zero. */
typedef int (*lt_tree_fn)(void *ctx, lt_obj *o);
int lt_tree_overlaps(const lt_tree *t, const lt_span *sp, lt_tree_fn fn, void *ctx);
/* Checks the AVL and augmentation invariants (tests); returns 0 when sound. */
int lt_tree_check(const lt_tree *t);

/* ---- hash maps ---- */

uint64_t lt_hash_bytes(const void *p, size_t n);
uint64_t lt_hash_u64(uint64_t v);
int lt_hmap_init(lt_hmap *m, size_t nb);
void lt_hmap_free(lt_hmap *m);
/* Makes room for one more node; call before lt_hmap_put so that put cannot
 * fail halfway through an operation. Returns 0 or MERR_NOMEM. */
int lt_hmap_reserve(lt_hmap *m);
void lt_hmap_put(lt_hmap *m, lt_hnode *n);
void lt_hmap_del(lt_hmap *m, lt_hnode *n);
/* First node of h's chain; walk with ->next and compare h and the key. */
lt_hnode *lt_hmap_chain(const lt_hmap *m, uint64_t h);

/* For tests: the indexes agree with each other and keep their invariants.
 * Returns 0 or MERR_INTERNAL. */
int txn_lock_check(const txn_lock_table *lt);

#endif
