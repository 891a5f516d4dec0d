/* Simulated network, disks and clocks. Every random choice comes from the
 * caller's sim_rng, so runs are deterministic. */
#include "sim/sim.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

/* ---- network ---- */

void sim_net_init(sim_net *n, int nodes, sim_rng *rng, sim_queue *q, int kind)
{
    memset(n, 0, sizeof(*n));
    n->nodes = nodes;
    n->rng = rng;
    n->q = q;
    n->kind = kind;
    n->lat_min = 200000;  /* 0.2 ms */
    n->lat_max = 5000000; /* 5 ms */
}

int sim_net_up(const sim_net *n, int from, int to)
{
    if (from < 0 || to < 0 || from >= SIM_MAX_NODES || to >= SIM_MAX_NODES) return 0;
    return !n->cut[from][to];
}

static int enqueue(sim_net *n, int64_t now, int from, int to, const void *p, size_t len)
{
    void *copy = malloc(len ? len : 1);
    if (!copy) return MERR_NOMEM;
    if (len) memcpy(copy, p, len);
    int64_t at = now + sim_rng_range(n->rng, n->lat_min, n->lat_max);
    int rc = sim_queue_push(n->q, at, n->kind, to, (uint64_t)from, len, copy);
    if (rc) free(copy);
    return rc;
}

int sim_net_send(sim_net *n, int64_t now, int from, int to, const void *p, size_t len)
{
    n->sent++;
    if (!sim_net_up(n, from, to) || sim_rng_chance(n->rng, n->drop)) {
        n->dropped++;
        return 0;
    }
    int rc = enqueue(n, now, from, to, p, len);
    if (!rc && sim_rng_chance(n->rng, n->dup)) rc = enqueue(n, now, from, to, p, len);
    return rc;
}

void sim_net_cut(sim_net *n, int from, int to, int down)
{
    if (from >= 0 && to >= 0 && from < SIM_MAX_NODES && to < SIM_MAX_NODES)
        n->cut[from][to] = (uint8_t)(down != 0);
}

void sim_net_isolate(sim_net *n, int node, int down)
{
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        if (i == node) continue;
        sim_net_cut(n, node, i, down);
        sim_net_cut(n, i, node, down);
    }
}

void sim_net_heal(sim_net *n)
{
    memset(n->cut, 0, sizeof(n->cut));
    n->drop = 0;
    n->dup = 0;
}

/* ---- disk ---- */

void sim_disk_init(sim_disk *d, int64_t sync_min, int64_t sync_max)
{
    memset(d, 0, sizeof(*d));
    d->sync_min = sync_min;
    d->sync_max = sync_max;
}

void sim_disk_free(sim_disk *d)
{
    for (size_t i = 0; i < d->ndur; i++) free(d->dur[i].data);
    for (size_t i = 0; i < d->npend; i++) free(d->pend[i].data);
    free(d->dur);
    free(d->pend);
    memset(d, 0, sizeof(*d));
}

static int pend_push(sim_disk *d, const sim_rec *r)
{
    if (d->npend == d->cappend) {
        size_t nc = d->cappend ? d->cappend * 2 : 64;
        sim_rec *np = realloc(d->pend, nc * sizeof(*np));
        if (!np) return MERR_NOMEM;
        d->pend = np;
        d->cappend = nc;
    }
    d->pend[d->npend++] = *r;
    return 0;
}

int sim_disk_put(sim_disk *d, uint64_t k1, uint64_t k2, const void *p, uint32_t len)
{
    sim_rec r = {k1, k2, len, NULL, 0, 0, 0};
    if (len) {
        r.data = malloc(len);
        if (!r.data) return MERR_NOMEM;
        memcpy(r.data, p, len);
    }
    d->bytes += len;
    int rc = pend_push(d, &r);
    if (rc) free(r.data);
    return rc;
}

int sim_disk_del(sim_disk *d, uint64_t k1, uint64_t k2lo, uint64_t k2hi)
{
    sim_rec r = {k1, k2lo, 0, NULL, k2hi, 1, 0};
    return pend_push(d, &r);
}

uint64_t sim_disk_sync(sim_disk *d, sim_rng *r, int64_t now, int64_t *done_at)
{
    uint64_t b = ++d->batch;
    for (size_t i = 0; i < d->npend; i++)
        if (!d->pend[i].batch) d->pend[i].batch = b;
    *done_at = now + sim_rng_range(r, d->sync_min, d->sync_max);
    d->syncs++;
    return b;
}

static int key_cmp(uint64_t a1, uint64_t a2, uint64_t b1, uint64_t b2)
{
    if (a1 != b1) return a1 < b1 ? -1 : 1;
    if (a2 != b2) return a2 < b2 ? -1 : 1;
    return 0;
}

size_t sim_disk_lower(const sim_disk *d, uint64_t k1, uint64_t k2)
{
    size_t lo = 0, hi = d->ndur;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(d->dur[mid].k1, d->dur[mid].k2, k1, k2) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const sim_rec *sim_disk_get(const sim_disk *d, uint64_t k1, uint64_t k2)
{
    size_t i = sim_disk_lower(d, k1, k2);
    if (i < d->ndur && d->dur[i].k1 == k1 && d->dur[i].k2 == k2) return &d->dur[i];
    return NULL;
}

static void apply(sim_disk *d, sim_rec *r)
{
    size_t i = sim_disk_lower(d, r->k1, r->k2);
    if (r->del) {
        size_t j = i;
        while (j < d->ndur && d->dur[j].k1 == r->k1 && d->dur[j].k2 <= r->k2hi) {
            free(d->dur[j].data);
            j++;
        }
        memmove(d->dur + i, d->dur + j, (d->ndur - j) * sizeof(*d->dur));
        d->ndur -= j - i;
        return;
    }
    if (i < d->ndur && d->dur[i].k1 == r->k1 && d->dur[i].k2 == r->k2) {
        free(d->dur[i].data);
        d->dur[i] = *r;
        r->data = NULL;
        return;
    }
    if (d->ndur == d->capdur) {
        size_t nc = d->capdur ? d->capdur * 2 : 64;
        sim_rec *nd = realloc(d->dur, nc * sizeof(*nd));
        if (!nd) abort(); /* the simulator cannot go on without memory */
        d->dur = nd;
        d->capdur = nc;
    }
    memmove(d->dur + i + 1, d->dur + i, (d->ndur - i) * sizeof(*d->dur));
    d->dur[i] = *r;
    d->ndur++;
    r->data = NULL;
}

void sim_disk_sync_done(sim_disk *d, uint64_t batch)
{
    size_t k = 0;
    for (size_t i = 0; i < d->npend; i++) {
        if (d->pend[i].batch && d->pend[i].batch <= batch) {
            apply(d, &d->pend[i]);
            free(d->pend[i].data);
        } else {
            d->pend[k++] = d->pend[i];
        }
    }
    d->npend = k;
}

void sim_disk_crash(sim_disk *d)
{
    for (size_t i = 0; i < d->npend; i++) free(d->pend[i].data);
    d->npend = 0;
}

/* ---- clock ---- */

static int64_t clampi(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void sim_clock_init(sim_clock *c, int64_t eps, sim_rng *r, int64_t now)
{
    c->eps = eps;
    c->t0 = now;
    c->off0 = sim_rng_range(r, -(eps * 9) / 10, (eps * 9) / 10);
    c->drift_ppm = sim_rng_range(r, -50, 50);
}

int64_t sim_clock_offset(const sim_clock *c, int64_t now)
{
    /* Drift moves the offset; it is clamped so the error never leaves the
     * bound (a real clock service widens eps instead — same effect). */
    int64_t off = c->off0 + (now - c->t0) / 1000000 * c->drift_ppm;
    int64_t lim = (c->eps * 95) / 100;
    return clampi(off, -lim, lim);
}

int64_t sim_clock_local(const sim_clock *c, int64_t now)
{
    return now + sim_clock_offset(c, now);
}

void sim_clock_tt(const sim_clock *c, int64_t now, int64_t *earliest, int64_t *latest)
{
    int64_t l = sim_clock_local(c, now);
    *earliest = l - c->eps;
    *latest = l + c->eps;
}

void sim_clock_perturb(sim_clock *c, sim_rng *r, int64_t now, int64_t max_drift_ppm)
{
    c->off0 = sim_clock_offset(c, now);
    c->t0 = now;
    c->drift_ppm = sim_rng_range(r, -max_drift_ppm, max_drift_ppm);
    if (sim_rng_chance(r, 0.5)) { /* a step, as after a chrony correction */
        int64_t lim = (c->eps * 95) / 100;
        c->off0 = sim_rng_chance(r, 0.5) ? sim_rng_range(r, -lim, lim)
                                         : (sim_rng_chance(r, 0.5) ? lim : -lim);
    }
}
