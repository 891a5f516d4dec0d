/* Certificates for a Meridian cluster, made with OpenSSL's C API (no shelling
 * out to the openssl tool): the cluster CA, node certificates (CN "node",
 * SANs for every host, usable as TLS server and client) and client
 * certificates (CN = user name, client use only). `meridian cert` is the
 * command-line face; tests use it to mint wrong-CA and expired certificates.
 *
 * Keys are ECDSA P-256: small, fast to sign and verify, and accepted by
 * every TLS stack a driver might use (Ed25519 certificates are still
 * refused by some client libraries). Keys are written 0600, certificates
 * 0644, each atomically; an existing file is never replaced unless
 * overwrite is set. */
#ifndef MERIDIAN_RPC_TLS_CERT_H
#define MERIDIAN_RPC_TLS_CERT_H

#include "common/buf.h"
#include "common/err.h"

#include <stdint.h>

#define TLS_CERT_DAY  (24LL * 3600)
#define TLS_CERT_YEAR (365LL * TLS_CERT_DAY)

typedef struct tls_cert_opts {
    /* Validity as offsets from now, seconds: [not_before, not_after].
     * not_before is usually -1h (tolerates clock skew); tests put both in
     * the past to make an expired certificate. */
    int64_t not_before, not_after;
    int overwrite;
} tls_cert_opts;

/* A new CA: self-signed certificate + key. */
int tls_cert_create_ca(const char *cert_path, const char *key_path, const tls_cert_opts *o,
                       merr *e);
/* A certificate for cn signed by the CA. hosts (DNS names or IP addresses)
 * become SANs; is_node: usable as server and client, otherwise client only. */
int tls_cert_create(const char *ca_cert, const char *ca_key, const char *cn,
                    const char *const *hosts, int nhosts, int is_node, const char *cert_path,
                    const char *key_path, const tls_cert_opts *o, merr *e);
/* One line describing the certificate at path: kind, CN, expiry, SANs. */
int tls_cert_describe(const char *path, mbuf *out, merr *e);
/* A user name usable as a CN and in a file name: [a-z0-9_.-], 1..63 chars,
 * and not "node". */
int tls_cert_valid_user(const char *user, merr *e);

#endif
