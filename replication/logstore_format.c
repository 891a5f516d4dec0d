/* The log store's on-disk record format: encoding, checked decoding and the
 * round-by-round scan used both at recovery and after each write round. Pure:
 * bytes in, records out, no I/O. */
#include "replication/logstore_int.h"

#include "common/crc32c.h"

#include <stdio.h>
#include <string.h>

int lsf_encode(mbuf *b, uint8_t type, uint64_t group, uint64_t slot, uint64_t ballot,
               const void *payload, size_t n)
{
    if (n > LOGSTORE_MAX_VALUE) return MERR_TOOBIG;
    int rc = mbuf_reserve(b, LSF_REC_HDR + n);
    if (rc) return rc;
    uint8_t *p = b->data + b->len;
    mbe32_put(p, (uint32_t)n);
    p[8] = type;
    mbe64_put(p + 9, group);
    mbe64_put(p + 17, slot);
    mbe64_put(p + 25, ballot);
    if (n) memcpy(p + LSF_REC_HDR, payload, n);
    uint32_t crc = crc32c(0, p + LSF_CRC_OFFSET, LSF_REC_HDR - LSF_CRC_OFFSET + n);
    mbe32_put(p + 4, crc);
    b->len += LSF_REC_HDR + n;
    return 0;
}

void lsf_segment_header(uint8_t out[LSF_HDR_SIZE], uint64_t seq)
{
    memcpy(out, LSF_MAGIC, 8);
    mbe64_put(out + 8, seq);
}

int lsf_segment_header_check(const uint8_t *p, size_t n, uint64_t seq)
{
    if (n < LSF_HDR_SIZE || memcmp(p, LSF_MAGIC, 8) != 0) return MERR_CORRUPT;
    if (mbe64_get(p + 8) != seq) return MERR_CORRUPT;
    return 0;
}

int lsf_decode(const uint8_t *p, size_t n, lsf_rec *r)
{
    if (n < LSF_REC_HDR) return 1;
    uint32_t len = mbe32_get(p);
    if (len > LOGSTORE_MAX_VALUE) return MERR_CORRUPT;
    if (n - LSF_REC_HDR < len) return 1;
    uint32_t want = mbe32_get(p + 4);
    if (crc32c(0, p + LSF_CRC_OFFSET, LSF_REC_HDR - LSF_CRC_OFFSET + len) != want)
        return MERR_CORRUPT;
    r->type = p[8];
    if (r->type < LSF_HARDSTATE || r->type > LSF_COMMIT) return MERR_CORRUPT;
    r->group = mbe64_get(p + 9);
    r->slot = mbe64_get(p + 17);
    r->ballot = mbe64_get(p + 25);
    r->payload = p + LSF_REC_HDR;
    r->len = len;
    r->rec_len = LSF_REC_HDR + len;
    return 0;
}

int lsf_scan(const uint8_t *buf, size_t n, size_t start, lsf_apply_fn apply, void *arg,
             size_t *good_end, uint64_t *last_seq, char *why, size_t why_cap)
{
    size_t pos = start, round_start = start;
    uint64_t nrec = 0;
    if (why_cap) why[0] = 0;
    *good_end = start;
    while (pos < n) {
        lsf_rec r;
        int rc = lsf_decode(buf + pos, n - pos, &r);
        if (rc == 1) {
            snprintf(why, why_cap, "incomplete record at offset %zu (%zu bytes left)", pos,
                     n - pos);
            return 1;
        }
        if (rc < 0) {
            snprintf(why, why_cap, "bad record at offset %zu (checksum, length or type)", pos);
            return 1;
        }
        if (r.type != LSF_COMMIT) {
            nrec++;
            pos += r.rec_len;
            continue;
        }
        if (r.ballot != nrec || r.group != 0 || r.len != 0) {
            snprintf(why, why_cap, "commit marker at offset %zu counts %llu records, found %llu",
                     pos, (unsigned long long)r.ballot, (unsigned long long)nrec);
            return 1;
        }
        /* The round is complete: hand its records over. */
        size_t q = round_start;
        while (q < pos) {
            lsf_rec x;
            (void)lsf_decode(buf + q, n - q, &x); /* checked above */
            rc = apply(arg, &x, q);
            if (rc) return rc;
            q += x.rec_len;
        }
        rc = apply(arg, &r, pos);
        if (rc) return rc;
        pos += r.rec_len;
        round_start = pos;
        nrec = 0;
        *good_end = pos;
        *last_seq = r.slot;
    }
    if (round_start != n) {
        snprintf(why, why_cap, "round at offset %zu has no commit marker", round_start);
        return 1;
    }
    return 0;
}

long lsf_find_commit_after(const uint8_t *buf, size_t n, size_t from, uint64_t min_seq)
{
    /* A COMMIT marker is a header with length 0, type COMMIT and group 0, so
     * candidates are cheap to spot; the crc then confirms them. */
    for (size_t off = from; off + LSF_REC_HDR <= n; off++) {
        const uint8_t *p = buf + off;
        if (p[8] != LSF_COMMIT || mbe32_get(p) != 0 || mbe64_get(p + 9) != 0) continue;
        lsf_rec r;
        if (lsf_decode(p, n - off, &r) == 0 && r.slot >= min_seq) return (long)off;
    }
    return -1;
}
