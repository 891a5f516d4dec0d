/* libFuzzer target: decoding of a replicated-log batch (storage/range.h,
 * range_batch_decode) from arbitrary bytes. The first byte's low bit picks
 * raw mode (the rest goes in as is) or body mode (the harness appends the
 * trailing crc32c, so the fuzzer explores the body). Garbage must be MERR_CORRUPT;
 * whatever decodes must re-encode to bytes that decode to the same batch and
 * encode to the very same bytes again. Seeds: tests/fuzz/corpus/fuzz_range_batch/. */
#include "storage/range.h"
#include "tests/fuzz/fuzz_crc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    mbuf in = MBUF_INIT;
    fuzz_crc_input(data, size, &in);
    range_batch_decoded d;
    memset(&d, 0, sizeof d);
    int rc = range_batch_decode(in.data, in.len, &d);
    if (rc) {
        if (rc != MERR_CORRUPT && rc != MERR_NOMEM && rc != MERR_TOOBIG) abort();
        range_batch_decoded_free(&d);
        mbuf_free(&in);
        return 0;
    }
    /* Touch every pointer the decoder handed out (ASan checks the bounds). */
    size_t sum = 0;
    const range_batch *b = &d.batch;
    for (size_t i = 0; i < b->nwrites; i++) {
        for (size_t k = 0; k < b->writes[i].klen; k++) sum += b->writes[i].key[k];
        if (!b->writes[i].del)
            for (size_t k = 0; k < b->writes[i].vlen; k++) sum += b->writes[i].val[k];
    }
    for (size_t i = 0; i < b->nprepares; i++) {
        const range_intent *it = &b->prepares[i];
        for (size_t k = 0; k < it->txn_len; k++) sum += it->txn[k];
        for (size_t k = 0; k < it->coord_len; k++) sum += it->coord[k];
        for (size_t w = 0; w < it->nwrites; w++) sum += it->writes[w].klen;
        for (size_t s = 0; s < it->nspans; s++) sum += it->spans[s].klen + it->spans[s].elen;
    }
    for (size_t i = 0; i < b->nresolves; i++)
        for (size_t k = 0; k < b->resolves[i].txn_len; k++) sum += b->resolves[i].txn[k];
    (void)sum;

    mbuf a = MBUF_INIT, c = MBUF_INIT;
    if (range_batch_encode(b, &a)) abort();
    range_batch_decoded d2;
    memset(&d2, 0, sizeof d2);
    if (range_batch_decode(a.data, a.len, &d2)) abort();
    if (range_batch_encode(&d2.batch, &c)) abort();
    if (a.len != c.len || memcmp(a.data, c.data, a.len) != 0) abort();
    range_batch_decoded_free(&d2);
    range_batch_decoded_free(&d);
    mbuf_free(&a);
    mbuf_free(&c);
    mbuf_free(&in);
    return 0;
}
