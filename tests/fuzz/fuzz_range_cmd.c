/* libFuzzer target: the range command decoder (server/range_cmd.h) that every
 * replica runs on each chosen log entry. The first byte's low bit picks raw
 * mode (bytes as they are) or body mode (the harness appends the trailing
 * crc32c, so the fuzzer reaches the fields behind the checksum). Garbage must
 * be MERR_CORRUPT; a decoded split, merge or close must re-encode to the very same
 * bytes (the encoding is canonical). Seeds: tests/fuzz/corpus/fuzz_range_cmd/. */
#include "common/err.h"
#include "server/range_cmd.h"
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
    range_cmd c;
    memset(&c, 0, sizeof c);
    int rc = range_cmd_decode(in.data, in.len, &c);
    if (rc) {
        if (rc != MERR_CORRUPT) abort();
        mbuf_free(&in);
        return 0;
    }
    mbuf out = MBUF_INIT;
    if (c.kind == RANGE_CMD_SPLIT) {
        if (!c.klen || c.nvoters < 1 || c.nvoters > RANGE_CMD_MAX_VOTERS) abort();
        size_t sum = 0; /* touch the key: ASan checks it lies inside the input */
        for (size_t i = 0; i < c.klen; i++) sum += c.key[i];
        (void)sum;
        if (range_cmd_encode_split(c.key, c.klen, c.new_range_id, c.expected_gen, c.voters,
                                   c.nvoters, &out))
            abort();
    } else if (c.kind == RANGE_CMD_MERGE) {
        if (range_cmd_encode_merge(c.right_id, c.left_gen, c.right_gen, c.right_applied, &out))
            abort();
    } else if (c.kind == RANGE_CMD_FREEZE) {
        if (range_cmd_encode_freeze(c.expected_gen, &out)) abort();
    } else if (c.kind == RANGE_CMD_CLOSE) {
        if (range_cmd_encode_close(c.closed, &out)) abort();
    } else if (c.kind != RANGE_CMD_BATCH) {
        abort();
    }
    if (c.kind != RANGE_CMD_BATCH && (out.len != in.len || memcmp(out.data, in.data, in.len)))
        abort();
    mbuf_free(&out);
    mbuf_free(&in);
    return 0;
}
