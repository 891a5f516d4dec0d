/* Fuzz target for the key decoder: arbitrary bytes must either be rejected
 * with MERR_CORRUPT or decode to a tuple that re-encodes to the very same
 * bytes (the decoder accepts only canonical keys). The pretty-printer must
 * cope with anything, and the bounds built from a decoded tuple must print
 * too. Seeds: tests/fuzz/corpus/fuzz_keycodec/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/keycodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mkey_val vals[MKEY_MAX_COLS];
    size_t n = 0;
    mbuf scratch = MBUF_INIT, again = MBUF_INIT, text = MBUF_INIT;
    merr e = {0};

    int frc = mkey_format(data, size, &text);
    if (frc != 0 && frc != MERR_CORRUPT) abort();

    int rc = mkey_decode(data, size, vals, MKEY_MAX_COLS, &n, &scratch, &e);
    if (rc != 0 && rc != MERR_CORRUPT) abort();
    if (rc == MERR_CORRUPT && (e.code != rc || !e.msg[0])) abort();
    if (rc == 0) {
        if (frc != 0) abort(); /* what decodes must also print */
        if (mkey_encode(vals, n, &again) != 0) abort();
        if (again.len != size || (size && memcmp(again.data, data, size) != 0)) abort();
        /* a prefix encoding is the key minus its trailer: a byte prefix */
        mbuf_reset(&again);
        if (mkey_encode_prefix(vals, n, &again) != 0) abort();
        if (again.len > size || (again.len && memcmp(again.data, data, again.len) != 0)) abort();
        for (int kind = MKEY_GE; kind <= MKEY_LT; kind++) {
            mbuf_reset(&again);
            if (mkey_bound(vals, n, (enum mkey_bound_kind)kind, &again) != 0) abort();
            mbuf_reset(&text);
            if (mkey_format(again.data, again.len, &text) != 0) abort();
        }
        /* fewer slots than columns is a clean MERR_TOOBIG */
        if (n > 0 && mkey_decode(data, size, vals, n - 1, &n, &scratch, NULL) != MERR_TOOBIG)
            abort();
    }
    mbuf_free(&scratch);
    mbuf_free(&again);
    mbuf_free(&text);
    return 0;
}
