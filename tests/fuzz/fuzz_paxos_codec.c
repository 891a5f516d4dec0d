/* libFuzzer target: the Paxos wire codec (replication/paxos_codec.h) on
 * arbitrary bytes. Decoding must reject garbage cleanly (MERR_CORRUPT with a
 * message and a zeroed struct) and whatever decodes must re-encode, decode
 * again, and re-encode to the very same bytes (the codec is a fixed point
 * after one round trip). Seeds: tests/fuzz/corpus/fuzz_paxos_codec/. */
#include "replication/paxos_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    paxos_msg m, m2;
    merr e = {0};
    int rc = paxos_msg_decode(data, size, &m, &e);
    if (rc) {
        if (rc != MERR_CORRUPT && rc != MERR_NOMEM) abort();
        if (rc == MERR_CORRUPT && !e.msg[0]) abort();
        if (!all_zero(&m, sizeof m)) abort(); /* no half-filled struct */
        return 0;
    }
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    if (paxos_msg_encode(&m, &a, &alen)) abort(); /* what decodes must encode */
    if (paxos_msg_decode(a, alen, &m2, &e)) abort();
    if (paxos_msg_encode(&m2, &b, &blen)) abort();
    if (alen != blen || memcmp(a, b, alen) != 0) abort();
    /* a deep copy encodes identically too */
    paxos_msg c;
    if (paxos_msg_copy(&c, &m2) == 0) {
        uint8_t *cc = NULL;
        size_t clen = 0;
        if (paxos_msg_encode(&c, &cc, &clen)) abort();
        if (clen != alen || memcmp(cc, a, alen) != 0) abort();
        free(cc);
        paxos_msg_free(&c);
    }
    free(a);
    free(b);
    paxos_msg_free(&m);
    paxos_msg_free(&m2);
    return 0;
}
