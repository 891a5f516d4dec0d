/* Safe time tracking and read timestamp choice (rules in safetime.h). */
#include "txn/safetime.h"

#include <stdlib.h>
#include <string.h>

void txn_safe_init(txn_safe *s)
{
    memset(s, 0, sizeof(*s));
}

void txn_safe_free(txn_safe *s)
{
    free(s->doubt);
    memset(s, 0, sizeof(*s));
}

void txn_safe_close(txn_safe *s, txn_ts closed)
{
    if (closed > s->closed) s->closed = closed;
}

static int doubt_cmp(txn_ts ts, txn_id txn, const txn_doubt *d)
{
    if (ts != d->prepare_ts) return ts < d->prepare_ts ? -1 : 1;
    return txn < d->txn ? -1 : txn > d->txn;
}

/* First index whose entry is >= (ts, txn). */
static size_t lower_bound(const txn_safe *s, txn_ts ts, txn_id txn)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (doubt_cmp(ts, txn, &s->doubt[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int txn_safe_prepared(txn_safe *s, txn_id txn, txn_ts prepare_ts)
{
    /* A txn is in doubt once: look for it at any ts (a linear scan, but
     * only to reject the contradiction of two prepare timestamps). */
    for (size_t i = 0; i < s->n; i++)
        if (s->doubt[i].txn == txn) return s->doubt[i].prepare_ts == prepare_ts ? 0 : MERR_EXISTS;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        txn_doubt *d = realloc(s->doubt, cap * sizeof(*d));
        if (!d) return MERR_NOMEM;
        s->doubt = d;
        s->cap = cap;
    }
    size_t i = lower_bound(s, prepare_ts, txn);
    memmove(&s->doubt[i + 1], &s->doubt[i], (s->n - i) * sizeof(*s->doubt));
    s->doubt[i] = (txn_doubt){.prepare_ts = prepare_ts, .txn = txn};
    s->n++;
    return 0;
}

int txn_safe_decided(txn_safe *s, txn_id txn, txn_ts prepare_ts)
{
    size_t i = lower_bound(s, prepare_ts, txn);
    if (i == s->n || s->doubt[i].txn != txn || s->doubt[i].prepare_ts != prepare_ts)
        return MERR_NOTFOUND;
    memmove(&s->doubt[i], &s->doubt[i + 1], (s->n - i - 1) * sizeof(*s->doubt));
    s->n--;
    return 0;
}

txn_ts txn_safe_time(const txn_safe *s)
{
    txn_ts t = s->closed;
    if (s->n) {
        /* Just below the earliest prepare ts; a prepare at 0 leaves nothing. */
        txn_ts p = s->doubt[0].prepare_ts;
        txn_ts below = p ? p - 1 : 0;
        if (below < t) t = below;
    }
    return t;
}

bool txn_safe_can_serve(const txn_safe *s, txn_ts t)
{
    return t <= txn_safe_time(s);
}

const txn_doubt *txn_safe_first_doubt(const txn_safe *s)
{
    return s->n ? &s->doubt[0] : NULL;
}

txn_ts txn_closed_next(txn_ts prev_closed, txn_ts target, bool have_pending, txn_ts min_pending)
{
    txn_ts c = target;
    if (have_pending) {
        txn_ts below = min_pending ? min_pending - 1 : 0;
        if (below < c) c = below;
    }
    return c > prev_closed ? c : prev_closed;
}

static txn_ts sub_sat(txn_ts a, txn_ts b)
{
    return a > b ? a - b : 0;
}

int txn_read_ts(const txn_read_opts *o, txn_ts tt_earliest, txn_ts tt_latest,
                const txn_read_range *ranges, size_t n, txn_ts *ts, bool *must_wait, merr *e)
{
    if (!n || !ranges) return merr_set(e, MERR_INVALID, "a read touches at least one range");
    if (tt_earliest > tt_latest)
        return merr_set(e, MERR_INVALID, "tt interval with earliest after latest");
    txn_ts min_safe = ranges[0].safe_time;
    for (size_t i = 1; i < n; i++)
        if (ranges[i].safe_time < min_safe) min_safe = ranges[i].safe_time;

    txn_ts t;
    switch (o->kind) {
    case TXN_READ_STRONG:
        /* One range with nothing in doubt: its last write is recent enough
         * (every commit acknowledged before now is at or below it), and
         * usually servable at once. */
        if (n == 1 && !ranges[0].in_doubt && ranges[0].last_write <= tt_latest)
            t = ranges[0].last_write;
        else
            t = tt_latest;
        break;
    case TXN_READ_EXACT_STALENESS: t = sub_sat(tt_latest, o->staleness); break;
    case TXN_READ_BOUNDED_STALENESS: {
        /* The newest ts every range can serve now, within the bound. */
        txn_ts oldest = sub_sat(tt_latest, o->staleness);
        t = min_safe < tt_latest ? min_safe : tt_latest;
        if (t < oldest) t = oldest;
        break;
    }
    case TXN_READ_AT: t = o->at; break;
    default: return merr_set(e, MERR_INVALID, "unknown read kind %d", (int)o->kind);
    }
    *ts = t;
    *must_wait = t > min_safe;
    return 0;
}
