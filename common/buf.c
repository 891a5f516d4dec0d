/* Growable byte buffers and bounds-checked readers (see buf.h). */
#include "common/buf.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mbuf_init(mbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void mbuf_free(mbuf *b)
{
    free(b->data);
    mbuf_init(b);
}

void mbuf_reset(mbuf *b)
{
    b->len = 0;
}

int mbuf_reserve(mbuf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len) return MERR_NOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *d = realloc(b->data, cap);
    if (!d) return MERR_NOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int mbuf_append(mbuf *b, const void *p, size_t n)
{
    if (n == 0) return 0;
    int rc = mbuf_reserve(b, n);
    if (rc) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int mbuf_append_u8(mbuf *b, uint8_t v)
{
    return mbuf_append(b, &v, 1);
}

int mbuf_append_u16be(mbuf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return mbuf_append(b, t, 2);
}

int mbuf_append_u32be(mbuf *b, uint32_t v)
{
    uint8_t t[4];
    mbe32_put(t, v);
    return mbuf_append(b, t, 4);
}

int mbuf_append_u64be(mbuf *b, uint64_t v)
{
    uint8_t t[8];
    mbe64_put(t, v);
    return mbuf_append(b, t, 8);
}

int mbuf_append_varint(mbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        t[n++] = c | (v ? 0x80 : 0);
    } while (v);
    return mbuf_append(b, t, n);
}

int mbuf_append_str(mbuf *b, const char *s)
{
    return mbuf_append(b, s, strlen(s));
}

int mbuf_printf(mbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return MERR_INVALID;
    int rc = mbuf_reserve(b, (size_t)n + 1);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void mbuf_consume(mbuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

uint8_t *mbuf_detach(mbuf *b, size_t *len)
{
    uint8_t *d = b->data;
    if (len) *len = b->len;
    mbuf_init(b);
    return d;
}

void mreader_init(mreader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
}

size_t mreader_left(const mreader *r)
{
    return r->len - r->pos;
}

int mreader_bytes(mreader *r, size_t n, const uint8_t **p)
{
    if (n > mreader_left(r)) return MERR_CORRUPT;
    *p = r->p + r->pos;
    r->pos += n;
    return 0;
}

int mreader_u8(mreader *r, uint8_t *v)
{
    const uint8_t *p;
    int rc = mreader_bytes(r, 1, &p);
    if (rc) return rc;
    *v = p[0];
    return 0;
}

int mreader_u16be(mreader *r, uint16_t *v)
{
    const uint8_t *p;
    int rc = mreader_bytes(r, 2, &p);
    if (rc) return rc;
    *v = (uint16_t)((p[0] << 8) | p[1]);
    return 0;
}

int mreader_u32be(mreader *r, uint32_t *v)
{
    const uint8_t *p;
    int rc = mreader_bytes(r, 4, &p);
    if (rc) return rc;
    *v = mbe32_get(p);
    return 0;
}

int mreader_u64be(mreader *r, uint64_t *v)
{
    const uint8_t *p;
    int rc = mreader_bytes(r, 8, &p);
    if (rc) return rc;
    *v = mbe64_get(p);
    return 0;
}

int mreader_varint(mreader *r, uint64_t *v)
{
    uint64_t out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t c;
        int rc = mreader_u8(r, &c);
        if (rc) return rc;
        if (shift == 63 && (c & 0x7e)) return MERR_CORRUPT; /* overflows 64 bits */
        out |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            /* Only the shortest form: one value, one encoding (a trailing
             * zero group would let two byte strings decode alike). */
            if (c == 0 && shift > 0) return MERR_CORRUPT;
            *v = out;
            return 0;
        }
    }
    return MERR_CORRUPT;
}

int mbytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

void mstr_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k > 0) *len = *len + (size_t)k < cap ? *len + (size_t)k : cap - 1;
}
