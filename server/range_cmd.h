/* The commands a range's Paxos DATA proposal carries (server/replica.c).
 *
 * The first byte names the command. A storage batch keeps its own encoding
 * (range_batch_encode), whose first byte is its version, 1: so every log
 * written before splits existed reads as a batch, unchanged. Split and merge
 * use tags no batch version uses:
 *   SPLIT  0x10 | new_range_id u64 | expected_gen u64 | nvoters u8 | voter u32 *
 *          | key varint+bytes | crc32c u32
 *   MERGE  0x11 | right_id u64 | left_gen u64 | right_gen u64 | right_applied u64 | crc32c u32
 *   FREEZE 0x12 | expected_gen u64 | crc32c u32
 *   CLOSE  0x13 | closed u64 | crc32c u32
 * The crc covers everything before it. Decoding is strict: exact length, a
 * key of 1..RANGE_KEY_MAX bytes, 1..RANGE_CMD_MAX_VOTERS non-zero voters,
 * non-zero ids, or MERR_CORRUPT. */
#ifndef MERIDIAN_SERVER_RANGE_CMD_H
#define MERIDIAN_SERVER_RANGE_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define RANGE_CMD_BATCH      0x01 /* = range_batch's version byte */
#define RANGE_CMD_SPLIT      0x10
#define RANGE_CMD_MERGE      0x11
#define RANGE_CMD_FREEZE     0x12
#define RANGE_CMD_CLOSE      0x13 /* closed timestamp (server/replica_close.c) */
#define RANGE_CMD_MAX_VOTERS 9    /* = PAXOS_MAX_NODES */

typedef struct range_cmd {
    int kind; /* RANGE_CMD_* */
    /* SPLIT: [key, end) becomes range new_range_id, if the range is still at
     * expected_gen when the entry applies (else the entry is a no-op). */
    const uint8_t *key; /* points into the decoded bytes */
    size_t klen;
    uint64_t new_range_id, expected_gen;
    /* The new group's genesis voters: the parent's voters when proposed, so
     * every replica creates the group with the same membership. */
    uint32_t voters[RANGE_CMD_MAX_VOTERS];
    size_t nvoters;
    /* MERGE: the right neighbour folds into this range, if both are still at
     * these generations; right_applied is the right group's last applied
     * slot when it froze (every replica must have applied it first). */
    uint64_t right_id, left_gen, right_gen, right_applied;
    /* FREEZE (expected_gen): the range stops taking writes for a merge into
     * its left neighbour, if still at that generation and without prepared
     * transactions (server/replica_merge.c). */
    /* CLOSE: the leaseholder promises no write below `closed` will follow in
     * the log (a non-zero HLC timestamp). */
    uint64_t closed;
} range_cmd;

int range_cmd_encode_split(const uint8_t *key, size_t klen, uint64_t new_range_id,
                           uint64_t expected_gen, const uint32_t *voters, size_t nvoters,
                           mbuf *out);
int range_cmd_encode_merge(uint64_t right_id, uint64_t left_gen, uint64_t right_gen,
                           uint64_t right_applied, mbuf *out);
int range_cmd_encode_freeze(uint64_t expected_gen, mbuf *out);
int range_cmd_encode_close(uint64_t closed, mbuf *out);
/* Names the command of p (RANGE_CMD_BATCH: decode it with range_batch_decode)
 * and decodes split/merge into *out. MERR_CORRUPT on anything else. */
int range_cmd_decode(const uint8_t *p, size_t n, range_cmd *out);

#endif
