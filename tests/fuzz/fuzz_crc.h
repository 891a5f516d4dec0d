/* Shared input framing for fuzz targets whose format ends in a crc32c.
 * The first byte's low bit picks raw mode (the rest goes in as is) or body
 * mode (the trailing crc32c is appended here, so the fuzzer explores the
 * fields behind the checksum instead of failing it on almost every input). */
#ifndef MERIDIAN_TESTS_FUZZ_CRC_H
#define MERIDIAN_TESTS_FUZZ_CRC_H

#include "common/buf.h"
#include "common/crc32c.h"

#include <stdint.h>
#include <stdlib.h>

/* Fills *in (initialised by the caller) from the fuzzer's bytes; size >= 1. */
static inline void fuzz_crc_input(const uint8_t *data, size_t size, mbuf *in)
{
    int raw = data[0] & 1;
    if (mbuf_append(in, data + 1, size - 1)) abort();
    if (!raw) {
        uint8_t t[4];
        mbe32_put(t, crc32c(0, in->data, in->len));
        if (mbuf_append(in, t, 4)) abort();
    }
}

#endif
