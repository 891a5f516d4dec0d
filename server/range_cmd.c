/* Encoding of split, merge and close log commands (format in range_cmd.h). */
#include "server/range_cmd.h"

#include <string.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "storage/range.h"

static int seal(mbuf *out, size_t start)
{
    return mbuf_append_u32be(out, crc32c(0, out->data + start, out->len - start));
}

int range_cmd_encode_split(const uint8_t *key, size_t klen, uint64_t new_range_id,
                           uint64_t expected_gen, const uint32_t *voters, size_t nvoters, mbuf *out)
{
    if (!klen || klen > RANGE_KEY_MAX || !new_range_id || !nvoters ||
        nvoters > RANGE_CMD_MAX_VOTERS)
        return MERR_INVALID;
    for (size_t i = 0; i < nvoters; i++)
        if (!voters[i]) return MERR_INVALID;
    size_t start = out->len;
    int bad = mbuf_append_u8(out, RANGE_CMD_SPLIT) || mbuf_append_u64be(out, new_range_id) ||
              mbuf_append_u64be(out, expected_gen) || mbuf_append_u8(out, (uint8_t)nvoters);
    for (size_t i = 0; i < nvoters && !bad; i++) bad = mbuf_append_u32be(out, voters[i]);
    if (bad || mbuf_append_varint(out, klen) || mbuf_append(out, key, klen) || seal(out, start)) {
        out->len = start;
        return MERR_NOMEM;
    }
    return 0;
}

int range_cmd_encode_merge(uint64_t right_id, uint64_t left_gen, uint64_t right_gen,
                           uint64_t right_applied, mbuf *out)
{
    if (!right_id) return MERR_INVALID;
    size_t start = out->len;
    if (mbuf_append_u8(out, RANGE_CMD_MERGE) || mbuf_append_u64be(out, right_id) ||
        mbuf_append_u64be(out, left_gen) || mbuf_append_u64be(out, right_gen) ||
        mbuf_append_u64be(out, right_applied) || seal(out, start)) {
        out->len = start;
        return MERR_NOMEM;
    }
    return 0;
}

int range_cmd_encode_freeze(uint64_t expected_gen, mbuf *out)
{
    size_t start = out->len;
    if (mbuf_append_u8(out, RANGE_CMD_FREEZE) || mbuf_append_u64be(out, expected_gen) ||
        seal(out, start)) {
        out->len = start;
        return MERR_NOMEM;
    }
    return 0;
}

int range_cmd_encode_close(uint64_t closed, mbuf *out)
{
    if (!closed) return MERR_INVALID;
    size_t start = out->len;
    if (mbuf_append_u8(out, RANGE_CMD_CLOSE) || mbuf_append_u64be(out, closed) ||
        seal(out, start)) {
        out->len = start;
        return MERR_NOMEM;
    }
    return 0;
}

int range_cmd_decode(const uint8_t *p, size_t n, range_cmd *out)
{
    memset(out, 0, sizeof(*out));
    if (n < 1) return MERR_CORRUPT;
    if (p[0] == RANGE_CMD_BATCH) {
        out->kind = RANGE_CMD_BATCH;
        return 0;
    }
    if ((p[0] != RANGE_CMD_SPLIT && p[0] != RANGE_CMD_MERGE && p[0] != RANGE_CMD_FREEZE &&
         p[0] != RANGE_CMD_CLOSE) ||
        n < 5)
        return MERR_CORRUPT;
    if (mbe32_get(p + n - 4) != crc32c(0, p, n - 4)) return MERR_CORRUPT;
    mreader r;
    mreader_init(&r, p + 1, n - 5);
    out->kind = p[0];
    if (p[0] == RANGE_CMD_SPLIT) {
        uint64_t kl;
        uint8_t nv;
        if (mreader_u64be(&r, &out->new_range_id) || mreader_u64be(&r, &out->expected_gen) ||
            mreader_u8(&r, &nv) || nv == 0 || nv > RANGE_CMD_MAX_VOTERS)
            return MERR_CORRUPT;
        for (size_t i = 0; i < nv; i++)
            if (mreader_u32be(&r, &out->voters[i]) || !out->voters[i]) return MERR_CORRUPT;
        out->nvoters = nv;
        if (mreader_varint(&r, &kl) || kl == 0 || kl > RANGE_KEY_MAX ||
            mreader_bytes(&r, (size_t)kl, &out->key) || !out->new_range_id)
            return MERR_CORRUPT;
        out->klen = (size_t)kl;
    } else if (p[0] == RANGE_CMD_FREEZE) {
        if (mreader_u64be(&r, &out->expected_gen)) return MERR_CORRUPT;
    } else if (p[0] == RANGE_CMD_CLOSE) {
        if (mreader_u64be(&r, &out->closed) || !out->closed) return MERR_CORRUPT;
    } else {
        if (mreader_u64be(&r, &out->right_id) || mreader_u64be(&r, &out->left_gen) ||
            mreader_u64be(&r, &out->right_gen) || mreader_u64be(&r, &out->right_applied) ||
            !out->right_id)
            return MERR_CORRUPT;
    }
    return mreader_left(&r) ? MERR_CORRUPT : 0;
}
