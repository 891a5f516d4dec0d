/* storage/range_cache.c: a bounded LRU cache of open range handles, so a node
 * with thousands of ranges keeps only `capacity` SQLite connections and page
 * caches. Keyed by database path; a handle evicted while idle reopens
 * transparently on the next acquire. Single-threaded, like the handles. */
#include "storage/range_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct centry {
    char *path;
    range *r;
    int pins;
    struct centry *prev, *next; /* LRU list: head = most recent */
    struct centry *hnext;       /* hash chain */
} centry;

struct range_cache {
    size_t cap, count, nbuckets;
    uint64_t opens;
    range_opts opts;
    centry **buckets;
    centry *head, *tail;
};

static size_t hash_path(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)(h % n);
}

int range_cache_new(size_t capacity, const range_opts *o, range_cache **out)
{
    range_cache *c = calloc(1, sizeof(*c));
    if (!c) return MERR_NOMEM;
    c->cap = capacity ? capacity : 1;
    c->nbuckets = c->cap * 2 + 1;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets) {
        free(c);
        return MERR_NOMEM;
    }
    if (o) c->opts = *o;
    *out = c;
    return 0;
}

static void lru_unlink(range_cache *c, centry *x)
{
    if (x->prev) x->prev->next = x->next;
    if (x->next) x->next->prev = x->prev;
    if (c->head == x) c->head = x->next;
    if (c->tail == x) c->tail = x->prev;
    x->prev = x->next = NULL;
}

static void lru_push(range_cache *c, centry *x)
{
    x->next = c->head;
    if (c->head) c->head->prev = x;
    c->head = x;
    if (!c->tail) c->tail = x;
}

static void remove_entry(range_cache *c, centry *x)
{
    centry **pp = &c->buckets[hash_path(x->path, c->nbuckets)];
    while (*pp != x) pp = &(*pp)->hnext;
    *pp = x->hnext;
    lru_unlink(c, x);
    range_close(x->r);
    free(x->path);
    free(x);
    c->count--;
}

/* Closes least recently used idle handles until under capacity. */
static void shrink(range_cache *c)
{
    centry *x = c->tail;
    while (c->count > c->cap && x) {
        centry *prev = x->prev;
        if (!x->pins) remove_entry(c, x);
        x = prev;
    }
}

static centry *find(range_cache *c, const char *path)
{
    for (centry *x = c->buckets[hash_path(path, c->nbuckets)]; x; x = x->hnext)
        if (strcmp(x->path, path) == 0) return x;
    return NULL;
}

int range_cache_acquire(range_cache *c, const char *path, range **out, merr *e)
{
    centry *x = find(c, path);
    if (!x) {
        x = calloc(1, sizeof(*x));
        if (!x || !(x->path = strdup(path))) {
            free(x);
            return merr_set(e, MERR_NOMEM, "range cache");
        }
        int rc = range_open(path, &c->opts, &x->r, e);
        if (rc) {
            free(x->path);
            free(x);
            return rc;
        }
        c->opens++;
        size_t b = hash_path(path, c->nbuckets);
        x->hnext = c->buckets[b];
        c->buckets[b] = x;
        c->count++;
    } else {
        lru_unlink(c, x);
    }
    lru_push(c, x);
    x->pins++;
    shrink(c);
    *out = x->r;
    return 0;
}

void range_cache_release(range_cache *c, range *r)
{
    centry *x = find(c, r->path);
    if (!x || x->r != r) return;
    if (x->pins) x->pins--;
    /* A handle that met corruption is dropped at once: the marker file keeps
     * it from being reopened until a snapshot rebuilds it. */
    if (!x->pins && r->corrupt) {
        remove_entry(c, x);
        return;
    }
    shrink(c);
}

int range_cache_drop(range_cache *c, const char *path)
{
    centry *x = find(c, path);
    if (!x) return 0;
    if (x->pins) return MERR_BUSY;
    remove_entry(c, x);
    return 0;
}

size_t range_cache_open_count(const range_cache *c)
{
    return c->count;
}

uint64_t range_cache_opens(const range_cache *c)
{
    return c->opens;
}

void range_cache_free(range_cache *c)
{
    if (!c) return;
    while (c->head) remove_entry(c, c->head);
    free(c->buckets);
    free(c);
}
