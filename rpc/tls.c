/* TLS contexts and memory-BIO sessions for the rpc transport (see tls.h).
 * Runs on the loop thread of the connection that owns the session; OpenSSL's
 * error queue is per thread, so every call clears it first and reads its own
 * reason back. */
#include "rpc/tls.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls_ctx {
    SSL_CTX *ctx;
};

struct tls_sess {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
};

/* The most specific reason OpenSSL queued, cleared afterwards. */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long ec = ERR_peek_last_error();
    const char *r = ec ? ERR_reason_error_string(ec) : NULL;
    snprintf(buf, cap, "%s", r ? r : "unknown TLS error");
    ERR_clear_error();
    return buf;
}

static int file_fail(merr *e, const char *what, const char *path)
{
    char why[200];
    if (access(path, R_OK) != 0)
        return merr_set(e, MERR_NOTFOUND, "%s %s: cannot read the file (missing or no permission)",
                        what, path);
    return merr_set(e, MERR_INVALID, "%s %s: %s", what, path, ssl_reason(why, sizeof(why)));
}

int tls_ctx_new(const char *ca_file, const char *cert_file, const char *key_file, tls_ctx **out,
                merr *e)
{
    *out = NULL;
    /* A CA alone is a client that logs in with a password (SCRAM inside
     * TLS, docs/security.md): it verifies the server and shows no
     * certificate. Anything else half-given is a mistake. */
    int anon = ca_file && !cert_file && !key_file;
    if (!ca_file || (!anon && (!cert_file || !key_file)))
        return merr_set(e, MERR_INVALID, "TLS needs a CA, a certificate and a key");
    ERR_clear_error();
    tls_ctx *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    int rc = 0;
    c->ctx = SSL_CTX_new(TLS_method());
    if (!c->ctx) {
        rc = merr_set(e, MERR_NOMEM, "TLS: cannot create a context");
        goto err;
    }
    /* TLS 1.3 only: one round trip, no legacy cipher choices to get wrong. */
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION);
    /* AES-128-GCM first (as Go's crypto/tls): 128-bit security, and about a
     * third cheaper than AES-256 on the rpc hot path. */
    SSL_CTX_set_ciphersuites(c->ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                     "TLS_CHACHA20_POLY1305_SHA256");
    /* Connections are long-lived and never resumed: tickets are wasted bytes. */
    SSL_CTX_set_num_tickets(c->ctx, 0);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
        rc = file_fail(e, "CA certificate", ca_file);
        goto err;
    }
    if (anon) goto verify;
    if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_file) != 1) {
        rc = file_fail(e, "certificate", cert_file);
        goto err;
    }
    /* A private key others can read is as good as published: refuse it,
     * as ssh does, rather than run with it. */
    struct stat st;
    if (stat(key_file, &st) == 0 && (st.st_mode & 077)) {
        rc = merr_set(e, MERR_INVALID,
                      "key %s is accessible by group or others (mode %04o): chmod 600 it", key_file,
                      (unsigned)(st.st_mode & 07777));
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        unsigned long ec = ERR_peek_last_error();
        const char *r = ec ? ERR_reason_error_string(ec) : NULL;
        if (!r || !strstr(r, "mismatch")) {
            rc = file_fail(e, "key", key_file);
            goto err;
        }
    }
    if (ERR_peek_last_error() || SSL_CTX_check_private_key(c->ctx) != 1) {
        ERR_clear_error();
        rc = merr_set(e, MERR_INVALID, "key %s does not belong to certificate %s", key_file,
                      cert_file);
        goto err;
    }
verify:
    /* Both roles check the peer's certificate. A client may come without
     * one: it is then anonymous (conn_tls.c) and may only open SQL sessions,
     * which authenticate it with a password. */
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    *out = c;
    return 0;
err:
    tls_ctx_free(c);
    return rc;
}

void tls_ctx_free(tls_ctx *c)
{
    if (!c) return;
    SSL_CTX_free(c->ctx);
    free(c);
}

int tls_sess_new(tls_ctx *c, int server, tls_sess **out)
{
    *out = NULL;
    tls_sess *s = calloc(1, sizeof(*s));
    if (!s) return MERR_NOMEM;
    s->ssl = SSL_new(c->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return MERR_NOMEM;
    }
    /* An empty read BIO means "wait for the socket", not end of stream. */
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    if (server)
        SSL_set_accept_state(s->ssl);
    else
        SSL_set_connect_state(s->ssl);
    *out = s;
    return 0;
}

void tls_sess_free(tls_sess *s)
{
    if (!s) return;
    SSL_free(s->ssl); /* frees both BIOs */
    free(s);
}

int tls_sess_expect_addr(tls_sess *s, const char *addr)
{
    char ip[64];
    const char *start = addr, *end;
    if (addr[0] == '[') {
        start = addr + 1;
        end = strchr(start, ']');
    } else {
        end = strrchr(addr, ':');
    }
    if (!end || (size_t)(end - start) >= sizeof(ip)) return MERR_INVALID;
    memcpy(ip, start, (size_t)(end - start));
    ip[end - start] = 0;
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), ip) != 1) {
        ERR_clear_error();
        return MERR_INVALID;
    }
    return 0;
}

int tls_sess_feed(tls_sess *s, const void *p, size_t n)
{
    while (n) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        int w = BIO_write(s->rbio, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return MERR_NOMEM;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

/* What an operator should conclude from a verification error. */
static const char *verify_hint(long vr)
{
    switch (vr) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return " (not signed by this cluster's CA)";
    case X509_V_ERR_CERT_NOT_YET_VALID: return " (check the clocks)";
    case X509_V_ERR_INVALID_PURPOSE: return " (a client certificate cannot act as a node)";
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return " (the node certificate does not list the address dialed: recreate it with "
               "`meridian cert create-node` naming every address the node is reached at)";
    default: return "";
    }
}

/* Turns a failed SSL call into 0 (wait for bytes) or MERR_PROTOCOL with a
 * reason an operator can act on. */
static int sess_fail(tls_sess *s, int r, merr *e)
{
    int err = SSL_get_error(s->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return 0;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return merr_set(e, MERR_CLOSED, "TLS session closed by the peer");
    }
    char why[200];
    long vr = SSL_get_verify_result(s->ssl);
    if (vr != X509_V_OK) {
        ERR_clear_error();
        return merr_set(e, MERR_PROTOCOL, "TLS: peer certificate rejected: %s%s",
                        X509_verify_cert_error_string(vr), verify_hint(vr));
    }
    ssl_reason(why, sizeof(why));
    if (strstr(why, "alert")) {
        const char *hint = strstr(why, "unknown ca") ? ": our certificate is not signed by "
                                                       "the CA the peer trusts"
                           : strstr(why, "expired")  ? ": our certificate has expired"
                           : strstr(why, "required") ? ": we presented no certificate"
                           : strstr(why, "unsupported")
                               ? ": our certificate is not valid for this use"
                               : "";
        return merr_set(e, MERR_PROTOCOL, "TLS: the peer refused the handshake (%s)%s", why, hint);
    }
    return merr_set(e, MERR_PROTOCOL, "TLS handshake failed: %s", why);
}

int tls_sess_handshake(tls_sess *s, merr *e)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) return 1;
    return sess_fail(s, r, e);
}

int tls_sess_read(tls_sess *s, void *p, size_t cap, merr *e)
{
    ERR_clear_error();
    int r = SSL_read(s->ssl, p, cap > (1u << 30) ? (1 << 30) : (int)cap);
    if (r > 0) return r;
    return sess_fail(s, r, e);
}

int tls_sess_write(tls_sess *s, const void *p, size_t n, merr *e)
{
    ERR_clear_error();
    while (n) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        int w = SSL_write(s->ssl, p, chunk);
        if (w <= 0) {
            int rc = sess_fail(s, w, e);
            return rc ? rc : merr_set(e, MERR_INTERNAL, "TLS: write refused before handshake");
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

size_t tls_sess_pending(tls_sess *s)
{
    return BIO_ctrl_pending(s->wbio);
}

int tls_sess_drain(tls_sess *s, mbuf *out)
{
    size_t n;
    while ((n = BIO_ctrl_pending(s->wbio)) > 0) {
        if (n > INT_MAX) n = INT_MAX;
        if (mbuf_reserve(out, n)) return MERR_NOMEM;
        int r = BIO_read(s->wbio, out->data + out->len, (int)n);
        if (r <= 0) break;
        out->len += (size_t)r;
    }
    return 0;
}

int tls_sess_peer(tls_sess *s, char *user, size_t cap, int *is_node)
{
    *is_node = 0;
    user[0] = 0;
    X509 *cert = SSL_get0_peer_certificate(s->ssl);
    if (!cert) return MERR_NOTFOUND;
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, user, (int)cap);
    if (n <= 0) {
        user[0] = 0;
        return MERR_INVALID;
    }
    *is_node = strcmp(user, TLS_NODE_CN) == 0;
    return 0;
}

int tls_certs_paths(const char *dir, const char *who, char *ca, char *cert, char *key, merr *e)
{
    if (!dir || !*dir) return merr_set(e, MERR_INVALID, "no certs directory");
    int a = snprintf(ca, PATH_MAX, "%s/ca.crt", dir), b, c;
    if (who) {
        b = snprintf(cert, PATH_MAX, "%s/client.%s.crt", dir, who);
        c = snprintf(key, PATH_MAX, "%s/client.%s.key", dir, who);
    } else {
        b = snprintf(cert, PATH_MAX, "%s/node.crt", dir);
        c = snprintf(key, PATH_MAX, "%s/node.key", dir);
    }
    if (a >= PATH_MAX || b >= PATH_MAX || c >= PATH_MAX)
        return merr_set(e, MERR_TOOBIG, "certs directory path too long: %s", dir);
    return 0;
}
