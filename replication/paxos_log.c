/* The in-memory log window of a Paxos replica (slots [base, base+n)), the
 * membership in force at a slot, and the value encodings (batches, members).
 *
 * Membership rule (docs/replication.md): a CONFIG value at slot s governs every
 * slot > s; the leader proposes nothing above s until s is chosen, and only one
 * change is in flight. So the config governing a slot the leader proposes is
 * always a chosen one. */
#include "replication/paxos_internal.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

int paxos_ballot_cmp(paxos_ballot a, paxos_ballot b)
{
    if (a.round != b.round) return a.round < b.round ? -1 : 1;
    if (a.node != b.node) return a.node < b.node ? -1 : 1;
    return 0;
}

void paxos_entry_free(paxos_entry *e)
{
    free(e->data);
    memset(e, 0, sizeof(*e));
}

int paxos_entry_copy(paxos_entry *dst, const paxos_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len) {
        dst->data = malloc(src->len);
        if (!dst->data) return MERR_NOMEM;
        memcpy(dst->data, src->data, src->len);
    }
    return 0;
}

int paxos_push_entry(paxos_entry **arr, size_t *n, size_t *cap, const paxos_entry *e)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        paxos_entry *na = realloc(*arr, nc * sizeof(*na));
        if (!na) return MERR_NOMEM;
        *arr = na;
        *cap = nc;
    }
    int rc = paxos_entry_copy(&(*arr)[*n], e);
    if (rc) return rc;
    (*n)++;
    return 0;
}

paxos_slot *paxos_log_get(paxos_group *g, uint64_t slot)
{
    if (slot < g->base || slot >= g->base + g->n) return NULL;
    return &g->log[slot - g->base];
}

uint64_t paxos_log_last(const paxos_group *g)
{
    return g->base + g->n - 1;
}

/* Grows the window so that `slot` exists (as a hole if new). */
int paxos_log_extend(paxos_group *g, uint64_t slot)
{
    if (slot < g->base) return MERR_INVALID;
    size_t need = (size_t)(slot - g->base + 1);
    if (need <= g->n) return 0;
    if (need > g->cap) {
        size_t nc = g->cap ? g->cap : 64;
        while (nc < need) nc *= 2;
        paxos_slot *nl = realloc(g->log, nc * sizeof(*nl));
        if (!nl) return MERR_NOMEM;
        g->log = nl;
        g->cap = nc;
    }
    for (size_t i = g->n; i < need; i++) {
        memset(&g->log[i], 0, sizeof(g->log[i]));
        g->log[i].e.slot = g->base + i;
    }
    g->n = need;
    return 0;
}

/* The index of CONFIG slots keeps "which config governs slot s" O(#configs)
 * instead of a scan of the log window on every tick. */
static int cfg_index_add(paxos_group *g, uint64_t slot)
{
    size_t i = g->ncfgs;
    while (i > 0 && g->cfgs[i - 1] > slot) i--;
    if (i > 0 && g->cfgs[i - 1] == slot) return 0;
    if (g->ncfgs == g->capcfgs) {
        size_t nc = g->capcfgs ? g->capcfgs * 2 : 4;
        uint64_t *n = realloc(g->cfgs, nc * sizeof(*n));
        if (!n) return MERR_NOMEM;
        g->cfgs = n;
        g->capcfgs = nc;
    }
    memmove(g->cfgs + i + 1, g->cfgs + i, (g->ncfgs - i) * sizeof(*g->cfgs));
    g->cfgs[i] = slot;
    g->ncfgs++;
    return 0;
}

static void cfg_index_keep(paxos_group *g, uint64_t lo, uint64_t hi)
{
    size_t k = 0;
    for (size_t i = 0; i < g->ncfgs; i++)
        if (g->cfgs[i] >= lo && g->cfgs[i] <= hi) g->cfgs[k++] = g->cfgs[i];
    g->ncfgs = k;
}

/* Drops slots <= upto (they are behind a snapshot). */
void paxos_log_truncate_front(paxos_group *g, uint64_t upto)
{
    if (upto < g->base) return;
    cfg_index_keep(g, upto + 1, UINT64_MAX);
    size_t k = (size_t)(upto - g->base + 1);
    if (k > g->n) k = g->n;
    for (size_t i = 0; i < k; i++) paxos_entry_free(&g->log[i].e);
    memmove(g->log, g->log + k, (g->n - k) * sizeof(*g->log));
    g->n -= k;
    g->base = upto + 1;
}

/* Drops slots > after. */
void paxos_log_truncate_back(paxos_group *g, uint64_t after)
{
    cfg_index_keep(g, 0, after);
    while (g->n && paxos_log_last(g) > after) paxos_entry_free(&g->log[--g->n].e);
}

int paxos_log_set(paxos_group *g, uint64_t slot, paxos_ballot b, int type, const uint8_t *data,
                  uint32_t len)
{
    int rc = paxos_log_extend(g, slot);
    if (rc) return rc;
    paxos_slot *s = paxos_log_get(g, slot);
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy) return MERR_NOMEM;
        memcpy(copy, data, len);
    }
    if (type == PAXOS_ENTRY_CONFIG) {
        if (cfg_index_add(g, slot)) {
            free(copy);
            return MERR_NOMEM;
        }
    } else if (s->e.type == PAXOS_ENTRY_CONFIG) {
        uint64_t *p = g->cfgs;
        size_t k = 0;
        for (size_t i = 0; i < g->ncfgs; i++)
            if (p[i] != slot) p[k++] = p[i];
        g->ncfgs = k;
    }
    free(s->e.data);
    s->e.slot = slot;
    s->e.ballot = b;
    s->e.type = (uint8_t)type;
    s->e.len = len;
    s->e.data = copy;
    return 0;
}

/* The membership governing `slot`: the newest CONFIG value below it. */
void paxos_members_at(const paxos_group *g, uint64_t slot, paxos_members *m)
{
    *m = g->snap_members;
    for (size_t i = g->ncfgs; i > 0; i--) {
        uint64_t s = g->cfgs[i - 1];
        if (s >= slot || s < g->base) continue;
        const paxos_slot *ps = &g->log[s - g->base];
        if (paxos_members_decode(ps->e.data, ps->e.len, m) == 0) return;
        *m = g->snap_members;
    }
}

/* Is a CONFIG value in the log above the chosen prefix? */
int paxos_config_pending(const paxos_group *g, uint64_t *slot)
{
    for (size_t i = 0; i < g->ncfgs; i++)
        if (g->cfgs[i] > g->chosen) {
            if (slot) *slot = g->cfgs[i];
            return 1;
        }
    return 0;
}

int paxos_members_is_voter(const paxos_members *m, paxos_node_id n)
{
    for (uint32_t i = 0; i < m->nvoters; i++)
        if (m->voters[i] == n) return 1;
    return 0;
}

int paxos_members_is_learner(const paxos_members *m, paxos_node_id n)
{
    for (uint32_t i = 0; i < m->nlearners; i++)
        if (m->learners[i] == n) return 1;
    return 0;
}

/* Can a majority of a and a majority of b be disjoint? Pick them greedily from
 * the voters only one side has, then from the shared ones. */
int paxos_members_quorums_intersect(const paxos_members *a, const paxos_members *b)
{
    uint32_t both = 0;
    for (uint32_t i = 0; i < a->nvoters; i++) both += paxos_members_is_voter(b, a->voters[i]);
    uint32_t qa = a->nvoters / 2 + 1, qb = b->nvoters / 2 + 1;
    uint32_t onlya = a->nvoters - both, onlyb = b->nvoters - both;
    uint32_t needa = qa > onlya ? qa - onlya : 0;
    uint32_t needb = qb > onlyb ? qb - onlyb : 0;
    return needa + needb > both;
}

/* Do the ids contain a majority of m's voters? */
int paxos_quorum(const paxos_members *m, const paxos_node_id *ids, size_t n)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < m->nvoters; i++)
        for (size_t j = 0; j < n; j++)
            if (ids[j] == m->voters[i]) {
                c++;
                break;
            }
    return m->nvoters > 0 && c >= m->nvoters / 2 + 1;
}

int paxos_members_encode(const paxos_members *m, uint8_t **out, uint32_t *len)
{
    uint32_t n = 2 + 4 * (m->nvoters + m->nlearners);
    uint8_t *p = malloc(n), *q = p;
    if (!p) return MERR_NOMEM;
    *q++ = (uint8_t)m->nvoters;
    for (uint32_t i = 0; i < m->nvoters; i++, q += 4) {
        q[0] = (uint8_t)(m->voters[i] >> 24);
        q[1] = (uint8_t)(m->voters[i] >> 16);
        q[2] = (uint8_t)(m->voters[i] >> 8);
        q[3] = (uint8_t)m->voters[i];
    }
    *q++ = (uint8_t)m->nlearners;
    for (uint32_t i = 0; i < m->nlearners; i++, q += 4) {
        q[0] = (uint8_t)(m->learners[i] >> 24);
        q[1] = (uint8_t)(m->learners[i] >> 16);
        q[2] = (uint8_t)(m->learners[i] >> 8);
        q[3] = (uint8_t)m->learners[i];
    }
    *out = p;
    *len = n;
    return 0;
}

static int read_ids(const uint8_t **p, const uint8_t *end, uint32_t *n, paxos_node_id *ids)
{
    if (*p >= end) return MERR_CORRUPT;
    *n = *(*p)++;
    if (*n > PAXOS_MAX_NODES || (size_t)(end - *p) < 4u * *n) return MERR_CORRUPT;
    for (uint32_t i = 0; i < *n; i++, *p += 4) {
        ids[i] = ((uint32_t)(*p)[0] << 24) | ((uint32_t)(*p)[1] << 16) | ((uint32_t)(*p)[2] << 8) |
                 (*p)[3];
        if (ids[i] == 0) return MERR_CORRUPT;
    }
    return 0;
}

int paxos_members_decode(const uint8_t *p, size_t len, paxos_members *m)
{
    const uint8_t *end = p + len;
    paxos_members t;
    memset(&t, 0, sizeof(t));
    if (!p) return MERR_CORRUPT;
    if (read_ids(&p, end, &t.nvoters, t.voters) || read_ids(&p, end, &t.nlearners, t.learners))
        return MERR_CORRUPT;
    if (p != end || t.nvoters == 0) return MERR_CORRUPT;
    *m = t;
    return 0;
}

static int get_varint(paxos_batch_iter *it, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (it->pos >= it->len) return MERR_CORRUPT;
        uint8_t b = it->p[it->pos++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return MERR_CORRUPT;
}

int paxos_batch_iter_init(paxos_batch_iter *it, const uint8_t *data, size_t len)
{
    it->p = data;
    it->len = len;
    it->pos = 0;
    return get_varint(it, &it->left);
}

int paxos_batch_next(paxos_batch_iter *it, uint64_t *id, const uint8_t **data, uint32_t *len)
{
    if (it->left == 0) return it->pos == it->len ? 0 : MERR_CORRUPT;
    if (it->len - it->pos < 8) return MERR_CORRUPT;
    uint64_t v = 0, l;
    for (int i = 0; i < 8; i++) v = (v << 8) | it->p[it->pos++];
    if (get_varint(it, &l) || l > it->len - it->pos) return MERR_CORRUPT;
    *id = v;
    *data = it->p + it->pos;
    *len = (uint32_t)l;
    it->pos += (size_t)l;
    it->left--;
    return 1;
}
