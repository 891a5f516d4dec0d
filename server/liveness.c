/* Node liveness tracker (see liveness.h): pure, driven by heartbeats and ticks. */
#include "server/liveness.h"

#include <string.h>

void liveness_init(liveness *l, uint64_t timeout, uint64_t grace)
{
    memset(l, 0, sizeof(*l));
    l->timeout = timeout ? timeout : 1;
    l->grace = grace;
}

static liveness_peer *find(const liveness *l, uint64_t node)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->p[i].node == node) return (liveness_peer *)&l->p[i];
    return NULL;
}

static int fresh(const liveness *l, const liveness_peer *p)
{
    return l->now - p->last_tick < l->timeout;
}

int liveness_is_live(const liveness *l, uint64_t node)
{
    const liveness_peer *p = find(l, node);
    return p && fresh(l, p) && l->now >= p->live_from;
}

int liveness_heard(liveness *l, uint64_t node, uint64_t incarnation)
{
    if (node == 0) return -1;
    liveness_peer *p = find(l, node);
    if (!p) {
        if (l->n == LIVENESS_MAX_PEERS) return -1;
        p = &l->p[l->n++];
        p->node = node;
        p->incarnation = incarnation;
        p->last_tick = l->now;
        p->live_from = 0;
        p->dead_reported = 0;
        return LIVENESS_CAME_UP;
    }
    int was_live = liveness_is_live(l, node);
    int ev = LIVENESS_SAME;
    if (p->incarnation != incarnation) {
        p->incarnation = incarnation;
        p->live_from = l->now + l->grace;
        ev = LIVENESS_RESTARTED;
    }
    p->last_tick = l->now;
    if (liveness_is_live(l, node)) {
        p->dead_reported = 0;
        if (!was_live && ev == LIVENESS_SAME) ev = LIVENESS_CAME_UP;
    }
    return ev;
}

size_t liveness_tick(liveness *l, uint64_t *dead, size_t cap)
{
    l->now++;
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        liveness_peer *p = &l->p[i];
        if (fresh(l, p) || p->dead_reported) continue;
        p->dead_reported = 1;
        if (n < cap) dead[n] = p->node;
        n++;
    }
    return n < cap ? n : cap;
}
