/* Growable byte buffers and bounds-checked readers.
 *
 * mbuf owns its bytes and grows geometrically. mreader walks a byte slice and
 * never reads past its end: every get returns MERR_CORRUPT on a short read,
 * which is how decoders of untrusted input (frames, log records, keys) stay
 * safe. Integers are big-endian on the wire; varints are LEB128. */
#ifndef MERIDIAN_COMMON_BUF_H
#define MERIDIAN_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct mbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
} mbuf;

#define MBUF_INIT                                                                                  \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void mbuf_init(mbuf *b);
void mbuf_free(mbuf *b);
void mbuf_reset(mbuf *b); /* len = 0, keeps capacity */
/* Ensures room for `extra` more bytes. Returns 0 or MERR_NOMEM. */
int mbuf_reserve(mbuf *b, size_t extra);
int mbuf_append(mbuf *b, const void *p, size_t n);
int mbuf_append_u8(mbuf *b, uint8_t v);
int mbuf_append_u16be(mbuf *b, uint16_t v);
int mbuf_append_u32be(mbuf *b, uint32_t v);
int mbuf_append_u64be(mbuf *b, uint64_t v);
int mbuf_append_varint(mbuf *b, uint64_t v);
int mbuf_append_str(mbuf *b, const char *s); /* without the NUL */
int mbuf_printf(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Byte-string order (memcmp, a prefix first): keys, spans, bounds. */
int mbytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
/* Drops the first n bytes (n <= len). */
void mbuf_consume(mbuf *b, size_t n);
/* Hands the bytes to the caller (who frees them) and resets b. */
uint8_t *mbuf_detach(mbuf *b, size_t *len);

typedef struct mreader {
    const uint8_t *p;
    size_t len;
    size_t pos;
} mreader;

void mreader_init(mreader *r, const void *p, size_t len);
size_t mreader_left(const mreader *r);
int mreader_u8(mreader *r, uint8_t *v);
int mreader_u16be(mreader *r, uint16_t *v);
int mreader_u32be(mreader *r, uint32_t *v);
int mreader_u64be(mreader *r, uint64_t *v);
int mreader_varint(mreader *r, uint64_t *v);
/* Points *p at the next n bytes without copying. */
int mreader_bytes(mreader *r, size_t n, const uint8_t **p);

static inline void mbe32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t mbe32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void mbe64_put(uint8_t *p, uint64_t v)
{
    mbe32_put(p, (uint32_t)(v >> 32));
    mbe32_put(p + 4, (uint32_t)v);
}
static inline uint64_t mbe64_get(const uint8_t *p)
{
    return ((uint64_t)mbe32_get(p) << 32) | mbe32_get(p + 4);
}

/* Appends printf output to the NUL-terminated text in buf[0..cap) at *len,
 * truncating at cap; *len counts only what was written. For one-line
 * descriptions into fixed buffers. */
void mstr_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
