/* libFuzzer target: the rpc frame decoder and envelope decoder on arbitrary
 * bytes, fed in pieces whose sizes come from the input itself (so split and
 * coalesced reads are explored), with a small max frame so the oversize path
 * is reachable. Must never crash, hang, read out of bounds or leak. */
#include "rpc/frame.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* First byte: chunking step (1..256) and the max frame (64 B .. 64 KiB). */
    size_t step = (size_t)(data[0] & 0x0f) * 16 + 1;
    size_t max_frame = (size_t)64 << ((data[0] >> 4) % 11);
    data++;
    size--;
    rpc_decoder d;
    rpc_arena a;
    rpc_decoder_init(&d, max_frame);
    rpc_arena_init(&a);
    size_t off = 0;
    int dead = 0;
    while (off < size && !dead) {
        size_t n = size - off < step ? size - off : step;
        if (off & 1) {
            if (rpc_decoder_feed(&d, data + off, n)) break;
        } else {
            uint8_t *p;
            size_t cap;
            if (rpc_decoder_space(&d, n, &p, &cap)) break;
            memcpy(p, data + off, n);
            rpc_decoder_commit(&d, n);
        }
        off += n;
        for (;;) {
            const uint8_t *f;
            size_t fl;
            merr e = {0};
            int r = rpc_decoder_next(&d, &f, &fl, &e);
            if (r <= 0) {
                dead = r < 0;
                break;
            }
            rpc_env env;
            if (rpc_env_decode(f, fl, &a, &env, &e) == 0) {
                /* Re-encode what decoded: must succeed and fit. */
                mbuf out = MBUF_INIT;
                if (rpc_env_encode(&env, 0, &out, &e) == 0 && out.len < 4) __builtin_trap();
                mbuf_free(&out);
            }
            rpc_arena_reset(&a);
        }
    }
    (void)rpc_decoder_finish(&d, NULL);
    rpc_decoder_free(&d);
    rpc_arena_destroy(&a);
    return 0;
}
