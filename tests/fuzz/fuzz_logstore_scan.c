/* libFuzzer target: the log store's pure record scanner
 * (replication/logstore_format.c) as recovery runs it: a segment header check,
 * lsf_scan over the bytes feeding every record into the in-memory index
 * (lsx_apply), then the torn-tail check lsf_find_commit_after. Must never
 * crash, hang, read out of bounds or leak; the scan's good end must lie on a
 * record boundary inside the buffer. Seeds: tests/fuzz/corpus/fuzz_logstore_scan/. */
#include "replication/logstore_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct scan_ctx {
    lsx_index *x;
    uint64_t last_end;
    size_t n;
} scan_ctx;

static void on_live(void *arg, uint64_t seg, int64_t delta)
{
    (void)arg;
    (void)seg;
    (void)delta;
}

static int apply(void *arg, const lsf_rec *r, uint64_t off)
{
    scan_ctx *c = arg;
    if (off + r->rec_len > c->n) abort(); /* a record outside the buffer */
    if (off < c->last_end) abort();       /* records overlap */
    c->last_end = off + r->rec_len;
    if (r->type == LSF_COMMIT) return 0;
    lsx_loc loc = {1, off, r->rec_len};
    return lsx_apply(c->x, r, loc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t start = 0;
    if (size >= LSF_HDR_SIZE && lsf_segment_header_check(data, size, 1) == 0) start = LSF_HDR_SIZE;
    lsx_index x;
    if (lsx_init(&x, on_live, NULL)) return 0;
    scan_ctx c = {&x, start, size};
    size_t good_end = 0;
    uint64_t last_seq = 0;
    char why[256];
    int rc = lsf_scan(data, size, start, apply, &c, &good_end, &last_seq, why, sizeof why);
    if (rc < 0 && rc != MERR_NOMEM) abort();
    if (good_end < start || good_end > size) abort();
    if (rc == 0 && good_end != size) abort();
    if (rc == 1 && !why[0]) abort();
    long next = lsf_find_commit_after(data, size, good_end, last_seq + 1);
    if (next != -1 && ((size_t)next < good_end || (size_t)next >= size)) abort();
    /* The index must answer lookups on whatever it holds. */
    for (uint64_t g = 0; g < 4; g++) {
        const lsx_group *grp = lsx_find(&x, g);
        if (grp && grp->n) {
            if (!lsx_get(grp, grp->ents[0].slot)) abort();
            (void)lsx_get_from(grp, 0);
        }
    }
    lsx_free(&x);
    return 0;
}
