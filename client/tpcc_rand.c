/* TPC-C's random functions and data generators (spec clauses 2.1.6, 4.3.2,
 * 4.3.3.1, 5.2.4.2). Pure: every function takes its generator, so the unit
 * tests and a seeded run see exactly the same sequence. */
#include "client/tpcc.h"

#include <assert.h>
#include <string.h>

const char *const tpcc_txn_names[TPCC_NTYPES] = {"new-order", "payment", "order-status", "delivery",
                                                 "stock-level"};

void tpcc_rng_seed(tpcc_rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

/* splitmix64: small, fast, passes BigCrush; plenty for a workload generator. */
uint64_t tpcc_rng_next(tpcc_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int64_t tpcc_rand(tpcc_rng *r, int64_t lo, int64_t hi)
{
    assert(lo <= hi);
    uint64_t span = (uint64_t)(hi - lo) + 1;
    /* Rejection sampling so no value is favoured by the modulo. */
    uint64_t lim = UINT64_MAX - UINT64_MAX % span, v;
    do v = tpcc_rng_next(r);
    while (v >= lim);
    return lo + (int64_t)(v % span);
}

double tpcc_rand_unit(tpcc_rng *r)
{
    return (double)((tpcc_rng_next(r) >> 11) + 1) / 9007199254740992.0;
}

int64_t tpcc_nurand(tpcc_rng *r, int a, int64_t x, int64_t y, int c)
{
    return (((tpcc_rand(r, 0, a) | tpcc_rand(r, x, y)) + c) % (y - x + 1)) + x;
}

void tpcc_consts_load(tpcc_rng *r, tpcc_consts *c)
{
    c->c_last = (int)tpcc_rand(r, 0, 255);
    c->c_id = (int)tpcc_rand(r, 0, 1023);
    c->ol_i_id = (int)tpcc_rand(r, 0, 8191);
}

int tpcc_consts_valid(const tpcc_consts *load, const tpcc_consts *run)
{
    int d = run->c_last - load->c_last;
    if (d < 0) d = -d;
    return d >= 65 && d <= 119 && d != 96 && d != 112 && run->c_last >= 0 && run->c_last <= 255;
}

void tpcc_consts_run(tpcc_rng *r, const tpcc_consts *load, tpcc_consts *run)
{
    /* 2.1.6.1: C_ID and OL_I_ID's run constants are free; C_LAST's must
     * differ from the load value by the delta rule, so the run's names are
     * not the same sequence the load drew. Some load values admit a delta in
     * one direction only; drawing until valid always ends. */
    run->c_id = (int)tpcc_rand(r, 0, 1023);
    run->ol_i_id = (int)tpcc_rand(r, 0, 8191);
    do run->c_last = (int)tpcc_rand(r, 0, 255);
    while (!tpcc_consts_valid(load, run));
}

void tpcc_last_name(int n, char *buf)
{
    static const char *const syl[10] = {"BAR", "OUGHT", "ABLE",  "PRI",   "PRES",
                                        "ESE", "ANTI",  "CALLY", "ATION", "EING"};
    assert(n >= 0 && n <= 999);
    buf[0] = 0;
    strcat(buf, syl[n / 100]);
    strcat(buf, syl[n / 10 % 10]);
    strcat(buf, syl[n % 10]);
}

void tpcc_astring(tpcc_rng *r, int lo, int hi, char *buf)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    int n = (int)tpcc_rand(r, lo, hi);
    for (int i = 0; i < n; i++) buf[i] = al[tpcc_rand(r, 0, (int)sizeof al - 2)];
    buf[n] = 0;
}

void tpcc_nstring(tpcc_rng *r, int lo, int hi, char *buf)
{
    int n = (int)tpcc_rand(r, lo, hi);
    for (int i = 0; i < n; i++) buf[i] = (char)('0' + tpcc_rand(r, 0, 9));
    buf[n] = 0;
}

int tpcc_data_original(tpcc_rng *r, char *buf)
{
    tpcc_astring(r, 26, 50, buf);
    if (tpcc_rand(r, 1, 10) != 1) return 0;
    size_t n = strlen(buf);
    size_t at = (size_t)tpcc_rand(r, 0, (int64_t)n - 8);
    memcpy(buf + at, "ORIGINAL", 8);
    return 1;
}

void tpcc_zip(tpcc_rng *r, char *buf)
{
    tpcc_nstring(r, 4, 4, buf);
    memcpy(buf + 4, "11111", 6);
}

void tpcc_permutation(tpcc_rng *r, int *out, int n)
{
    for (int i = 0; i < n; i++) out[i] = i + 1;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)tpcc_rand(r, 0, i);
        int t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

void tpcc_deck_init(tpcc_deck *d, tpcc_rng *r)
{
    static const int counts[TPCC_NTYPES] = {45, 43, 4, 4, 4};
    int k = 0;
    for (int t = 0; t < TPCC_NTYPES; t++)
        for (int i = 0; i < counts[t]; i++) d->cards[k++] = (uint8_t)t;
    assert(k == 100);
    d->next = 100; /* shuffled at the first draw */
    (void)r;
}

tpcc_txn_type tpcc_deck_draw(tpcc_deck *d, tpcc_rng *r)
{
    if (d->next >= 100) {
        for (int i = 99; i > 0; i--) {
            int j = (int)tpcc_rand(r, 0, i);
            uint8_t t = d->cards[i];
            d->cards[i] = d->cards[j];
            d->cards[j] = t;
        }
        d->next = 0;
    }
    return (tpcc_txn_type)d->cards[d->next++];
}
