/* Order-preserving key codec (see keycodec.h; byte format in docs/keycodec.md).
 *
 * Numbers: every INTEGER and every finite REAL is sign * 2^e * 1.f, with e the
 * position of the top bit (-1074..1023) and f the bits below it (at most 62 for
 * an int64, 52 for a double). Encoding (sign, e, f) in that order compares by
 * value across both types, so 2^53+1 (int) sorts correctly against the doubles
 * either side of it. An int and a real of equal value encode identically; the
 * type goes into a trailer after the last column so it only breaks ties
 * between SQL-equal tuples. */
#include "common/keycodec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ascending tags; a descending column stores 0xFF - tag. Every ascending tag
 * is below 0x80 and every descending one above, and 0x00, 0x01 (as 0xFE) and
 * 0xFF are never column tags. */
enum {
    TAG_TRAILER = 0x01, /* after the last column: type variants */
    TAG_NULL = 0x05,
    TAG_NEG_INF = 0x08,
    TAG_NEG_HUGE = 0x09, /* negative, e >= 32; 2-byte exponent follows */
    TAG_NEG_E31 = 0x0A,  /* negative, e = 31 .. 0: tag 0x0A + 31 - e */
    TAG_NEG_E0 = 0x29,
    TAG_NEG_TINY = 0x2A, /* negative, e < 0 */
    TAG_ZERO = 0x2B,
    TAG_POS_TINY = 0x2C, /* positive, e < 0 */
    TAG_POS_E0 = 0x2D,   /* positive, e = 0 .. 31: tag 0x2D + e */
    TAG_POS_E31 = 0x4C,
    TAG_POS_HUGE = 0x4D, /* positive, e >= 32 */
    TAG_POS_INF = 0x4E,
    TAG_TEXT = 0x60,
    TAG_BLOB = 0x61,
    TAG_END = 0xFF, /* prefix successor marker (bounds only) */
};

#define EXP_BIAS  1074 /* stored exponent = e + 1074, big-endian u16 */
#define EXP_MIN   (-1074)
#define EXP_MAX   1023
#define SMALL_EXP 31 /* exponents 0..31 live in the tag */

/* Variants in the trailer, one byte per ambiguous numeric column. */
enum { VAR_INT = 0, VAR_REAL = 1, VAR_NEGZERO = 2 };

mkey_val mkey_null(int desc)
{
    mkey_val v = {.type = MKEY_NULL, .desc = (uint8_t) !!desc};
    return v;
}

mkey_val mkey_int(int64_t i, int desc)
{
    mkey_val v = {.type = MKEY_INT, .desc = (uint8_t) !!desc, .i = i};
    return v;
}

mkey_val mkey_real(double d, int desc)
{
    mkey_val v = {.type = MKEY_REAL, .desc = (uint8_t) !!desc, .d = d};
    return v;
}

mkey_val mkey_text(const void *p, size_t n, int desc)
{
    mkey_val v = {.type = MKEY_TEXT, .desc = (uint8_t) !!desc, .p = p, .n = n};
    return v;
}

mkey_val mkey_blob(const void *p, size_t n, int desc)
{
    mkey_val v = {.type = MKEY_BLOB, .desc = (uint8_t) !!desc, .p = p, .n = n};
    return v;
}

/* ---- numbers ---------------------------------------------------------- */

/* A nonzero finite magnitude m * 2^exp2 as (e, f): f holds the bits below
 * the top one, left-aligned (the first of them is bit 63). */
static void num_split(uint64_t m, int exp2, int *e, uint64_t *f)
{
    int msb = 63 - __builtin_clzll(m);
    *e = msb + exp2;
    *f = msb ? m << (64 - msb) : 0;
}

/* Number of fraction bits in use (position of the last 1 below the top). */
static int frac_bits(uint64_t f)
{
    return f ? 64 - __builtin_ctzll(f) : 0;
}

/* Whether sign * 2^e * 1.f is an int64. */
static int num_int_ok(int neg, int e, uint64_t f)
{
    if (e - frac_bits(f) < 0) return 0; /* has bits below 2^0 */
    if (e <= 62) return 1;
    return e == 63 && neg && f == 0; /* INT64_MIN */
}

/* Whether 2^e * 1.f is exactly a double (normal or subnormal). */
static int num_dbl_ok(int e, uint64_t f)
{
    if (e > EXP_MAX || e < EXP_MIN) return 0;
    if (e >= -1022) return frac_bits(f) <= 52;
    return e - frac_bits(f) >= EXP_MIN;
}

static int64_t num_to_int(int neg, int e, uint64_t f)
{
    uint64_t mag = e == 0 ? 1 : (1ULL << e) | (f >> (64 - e));
    return neg ? (int64_t)(0 - mag) : (int64_t)mag;
}

static double num_to_dbl(int neg, int e, uint64_t f)
{
    uint64_t bits;
    if (e >= -1022) {
        bits = ((uint64_t)(e + 1023) << 52) | (f >> 12);
    } else {
        int top = e - EXP_MIN; /* bit position of the leading 1, 0..51 */
        bits = (1ULL << top) | (top ? f >> (64 - top) : 0);
    }
    if (neg) bits |= 1ULL << 63;
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* Appends the ascending bytes of a nonzero finite number. */
static int enc_num(mbuf *out, int neg, int e, uint64_t f)
{
    uint8_t b[1 + 2 + 10];
    size_t n = 0;
    if (e > SMALL_EXP) {
        b[n++] = neg ? TAG_NEG_HUGE : TAG_POS_HUGE;
    } else if (e < 0) {
        b[n++] = neg ? TAG_NEG_TINY : TAG_POS_TINY;
    } else {
        b[n++] = (uint8_t)(neg ? TAG_NEG_E31 + (SMALL_EXP - e) : TAG_POS_E0 + e);
    }
    if (e > SMALL_EXP || e < 0) {
        uint16_t x = (uint16_t)(e + EXP_BIAS);
        b[n++] = (uint8_t)(x >> 8);
        b[n++] = (uint8_t)x;
    }
    /* Fraction: 7 bits a byte in the high bits, low bit 1 if more follow.
     * Trailing zero groups are dropped, so a longer fraction is always
     * larger; an empty fraction is the single byte 0x00. */
    if (!f) b[n++] = 0;
    while (f) {
        uint8_t grp = (uint8_t)(f >> 57);
        f <<= 7;
        b[n++] = (uint8_t)(grp << 1 | (f != 0));
    }
    if (neg) /* larger magnitude sorts first: complement all but the tag */
        for (size_t k = 1; k < n; k++) b[k] = (uint8_t)~b[k];
    return mbuf_append(out, b, n);
}

/* Appends text/blob bytes: 0x00 becomes 00 FF, the end is 00 01, so a
 * string sorts before its extensions and 0x00 before every other byte. */
static int enc_bytes(mbuf *out, const uint8_t *p, size_t n)
{
    int rc;
    while (n) {
        const uint8_t *z = memchr(p, 0, n);
        size_t run = z ? (size_t)(z - p) : n;
        if ((rc = mbuf_append(out, p, run))) return rc;
        p += run;
        n -= run;
        if (z) {
            static const uint8_t esc[2] = {0x00, 0xFF};
            if ((rc = mbuf_append(out, esc, 2))) return rc;
            p++;
            n--;
        }
    }
    static const uint8_t term[2] = {0x00, 0x01};
    return mbuf_append(out, term, 2);
}

/* Appends one column; *amb gets 1 if its value could be either an INTEGER or
 * a REAL (then *var says which), 0 otherwise. */
static int enc_col(mbuf *out, const mkey_val *v, int *amb, uint8_t *var)
{
    size_t start = out->len;
    int rc = 0;
    *amb = 0;
    *var = VAR_INT;
    switch (v->type) {
    case MKEY_NULL: rc = mbuf_append_u8(out, TAG_NULL); break;
    case MKEY_INT:
        if (v->i == 0) {
            *amb = 1;
            rc = mbuf_append_u8(out, TAG_ZERO);
        } else {
            int neg = v->i < 0, e;
            uint64_t mag = neg ? 0 - (uint64_t)v->i : (uint64_t)v->i, f;
            num_split(mag, 0, &e, &f);
            *amb = num_dbl_ok(e, f);
            rc = enc_num(out, neg, e, f);
        }
        break;
    case MKEY_REAL: {
        double d = v->d;
        if (isnan(d)) return MERR_INVALID;
        if (isinf(d)) {
            rc = mbuf_append_u8(out, d < 0 ? TAG_NEG_INF : TAG_POS_INF);
            break;
        }
        if (d == 0) {
            *amb = 1;
            *var = signbit(d) ? VAR_NEGZERO : VAR_REAL;
            rc = mbuf_append_u8(out, TAG_ZERO);
            break;
        }
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        int neg = (int)(bits >> 63), biased = (int)((bits >> 52) & 0x7FF), e;
        uint64_t m = bits & ((1ULL << 52) - 1), f;
        if (biased) m |= 1ULL << 52;
        num_split(m, biased ? biased - 1075 : EXP_MIN, &e, &f);
        if (num_int_ok(neg, e, f)) {
            *amb = 1;
            *var = VAR_REAL;
        }
        rc = enc_num(out, neg, e, f);
        break;
    }
    case MKEY_TEXT:
    case MKEY_BLOB:
        if (v->n && !v->p) return MERR_INVALID;
        if ((rc = mbuf_append_u8(out, v->type == MKEY_TEXT ? TAG_TEXT : TAG_BLOB))) break;
        rc = enc_bytes(out, v->p, v->n);
        break;
    default: return MERR_INVALID;
    }
    if (!rc && v->desc)
        for (size_t k = start; k < out->len; k++) out->data[k] = (uint8_t)~out->data[k];
    return rc;
}

static int encode(const mkey_val *vals, size_t n, mbuf *out, int trailer)
{
    if (n > MKEY_MAX_COLS) return MERR_TOOBIG;
    if (n && !vals) return MERR_INVALID;
    size_t start = out->len;
    uint8_t vars[MKEY_MAX_COLS];
    size_t namb = 0, last = 0; /* last: 1 + index of the last non-INT variant */
    int rc = 0;
    for (size_t c = 0; c < n; c++) {
        int amb;
        uint8_t var;
        if ((rc = enc_col(out, &vals[c], &amb, &var))) goto err;
        if (amb) {
            vars[namb++] = var;
            if (var != VAR_INT) last = namb;
        }
    }
    if (trailer && last) {
        if ((rc = mbuf_append_u8(out, TAG_TRAILER))) goto err;
        if ((rc = mbuf_append(out, vars, last))) goto err;
    }
    return 0;
err:
    out->len = start;
    return rc;
}

int mkey_encode(const mkey_val *vals, size_t n, mbuf *out)
{
    return encode(vals, n, out, 1);
}

int mkey_encode_prefix(const mkey_val *vals, size_t n, mbuf *out)
{
    return encode(vals, n, out, 0);
}

int mkey_prefix_end(mbuf *prefix)
{
    return mbuf_append_u8(prefix, TAG_END);
}

int mkey_bound(const mkey_val *vals, size_t n, enum mkey_bound_kind kind, mbuf *out)
{
    size_t start = out->len;
    int rc = encode(vals, n, out, 0);
    if (rc) return rc;
    if (kind == MKEY_GE || kind == MKEY_LT) return 0;
    if (kind != MKEY_GT && kind != MKEY_LE) {
        out->len = start;
        return MERR_INVALID;
    }
    /* Past every key with this prefix. For n == 0 that is past every key,
     * which the single byte 0xFF is too: no key starts with it. */
    if ((rc = mbuf_append_u8(out, TAG_END))) out->len = start;
    return rc;
}

/* ---- decoding --------------------------------------------------------- */

enum col_kind { COL_NULL, COL_NUM, COL_ZERO, COL_INF, COL_TEXT, COL_BLOB, COL_TRAILER, COL_END };

typedef struct dcol {
    enum col_kind kind;
    int desc, neg, e;
    uint64_t f;
    size_t off, n; /* text/blob: bytes in the scratch buffer */
} dcol;

static int corrupt(merr *e, const mreader *r, const char *what)
{
    return merr_set(e, MERR_CORRUPT, "key: %s at byte %zu", what, r->pos);
}

/* Reads one byte of a column's body, undoing the descending complement. */
static int rd(mreader *r, uint8_t flip, uint8_t *b, merr *e)
{
    if (mreader_u8(r, b)) return corrupt(e, r, "truncated column");
    *b ^= flip;
    return 0;
}

static int dec_num(mreader *r, uint8_t tag, uint8_t flip, dcol *c, merr *e)
{
    uint8_t b;
    int rc;
    c->kind = COL_NUM;
    c->neg = tag < TAG_ZERO;
    if (c->neg) flip ^= 0xFF; /* the magnitude bytes of a negative are complemented */
    int big = tag == TAG_NEG_HUGE || tag == TAG_POS_HUGE;
    int tiny = tag == TAG_NEG_TINY || tag == TAG_POS_TINY;
    if (big || tiny) {
        uint8_t hi, lo;
        if ((rc = rd(r, flip, &hi, e)) || (rc = rd(r, flip, &lo, e))) return rc;
        c->e = (int)(((unsigned)hi << 8) | lo) - EXP_BIAS;
        if (c->e > EXP_MAX) return corrupt(e, r, "exponent out of range");
        if (big && c->e <= SMALL_EXP) return corrupt(e, r, "non-canonical exponent");
        if (tiny && c->e >= 0) return corrupt(e, r, "non-canonical exponent");
    } else {
        c->e = c->neg ? SMALL_EXP - (tag - TAG_NEG_E31) : tag - TAG_POS_E0;
    }
    c->f = 0;
    for (int g = 0;; g++) {
        if ((rc = rd(r, flip, &b, e))) return rc;
        if (g == 9) return corrupt(e, r, "fraction too long");
        c->f |= (uint64_t)(b >> 1) << (57 - 7 * g);
        if (!(b & 1)) {
            /* canonical: the last group is nonzero unless it is the only one */
            if (!(b >> 1) && g > 0) return corrupt(e, r, "non-canonical fraction");
            break;
        }
    }
    if (!num_int_ok(c->neg, c->e, c->f) && !num_dbl_ok(c->e, c->f))
        return corrupt(e, r, "number is neither an int64 nor a double");
    return 0;
}

/* Reads escaped bytes up to the 00 01 terminator, copying them to scratch
 * when it is given. Runs between zero bytes are found with memchr and copied
 * whole: text columns dominate decode time otherwise. */
static int dec_bytes(mreader *r, uint8_t flip, dcol *c, mbuf *scratch, merr *e)
{
    int rc;
    c->off = scratch ? scratch->len : 0;
    c->n = 0;
    for (;;) {
        size_t left = mreader_left(r);
        const uint8_t *at = r->p + r->pos, *run;
        const uint8_t *z = left ? memchr(at, flip, left) : NULL; /* a stored 0x00 */
        if (!z) {
            (void)mreader_bytes(r, left, &run);
            return corrupt(e, r, "unterminated text/blob");
        }
        size_t len = (size_t)(z - at);
        (void)mreader_bytes(r, len, &run);
        if (scratch && len) {
            if (mbuf_reserve(scratch, len)) return MERR_NOMEM;
            uint8_t *dst = scratch->data + scratch->len;
            if (flip)
                for (size_t k = 0; k < len; k++) dst[k] = (uint8_t)~run[k];
            else
                memcpy(dst, run, len);
            scratch->len += len;
        }
        c->n += len;
        uint8_t zero, x;
        if ((rc = rd(r, flip, &zero, e)) || (rc = rd(r, flip, &x, e))) return rc;
        if (x == 0x01) return 0;
        if (x != 0xFF) return corrupt(e, r, "bad escape in text/blob");
        if (scratch && mbuf_append_u8(scratch, 0)) return MERR_NOMEM;
        c->n++;
    }
}

static int dec_col(mreader *r, dcol *c, mbuf *scratch, merr *e)
{
    uint8_t t;
    if (mreader_u8(r, &t)) return corrupt(e, r, "empty column");
    memset(c, 0, sizeof(*c));
    if (t == TAG_TRAILER) {
        c->kind = COL_TRAILER;
        return 0;
    }
    if (t == TAG_END) {
        c->kind = COL_END;
        return 0;
    }
    c->desc = t >= 0x80;
    uint8_t flip = c->desc ? 0xFF : 0x00;
    t ^= flip;
    if (t == TAG_NULL) {
        c->kind = COL_NULL;
    } else if (t == TAG_ZERO) {
        c->kind = COL_ZERO;
    } else if (t == TAG_NEG_INF || t == TAG_POS_INF) {
        c->kind = COL_INF;
        c->neg = t == TAG_NEG_INF;
    } else if (t > TAG_NEG_INF && t < TAG_POS_INF) {
        return dec_num(r, t, flip, c, e);
    } else if (t == TAG_TEXT || t == TAG_BLOB) {
        c->kind = t == TAG_TEXT ? COL_TEXT : COL_BLOB;
        return dec_bytes(r, flip, c, scratch, e);
    } else {
        r->pos--;
        return corrupt(e, r, "unknown tag");
    }
    return 0;
}

/* Decodes columns into vals; with allow_end a trailing successor marker is
 * accepted (*end set). On error, vals[0..*n) still hold the columns decoded
 * so far (the formatter prints them) and *good is how many bytes they use. */
static int decode(const uint8_t *key, size_t len, mkey_val *vals, size_t max, size_t *n,
                  mbuf *scratch, merr *e, int allow_end, int *end, size_t *good)
{
    mreader r;
    mreader_init(&r, key, len);
    size_t ncols = 0, namb = 0, amb[MKEY_MAX_COLS];
    size_t offs[MKEY_MAX_COLS];
    int rc = 0;
    *end = 0;
    *good = 0;
    mbuf_reset(scratch);
    while (mreader_left(&r)) {
        dcol c;
        if ((rc = dec_col(&r, &c, scratch, e))) goto out;
        if (c.kind == COL_END) {
            if (!allow_end || mreader_left(&r)) {
                rc = corrupt(e, &r, "successor marker inside a key");
                goto out;
            }
            *end = 1;
            *good = r.pos;
            break;
        }
        if (c.kind == COL_TRAILER) {
            size_t k = mreader_left(&r);
            if (k == 0 || k > namb) {
                rc = corrupt(e, &r, "bad trailer length");
                goto out;
            }
            for (size_t j = 0; j < k; j++) {
                uint8_t var;
                (void)mreader_u8(&r, &var);
                mkey_val *v = &vals[amb[j]];
                if (var > VAR_NEGZERO || (var == VAR_NEGZERO && v->i != 0) ||
                    (j == k - 1 && var == VAR_INT)) {
                    rc = corrupt(e, &r, "bad trailer variant");
                    goto out;
                }
                if (var != VAR_INT) v->type = MKEY_REAL;
                if (var == VAR_NEGZERO) v->d = -0.0;
            }
            *good = r.pos;
            break;
        }
        if (ncols == MKEY_MAX_COLS) {
            rc = corrupt(e, &r, "too many columns");
            goto out;
        }
        if (ncols == max) {
            rc = merr_set(e, MERR_TOOBIG, "key: more than %zu columns", max);
            goto out;
        }
        mkey_val *v = &vals[ncols];
        memset(v, 0, sizeof(*v));
        v->desc = (uint8_t)c.desc;
        switch (c.kind) {
        case COL_NULL: v->type = MKEY_NULL; break;
        case COL_ZERO:
            v->type = MKEY_INT;
            amb[namb++] = ncols;
            break;
        case COL_INF:
            v->type = MKEY_REAL;
            v->d = c.neg ? -INFINITY : INFINITY;
            break;
        case COL_NUM: {
            int iok = num_int_ok(c.neg, c.e, c.f), dok = num_dbl_ok(c.e, c.f);
            if (iok) v->i = num_to_int(c.neg, c.e, c.f);
            if (dok) v->d = num_to_dbl(c.neg, c.e, c.f);
            v->type = iok ? MKEY_INT : MKEY_REAL;
            if (iok && dok) amb[namb++] = ncols;
            break;
        }
        default:
            v->type = c.kind == COL_TEXT ? MKEY_TEXT : MKEY_BLOB;
            v->n = c.n;
            offs[ncols] = c.off;
            break;
        }
        ncols++;
        *good = r.pos;
    }
out:
    /* Text pointers are set last: scratch may have moved while growing. */
    for (size_t c = 0; c < ncols; c++)
        if (vals[c].type == MKEY_TEXT || vals[c].type == MKEY_BLOB)
            vals[c].p = scratch->data ? scratch->data + offs[c] : (const uint8_t *)"";
    *n = ncols;
    return rc;
}

int mkey_decode(const uint8_t *key, size_t len, mkey_val *vals, size_t max, size_t *n,
                mbuf *scratch, merr *e)
{
    int end;
    size_t good;
    if ((!key && len) || !scratch || !n || (max && !vals))
        return merr_set(e, MERR_INVALID, "key: bad decode arguments");
    return decode(key, len, vals, max, n, scratch, e, 0, &end, &good);
}

/* ---- formatting ------------------------------------------------------- */

static int fmt_real(mbuf *out, double d)
{
    if (isinf(d)) return mbuf_append_str(out, d < 0 ? "-inf" : "inf");
    char s[40];
    /* The shortest of %.15g..%.17g that reads back as the same double. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof(s), "%.*g", prec, d);
        if (strtod(s, NULL) == d) break;
    }
    int rc = mbuf_append_str(out, s);
    if (!rc && !strpbrk(s, ".e")) rc = mbuf_append_str(out, ".0");
    return rc;
}

static int fmt_val(mbuf *out, const mkey_val *v)
{
    static const char hex[] = "0123456789abcdef";
    int rc = mbuf_append_str(out, v->desc ? "/~" : "/");
    if (rc) return rc;
    switch (v->type) {
    case MKEY_NULL: return mbuf_append_str(out, "NULL");
    case MKEY_INT: return mbuf_printf(out, "%lld", (long long)v->i);
    case MKEY_REAL: return fmt_real(out, v->d);
    case MKEY_TEXT:
        if ((rc = mbuf_append_u8(out, '"'))) return rc;
        for (size_t k = 0; k < v->n && !rc; k++) {
            uint8_t b = v->p[k];
            if (b == '"' || b == '\\')
                rc = mbuf_printf(out, "\\%c", b);
            else if (b < 0x20 || b >= 0x7F)
                rc = mbuf_printf(out, "\\x%c%c", hex[b >> 4], hex[b & 15]);
            else
                rc = mbuf_append_u8(out, b);
        }
        return rc ? rc : mbuf_append_u8(out, '"');
    default:
        if ((rc = mbuf_append_str(out, "x'"))) return rc;
        for (size_t k = 0; k < v->n && !rc; k++)
            rc = mbuf_printf(out, "%c%c", hex[v->p[k] >> 4], hex[v->p[k] & 15]);
        return rc ? rc : mbuf_append_u8(out, '\'');
    }
}

int mkey_format(const uint8_t *key, size_t len, mbuf *out)
{
    mkey_val vals[MKEY_MAX_COLS];
    mbuf scratch = MBUF_INIT;
    size_t n = 0, good = 0;
    int end = 0, rc = 0;
    if (!key) len = 0;
    int drc = decode(key, len, vals, MKEY_MAX_COLS, &n, &scratch, NULL, 1, &end, &good);
    if (!len) rc = mbuf_append_str(out, "/");
    for (size_t c = 0; c < n && !rc; c++) rc = fmt_val(out, &vals[c]);
    if (!rc && end) rc = mbuf_append_str(out, "/<end>");
    if (!rc && drc) {
        rc = mbuf_append_str(out, "/<corrupt:");
        for (size_t k = good; k < len && !rc; k++) rc = mbuf_printf(out, "%02x", key[k]);
        if (!rc) rc = mbuf_append_u8(out, '>');
        if (!rc) rc = MERR_CORRUPT;
    }
    mbuf_free(&scratch);
    return rc;
}
