/* SCRAM-SHA-256 (scram.h): RFC 5802 with SHA-256 (RFC 7677). */
#include "common/scram.h"

#include "common/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int b64_enc(const uint8_t *p, size_t n, char *out, size_t cap)
{
    if (4 * ((n + 2) / 3) + 1 > cap) return MERR_TOOBIG;
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return 0;
}

/* Strict base64 of exactly n decoded bytes at most cap; *outn gets the size. */
static int b64_dec(const char *s, size_t len, uint8_t *out, size_t cap, size_t *outn)
{
    if (len == 0 || len % 4) return MERR_INVALID;
    size_t pad = (s[len - 1] == '=') + (len > 1 && s[len - 2] == '=');
    size_t n = len / 4 * 3 - pad;
    uint8_t tmp[512];
    if (len / 4 * 3 > sizeof(tmp) || n > cap) return MERR_INVALID;
    if (EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len) < 0) return MERR_INVALID;
    memcpy(out, tmp, n);
    *outn = n;
    return 0;
}

static void hmac(const uint8_t *key, size_t klen, const void *msg, size_t mlen, uint8_t *out)
{
    unsigned int olen = SCRAM_KEY_LEN;
    HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen);
}

/* SaltedPassword, ClientKey, StoredKey, ServerKey. */
static int derive(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iter,
                  uint8_t client_key[SCRAM_KEY_LEN], scram_verifier *v)
{
    uint8_t salted[SCRAM_KEY_LEN];
    if (iter < SCRAM_ITER_DEFAULT || !salt_len || salt_len > sizeof(v->salt)) return MERR_INVALID;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
                          EVP_sha256(), SCRAM_KEY_LEN, salted) != 1)
        return MERR_INTERNAL;
    hmac(salted, sizeof(salted), "Client Key", 10, client_key);
    SHA256(client_key, SCRAM_KEY_LEN, v->stored_key);
    hmac(salted, sizeof(salted), "Server Key", 10, v->server_key);
    memcpy(v->salt, salt, salt_len);
    v->salt_len = salt_len;
    v->iter = iter;
    OPENSSL_cleanse(salted, sizeof(salted));
    return 0;
}

int scram_verifier_make(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iter,
                        scram_verifier *v)
{
    uint8_t ck[SCRAM_KEY_LEN];
    memset(v, 0, sizeof(*v));
    int rc = derive(password, salt, salt_len, iter, ck, v);
    OPENSSL_cleanse(ck, sizeof(ck));
    return rc;
}

int scram_verifier_encode(const scram_verifier *v, char *out, size_t cap)
{
    char salt[128], sk[64], srv[64];
    if (b64_enc(v->salt, v->salt_len, salt, sizeof(salt)) ||
        b64_enc(v->stored_key, SCRAM_KEY_LEN, sk, sizeof(sk)) ||
        b64_enc(v->server_key, SCRAM_KEY_LEN, srv, sizeof(srv)))
        return MERR_TOOBIG;
    int n = snprintf(out, cap, "SCRAM-SHA-256$%u:%s$%s:%s", v->iter, salt, sk, srv);
    return n < 0 || (size_t)n >= cap ? MERR_TOOBIG : 0;
}

int scram_verifier_decode(const char *s, scram_verifier *v)
{
    memset(v, 0, sizeof(*v));
    const char *p = s, *c1, *d2, *c2;
    size_t n;
    if (strncmp(p, "SCRAM-SHA-256$", 14)) return MERR_INVALID;
    p += 14;
    char *end;
    unsigned long it = strtoul(p, &end, 10);
    if (end == p || *end != ':' || it < SCRAM_ITER_DEFAULT || it > 10000000) return MERR_INVALID;
    v->iter = (uint32_t)it;
    c1 = end + 1;
    if (!(d2 = strchr(c1, '$')) || !(c2 = strchr(d2 + 1, ':'))) return MERR_INVALID;
    if (b64_dec(c1, (size_t)(d2 - c1), v->salt, sizeof(v->salt), &v->salt_len) ||
        b64_dec(d2 + 1, (size_t)(c2 - d2 - 1), v->stored_key, SCRAM_KEY_LEN, &n) ||
        n != SCRAM_KEY_LEN || b64_dec(c2 + 1, strlen(c2 + 1), v->server_key, SCRAM_KEY_LEN, &n) ||
        n != SCRAM_KEY_LEN)
        return MERR_INVALID;
    return 0;
}

int scram_nonce_from(const uint8_t *bytes, size_t n, char *out, size_t cap)
{
    return b64_enc(bytes, n, out, cap);
}

/* Printable ASCII without ','; RFC 5802's nonce alphabet. */
static int nonce_ok(const char *s, size_t n)
{
    if (!n || n >= SCRAM_NONCE_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',') return 0;
    return 1;
}

/* Finds attribute `a=` at the start of s or after a ','; value in [*v, *v+*n). */
static int attr(const char *s, char a, const char **v, size_t *n)
{
    for (const char *p = s; p && *p;) {
        if (p[0] == a && p[1] == '=') {
            *v = p + 2;
            const char *e = strchr(*v, ',');
            *n = e ? (size_t)(e - *v) : strlen(*v);
            return 0;
        }
        p = strchr(p, ',');
        if (p) p++;
    }
    return MERR_INVALID;
}

int scram_client_first(scram_client *c, const char *user, const char *password, const char *cnonce,
                       char *out, size_t cap)
{
    memset(c, 0, sizeof(*c));
    if (!*user || strpbrk(user, ",=") || !nonce_ok(cnonce, strlen(cnonce)) ||
        strlen(password) >= sizeof(c->password))
        return MERR_INVALID;
    snprintf(c->password, sizeof(c->password), "%s", password);
    snprintf(c->cnonce, sizeof(c->cnonce), "%s", cnonce);
    int n = snprintf(c->first_bare, sizeof(c->first_bare), "n=%s,r=%s", user, cnonce);
    if (n < 0 || (size_t)n >= sizeof(c->first_bare)) return MERR_TOOBIG;
    n = snprintf(out, cap, "n,,%s", c->first_bare);
    return n < 0 || (size_t)n >= cap ? MERR_TOOBIG : 0;
}

static void xor_into(uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < SCRAM_KEY_LEN; i++) a[i] ^= b[i];
}

int scram_client_final(scram_client *c, const char *server_first, char *out, size_t cap)
{
    const char *r, *s, *i;
    size_t rn, sn, in;
    uint8_t salt[64], ck[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
    size_t salt_len;
    scram_verifier v;
    char num[16], without[2 * SCRAM_NONCE_MAX + 16], am[3 * SCRAM_MSG_MAX], proof[64];
    if (strlen(server_first) >= SCRAM_MSG_MAX || attr(server_first, 'r', &r, &rn) ||
        attr(server_first, 's', &s, &sn) || attr(server_first, 'i', &i, &in) || in >= sizeof(num))
        return MERR_PROTOCOL;
    size_t cl = strlen(c->cnonce);
    /* The server's nonce must extend ours: a replayed server-first fails. */
    if (rn <= cl || memcmp(r, c->cnonce, cl) || !nonce_ok(r, rn)) return MERR_PROTOCOL;
    memcpy(num, i, in);
    num[in] = 0;
    char *end;
    unsigned long iter = strtoul(num, &end, 10);
    if (*end || iter < SCRAM_ITER_DEFAULT || iter > 10000000) return MERR_PROTOCOL;
    if (b64_dec(s, sn, salt, sizeof(salt), &salt_len)) return MERR_PROTOCOL;
    if (derive(c->password, salt, salt_len, (uint32_t)iter, ck, &v)) return MERR_PROTOCOL;
    snprintf(without, sizeof(without), "c=biws,r=%.*s", (int)rn, r);
    int n = snprintf(am, sizeof(am), "%s,%s,%s", c->first_bare, server_first, without);
    if (n < 0 || (size_t)n >= sizeof(am)) return MERR_TOOBIG;
    hmac(v.stored_key, SCRAM_KEY_LEN, am, (size_t)n, sig);
    xor_into(ck, sig); /* ClientProof */
    b64_enc(ck, SCRAM_KEY_LEN, proof, sizeof(proof));
    hmac(v.server_key, SCRAM_KEY_LEN, am, (size_t)n, c->server_sig);
    OPENSSL_cleanse(ck, sizeof(ck));
    OPENSSL_cleanse(&v, sizeof(v));
    n = snprintf(out, cap, "%s,p=%s", without, proof);
    return n < 0 || (size_t)n >= cap ? MERR_TOOBIG : 0;
}

int scram_client_check(const scram_client *c, const char *server_final)
{
    const char *v;
    size_t vn, n;
    uint8_t sig[SCRAM_KEY_LEN];
    if (attr(server_final, 'v', &v, &vn) || b64_dec(v, vn, sig, sizeof(sig), &n) ||
        n != SCRAM_KEY_LEN)
        return MERR_PROTOCOL;
    return CRYPTO_memcmp(sig, c->server_sig, SCRAM_KEY_LEN) ? MERR_PROTOCOL : 0;
}

void scram_client_wipe(scram_client *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

int scram_parse_user(const char *client_first, char *user, size_t cap)
{
    const char *u, *r;
    size_t un, rn;
    /* gs2 header: "n,," only (no channel binding, no authzid). */
    if (strncmp(client_first, "n,,", 3) || strlen(client_first) >= SCRAM_MSG_MAX)
        return MERR_INVALID;
    const char *bare = client_first + 3;
    if (strncmp(bare, "n=", 2) || attr(bare, 'n', &u, &un) || attr(bare, 'r', &r, &rn) || !un ||
        un >= cap || !nonce_ok(r, rn))
        return MERR_INVALID;
    memcpy(user, u, un);
    user[un] = 0;
    return strpbrk(user, "=") ? MERR_INVALID : 0;
}

int scram_server_first(scram_server *s, const char *client_first, const scram_verifier *v,
                       const char *snonce, char *out, size_t cap)
{
    char user[128], salt[128], cf[SCRAM_MSG_MAX];
    const char *r;
    size_t rn;
    memset(s, 0, sizeof(*s));
    if (scram_parse_user(client_first, user, sizeof(user)) || !nonce_ok(snonce, strlen(snonce)))
        return MERR_INVALID;
    snprintf(cf, sizeof(cf), "%s", client_first); /* out may be client_first */
    const char *bare = cf + 3;
    attr(bare, 'r', &r, &rn);
    s->v = *v;
    snprintf(s->nonce, sizeof(s->nonce), "%.*s%s", (int)rn, r, snonce);
    if (b64_enc(v->salt, v->salt_len, salt, sizeof(salt))) return MERR_INVALID;
    int n = snprintf(out, cap, "r=%s,s=%s,i=%u", s->nonce, salt, v->iter);
    if (n < 0 || (size_t)n >= cap) return MERR_TOOBIG;
    n = snprintf(s->auth_prefix, sizeof(s->auth_prefix), "%s,%s", bare, out);
    return n < 0 || (size_t)n >= sizeof(s->auth_prefix) ? MERR_TOOBIG : 0;
}

int scram_server_final(scram_server *s, const char *client_final, char *out, size_t cap)
{
    const char *c, *r, *p;
    size_t cn, rn, pn, n;
    uint8_t proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
    char am[3 * SCRAM_MSG_MAX], ssig[64];
    if (!s->nonce[0] || strlen(client_final) >= SCRAM_MSG_MAX || attr(client_final, 'c', &c, &cn) ||
        cn != 4 || memcmp(c, "biws", 4) || attr(client_final, 'r', &r, &rn) ||
        rn != strlen(s->nonce) || memcmp(r, s->nonce, rn) || attr(client_final, 'p', &p, &pn) ||
        b64_dec(p, pn, proof, sizeof(proof), &n) || n != SCRAM_KEY_LEN)
        return MERR_INVALID;
    /* The proof covers client-final without its ",p=..." (always last). */
    const char *pp = strstr(client_final, ",p=");
    if (!pp || pp + 3 != p) return MERR_INVALID;
    int m =
        snprintf(am, sizeof(am), "%s,%.*s", s->auth_prefix, (int)(pp - client_final), client_final);
    if (m < 0 || (size_t)m >= sizeof(am)) return MERR_INVALID;
    hmac(s->v.stored_key, SCRAM_KEY_LEN, am, (size_t)m, sig);
    memcpy(key, proof, sizeof(key));
    xor_into(key, sig); /* the ClientKey, if the proof is right */
    SHA256(key, SCRAM_KEY_LEN, stored);
    OPENSSL_cleanse(key, sizeof(key));
    if (CRYPTO_memcmp(stored, s->v.stored_key, SCRAM_KEY_LEN)) return MERR_INVALID;
    hmac(s->v.server_key, SCRAM_KEY_LEN, am, (size_t)m, sig);
    if (b64_enc(sig, SCRAM_KEY_LEN, ssig, sizeof(ssig))) return MERR_INTERNAL;
    int k = snprintf(out, cap, "v=%s", ssig);
    return k < 0 || (size_t)k >= cap ? MERR_TOOBIG : 0;
}
