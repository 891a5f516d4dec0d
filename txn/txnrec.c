/* Transaction record values and their GC rules: see txnrec.h. */
#include "txn/txnrec.h"

#include <string.h>

#include "common/err.h"
#include "common/localkey.h"

#define REC_SUFFIX     "txn/"
#define REC_SUFFIX_LEN 4

int txn_rec_key(const uint8_t *anchor, size_t alen, uint64_t txn, bool abort, mbuf *out)
{
    uint8_t sfx[REC_SUFFIX_LEN + 9];
    memcpy(sfx, REC_SUFFIX, REC_SUFFIX_LEN);
    for (int i = 0; i < 8; i++) sfx[REC_SUFFIX_LEN + i] = (uint8_t)(txn >> (56 - 8 * i));
    sfx[REC_SUFFIX_LEN + 8] = 0x02;
    return mlocal_key(anchor, alen, sfx, REC_SUFFIX_LEN + 8 + (abort ? 1 : 0), out);
}

int txn_rec_key_parse(const uint8_t *k, size_t n, mbuf *anchor, uint64_t *txn, bool *abort)
{
    const uint8_t *s;
    size_t sl;
    int rc = mlocal_decode(k, n, anchor, &s, &sl);
    if (rc) return rc;
    if ((sl != REC_SUFFIX_LEN + 8 && !(sl == REC_SUFFIX_LEN + 9 && s[sl - 1] == 0x02)) ||
        memcmp(s, REC_SUFFIX, REC_SUFFIX_LEN) != 0)
        return MERR_CORRUPT;
    *txn = 0;
    for (int i = 0; i < 8; i++) *txn = *txn << 8 | s[REC_SUFFIX_LEN + i];
    *abort = sl == REC_SUFFIX_LEN + 9;
    return 0;
}

size_t txn_rec_value_encode(const txn_rec_value *v, uint8_t out[TXN_REC_VALUE_MAX])
{
    size_t n = v->n_parts > TXN_MAX_PARTS ? TXN_MAX_PARTS : v->n_parts, o = 0;
    out[o++] = v->abort ? 0x02 : 0x01;
    for (int i = 0; i < 8; i++) out[o++] = (uint8_t)(v->deadline_us >> (56 - 8 * i));
    out[o++] = (uint8_t)n;
    for (size_t j = 0; j < n; j++)
        for (int i = 0; i < 8; i++) out[o++] = (uint8_t)(v->parts[j] >> (56 - 8 * i));
    return o;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x = x << 8 | p[i];
    return x;
}

int txn_rec_value_decode(const uint8_t *p, size_t n, txn_rec_value *v)
{
    memset(v, 0, sizeof(*v));
    if (n == 0) return 0; /* an older commit record */
    if (p[0] != 0x01 && p[0] != 0x02) return MERR_CORRUPT;
    v->abort = p[0] == 0x02;
    if (n == 1) return v->abort ? 0 : MERR_CORRUPT; /* an older abort record */
    if (n < 10 || p[9] > TXN_MAX_PARTS || n != 10 + 8 * (size_t)p[9]) {
        memset(v, 0, sizeof(*v));
        return MERR_CORRUPT;
    }
    v->deadline_us = be64(p + 1);
    v->n_parts = p[9];
    for (size_t j = 0; j < v->n_parts; j++) v->parts[j] = be64(p + 10 + 8 * j);
    return 0;
}

txn_deadline_verdict txn_rec_deadline_check(uint64_t deadline_us, uint64_t tt_latest_us)
{
    if (!deadline_us) return TXN_DEADLINE_OK;
    if (tt_latest_us > deadline_us) return TXN_DEADLINE_PASSED;
    if (deadline_us - tt_latest_us > (uint64_t)TXN_REC_DEADLINE_MAX_US) return TXN_DEADLINE_TOO_FAR;
    return TXN_DEADLINE_OK;
}

uint64_t txn_rec_presumed_deadline(uint64_t tt_latest_us)
{
    /* The client's deadline was at most MAX past the commit request, which
     * came before the participant prepared, before this query. */
    return tt_latest_us + (uint64_t)TXN_REC_DEADLINE_MAX_US + (uint64_t)TXN_REC_MARGIN_US;
}

bool txn_rec_collectable(const txn_rec_value *v, uint64_t tt_earliest_us, bool outcome_delivered)
{
    return v->deadline_us && tt_earliest_us > v->deadline_us + (uint64_t)TXN_REC_MARGIN_US &&
           outcome_delivered;
}
