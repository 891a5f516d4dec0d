/* Certificate creation and inspection (see tls_cert.h). */
#include "rpc/tls_cert.h"
#include "rpc/tls.h"
#include "common/fsutil.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static int ssl_err(merr *e, const char *what)
{
    unsigned long ec = ERR_peek_last_error();
    const char *r = ec ? ERR_reason_error_string(ec) : NULL;
    ERR_clear_error();
    return merr_set(e, MERR_INTERNAL, "%s: %s", what, r ? r : "OpenSSL error");
}

int tls_cert_valid_user(const char *user, merr *e)
{
    size_t n = user ? strlen(user) : 0;
    if (n == 0 || n >= TLS_USER_MAX)
        return merr_set(e, MERR_INVALID, "user name must be 1-63 characters");
    for (size_t i = 0; i < n; i++) {
        char c = user[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              (c == '.' && i > 0)))
            return merr_set(e, MERR_INVALID, "user name '%s': use a-z, 0-9, _, - and .", user);
    }
    if (!strcmp(user, TLS_NODE_CN))
        return merr_set(e, MERR_INVALID, "'%s' is reserved for node certificates", user);
    return 0;
}

/* Refuses to replace an existing file unless asked: a CA key overwritten by
 * mistake orphans every certificate it signed. */
static int check_absent(const char *path, int overwrite, merr *e)
{
    if (!overwrite && mfs_exists(path))
        return merr_set(e, MERR_EXISTS, "%s already exists (use --overwrite to replace it)", path);
    return 0;
}

static int write_pem(const char *path, int is_key, void *obj, merr *e)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return merr_set(e, MERR_NOMEM, "out of memory");
    int ok = is_key ? PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL)
                    : PEM_write_bio_X509(b, obj);
    int rc = 0;
    if (!ok) {
        rc = ssl_err(e, "encode PEM");
    } else {
        char *data;
        long len = BIO_get_mem_data(b, &data);
        rc = mfs_write_atomic_mode(path, data, (size_t)len, is_key ? 0600 : 0644, e);
    }
    BIO_free(b);
    return rc;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, merr *e)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    if (!ext) return ssl_err(e, "certificate extension");
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : ssl_err(e, "add extension");
}

/* The fields every certificate shares: version 3, a random 127-bit serial,
 * validity, subject, public key. */
static X509 *cert_base(const char *cn, EVP_PKEY *key, const tls_cert_opts *o, merr *e)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    X509_NAME *name = X509_NAME_new();
    if (!x || !bn || !name) goto err;
    if (!X509_set_version(x, 2) || !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        goto err;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), (long)o->not_before) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)o->not_after))
        goto err;
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Meridian", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_subject_name(x, name) || !X509_set_pubkey(x, key))
        goto err;
    BN_free(bn);
    X509_NAME_free(name);
    return x;
err:
    ssl_err(e, "build certificate");
    BN_free(bn);
    X509_NAME_free(name);
    X509_free(x);
    return NULL;
}

int tls_cert_create_ca(const char *cert_path, const char *key_path, const tls_cert_opts *o, merr *e)
{
    int rc;
    if ((rc = check_absent(cert_path, o->overwrite, e)) ||
        (rc = check_absent(key_path, o->overwrite, e)))
        return rc;
    ERR_clear_error();
    X509 *x = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) return ssl_err(e, "generate key");
    /* A unique name per CA: verifiers look issuers up by name, and two CAs
     * called alike would turn "wrong CA" into a confusing signature error. */
    unsigned char rnd[6];
    char cn[64];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        rc = ssl_err(e, "random");
        goto out;
    }
    snprintf(cn, sizeof(cn), "Meridian CA %02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5]);
    if (!(x = cert_base(cn, key, o, e))) {
        rc = e->code;
        goto out;
    }
    if (!X509_set_issuer_name(x, X509_get_subject_name(x))) {
        rc = ssl_err(e, "build certificate");
        goto out;
    }
    if ((rc = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", e)) ||
        (rc = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign", e)) ||
        (rc = add_ext(x, x, NID_subject_key_identifier, "hash", e)))
        goto out;
    if (!X509_sign(x, key, EVP_sha256())) {
        rc = ssl_err(e, "sign certificate");
        goto out;
    }
    /* Key first: a certificate without its key is useless, the reverse is not. */
    if ((rc = write_pem(key_path, 1, key, e)) || (rc = write_pem(cert_path, 0, x, e))) goto out;
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static int load_ca(const char *ca_cert, const char *ca_key, X509 **x, EVP_PKEY **k, merr *e)
{
    FILE *f = fopen(ca_cert, "r");
    if (!f) return merr_set(e, MERR_NOTFOUND, "cannot read CA certificate %s", ca_cert);
    *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!*x) return ssl_err(e, "read CA certificate");
    f = fopen(ca_key, "r");
    if (!f) return merr_set(e, MERR_NOTFOUND, "cannot read CA key %s", ca_key);
    *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!*k) return ssl_err(e, "read CA key");
    if (X509_check_private_key(*x, *k) != 1) {
        ERR_clear_error();
        return merr_set(e, MERR_INVALID, "CA key %s does not belong to %s", ca_key, ca_cert);
    }
    return 0;
}

/* "DNS:a,IP:1.2.3.4": hosts are checked so none can smuggle in another entry. */
static int san_list(const char *const *hosts, int n, mbuf *out, merr *e)
{
    for (int i = 0; i < n; i++) {
        const char *h = hosts[i];
        unsigned char tmp[16];
        int ip = inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
        if (!ip) {
            size_t len = strlen(h);
            if (!len || len > 253) return merr_set(e, MERR_INVALID, "bad host name '%s'", h);
            for (size_t j = 0; j < len; j++) {
                char c = h[j];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || (c == '*' && j == 0)))
                    return merr_set(e, MERR_INVALID, "bad host name '%s'", h);
            }
        }
        if (mbuf_printf(out, "%s%s:%s", i ? "," : "", ip ? "IP" : "DNS", h))
            return merr_set(e, MERR_NOMEM, "out of memory");
    }
    return mbuf_append_u8(out, 0) ? merr_set(e, MERR_NOMEM, "out of memory") : 0;
}

int tls_cert_create(const char *ca_cert, const char *ca_key, const char *cn,
                    const char *const *hosts, int nhosts, int is_node, const char *cert_path,
                    const char *key_path, const tls_cert_opts *o, merr *e)
{
    int rc;
    if ((rc = check_absent(cert_path, o->overwrite, e)) ||
        (rc = check_absent(key_path, o->overwrite, e)))
        return rc;
    ERR_clear_error();
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *cakey = NULL, *key = NULL;
    mbuf sans = MBUF_INIT;
    if ((rc = load_ca(ca_cert, ca_key, &ca, &cakey, e))) goto out;
    if (nhosts > 0 && (rc = san_list(hosts, nhosts, &sans, e))) goto out;
    if (!(key = EVP_EC_gen("P-256"))) {
        rc = ssl_err(e, "generate key");
        goto out;
    }
    if (!(x = cert_base(cn, key, o, e))) {
        rc = e->code;
        goto out;
    }
    if (!X509_set_issuer_name(x, X509_get_subject_name(ca))) {
        rc = ssl_err(e, "build certificate");
        goto out;
    }
    if ((rc = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE", e)) ||
        (rc = add_ext(x, ca, NID_key_usage, "critical,digitalSignature", e)) ||
        (rc = add_ext(x, ca, NID_ext_key_usage, is_node ? "serverAuth,clientAuth" : "clientAuth",
                      e)) ||
        (rc = add_ext(x, ca, NID_authority_key_identifier, "keyid", e)))
        goto out;
    if (nhosts > 0 && (rc = add_ext(x, ca, NID_subject_alt_name, (char *)sans.data, e))) goto out;
    if (!X509_sign(x, cakey, EVP_sha256())) {
        rc = ssl_err(e, "sign certificate");
        goto out;
    }
    if ((rc = write_pem(key_path, 1, key, e)) || (rc = write_pem(cert_path, 0, x, e))) goto out;
out:
    mbuf_free(&sans);
    X509_free(ca);
    X509_free(x);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    return rc;
}

static void fmt_time(const ASN1_TIME *t, char *buf, size_t cap)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(buf, cap, "%Y-%m-%d %H:%M UTC", &tm);
    else
        snprintf(buf, cap, "?");
}

int tls_cert_describe(const char *path, mbuf *out, merr *e)
{
    FILE *f = fopen(path, "r");
    if (!f) return merr_set(e, MERR_NOTFOUND, "cannot read %s", path);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x) return ssl_err(e, path);
    char cn[256] = "", until[64];
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    fmt_time(X509_get0_notAfter(x), until, sizeof(until));
    int expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
    const char *kind = X509_check_ca(x) ? "ca" : !strcmp(cn, TLS_NODE_CN) ? "node" : "client";
    int rc = mbuf_printf(out, "%-6s cn=%s %s %s", kind, cn, expired ? "EXPIRED" : "expires", until);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char ip[64];
        if (g->type == GEN_DNS) {
            rc |=
                mbuf_printf(out, "%s%s",
                            i ? "," : " hosts=", (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip))) snprintf(ip, 3, "?");
            rc |= mbuf_printf(out, "%s%s", i ? "," : " hosts=", ip);
        }
    }
    GENERAL_NAMES_free(gens);
    X509_free(x);
    rc |= mbuf_printf(out, "\n");
    return rc ? merr_set(e, MERR_NOMEM, "out of memory") : 0;
}
