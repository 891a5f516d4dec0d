/* Range-local keys: see localkey.h for the layout and why order works. */
#include "common/localkey.h"

#include "common/err.h"

static const uint8_t PREFIX[MLOCAL_PREFIX_LEN] = {0x00, 0x00};

int mlocal_is(const uint8_t *k, size_t n)
{
    return n >= MLOCAL_PREFIX_LEN && k[0] == 0x00 && k[1] == 0x00;
}

static int append_escaped(const uint8_t *x, size_t n, mbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (mbuf_append_u8(out, x[i])) return MERR_NOMEM;
        if (x[i] == 0x00 && mbuf_append_u8(out, 0xFF)) return MERR_NOMEM;
    }
    return 0;
}

int mlocal_bound(const uint8_t *x, size_t xlen, mbuf *out)
{
    if (mbuf_append(out, PREFIX, sizeof(PREFIX))) return MERR_NOMEM;
    return append_escaped(x, xlen, out);
}

int mlocal_key(const uint8_t *anchor, size_t alen, const uint8_t *suffix, size_t slen, mbuf *out)
{
    if (mlocal_bound(anchor, alen, out) || mbuf_append_u8(out, 0x00) || mbuf_append_u8(out, 0x01) ||
        mbuf_append(out, suffix, slen))
        return MERR_NOMEM;
    return 0;
}

int mlocal_end(mbuf *out)
{
    return mbuf_append_u8(out, 0x00) || mbuf_append_u8(out, 0x01) ? MERR_NOMEM : 0;
}

int mlocal_decode(const uint8_t *k, size_t n, mbuf *anchor, const uint8_t **suffix, size_t *slen)
{
    mbuf_reset(anchor);
    if (!mlocal_is(k, n)) return MERR_CORRUPT;
    for (size_t i = MLOCAL_PREFIX_LEN; i < n; i++) {
        if (k[i] != 0x00) {
            if (mbuf_append_u8(anchor, k[i])) return MERR_NOMEM;
            continue;
        }
        if (i + 1 >= n) return MERR_CORRUPT;
        if (k[i + 1] == 0x01) { /* the terminator */
            *suffix = k + i + 2;
            *slen = n - i - 2;
            return 0;
        }
        if (k[i + 1] != 0xFF) return MERR_CORRUPT;
        if (mbuf_append_u8(anchor, 0x00)) return MERR_NOMEM;
        i++;
    }
    return MERR_CORRUPT;
}

int mlocal_cmp_bound(const uint8_t *k, size_t n, const uint8_t *x, size_t xlen)
{
    /* Walk prefix | E(x) byte by byte against k. */
    size_t i = 0;
    for (; i < MLOCAL_PREFIX_LEN; i++) {
        if (i >= n) return -1;
        if (k[i] != PREFIX[i]) return k[i] < PREFIX[i] ? -1 : 1;
    }
    for (size_t j = 0; j < xlen; j++) {
        uint8_t b[2] = {x[j], 0xFF};
        for (size_t m = 0; m < (x[j] == 0x00 ? 2u : 1u); m++, i++) {
            if (i >= n) return -1;
            if (k[i] != b[m]) return k[i] < b[m] ? -1 : 1;
        }
    }
    return i < n ? 1 : 0; /* k extends the bound: above it */
}

int mlocal_in_span(const uint8_t *k, size_t n, const uint8_t *start, size_t slen,
                   const uint8_t *end, size_t elen)
{
    if (mlocal_cmp_bound(k, n, start, slen) < 0) return 0;
    return elen == 0 || mlocal_cmp_bound(k, n, end, elen) < 0;
}
