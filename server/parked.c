/* Paxos messages parked for groups not hosted yet (parked.h). */
#include "server/parked.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int parked_add(parked_tab *t, uint64_t from, uint64_t group, const uint8_t *data, size_t len,
               int64_t now_ns)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return MERR_NOMEM;
    memcpy(copy, data, len);
    if (t->n == PARKED_MAX) { /* the oldest goes */
        free(t->v[0].data);
        memmove(t->v, t->v + 1, (PARKED_MAX - 1) * sizeof(t->v[0]));
        t->n--;
        t->expired++;
    }
    t->v[t->n++] =
        (parked_msg){.from = from, .group = group, .at_ns = now_ns, .data = copy, .len = len};
    t->parked++;
    return 0;
}

size_t parked_take(parked_tab *t, int (*has)(void *arg, uint64_t group), void *arg, int64_t now_ns,
                   parked_msg *out, size_t cap)
{
    size_t k = 0, got = 0;
    for (size_t i = 0; i < t->n; i++) {
        parked_msg *m = &t->v[i];
        if (now_ns - m->at_ns > PARKED_TTL_NS) {
            free(m->data);
            t->expired++;
        } else if (got < cap && has(arg, m->group)) {
            out[got++] = *m;
            t->replayed++;
        } else {
            t->v[k++] = *m;
        }
    }
    t->n = k;
    return got;
}

void parked_free(parked_tab *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->v[i].data);
    t->n = 0;
}
