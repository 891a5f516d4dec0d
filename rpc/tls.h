/* TLS for the rpc transport: a TLS 1.3 context built from the cluster CA and
 * this process's certificate, and per-connection sessions that run over
 * memory BIOs, so the libuv loop owns every socket read and write and TLS
 * never blocks it (docs/security.md).
 *
 * Data flow of one session:
 *   socket bytes --tls_sess_feed--> read BIO --SSL--> tls_sess_read --> frame decoder
 *   frames --tls_sess_write--> SSL --> write BIO --tls_sess_drain--> socket write
 *
 * Both ends verify each other (mutual TLS) against the one CA: a peer without
 * a certificate, with a certificate of another CA, or an expired one fails
 * the handshake on the side that checks it, and the other side reads the
 * alert. The certificate's common name is the identity: "node" for nodes,
 * the user name for clients (tls_cert.h makes both).
 *
 * OpenSSL is used, not written: "a well-kept library that beats writing it". */
#ifndef MERIDIAN_RPC_TLS_H
#define MERIDIAN_RPC_TLS_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>

/* The common name every node certificate carries. */
#define TLS_NODE_CN  "node"
#define TLS_USER_MAX 64

typedef struct tls_ctx tls_ctx;
typedef struct tls_sess tls_sess;

/* Loads the CA (trust anchor), the certificate and its key. Fails with a
 * message naming the file and the reason (missing, unreadable, key does not
 * match the certificate). */
int tls_ctx_new(const char *ca_file, const char *cert_file, const char *key_file, tls_ctx **out,
                merr *e);
void tls_ctx_free(tls_ctx *c);

/* A session for one connection; server = 1 on the accepting side. */
int tls_sess_new(tls_ctx *c, int server, tls_sess **out);
void tls_sess_free(tls_sess *s);

/* Dialer: the peer's certificate must list this address ("1.2.3.4:port",
 * "[::1]:port"; the port is ignored) as an IP SAN, as TLS clients check host
 * names, so a node key is only good at the addresses it was issued for. */
int tls_sess_expect_addr(tls_sess *s, const char *addr);

/* Hands ciphertext read from the socket to the session. */
int tls_sess_feed(tls_sess *s, const void *p, size_t n);
/* Advances the handshake: 1 done, 0 needs more bytes from the peer, or a
 * negative MERR_PROTOCOL with the reason in e (our verification of the peer
 * failed, or the peer's alert: it refused our certificate). */
int tls_sess_handshake(tls_sess *s, merr *e);
/* Decrypts into p: bytes read (> 0), 0 when nothing is buffered, MERR_CLOSED
 * when the peer closed the TLS session cleanly, or MERR_PROTOCOL (reason in
 * e). Only after the handshake completed. */
int tls_sess_read(tls_sess *s, void *p, size_t cap, merr *e);
/* Encrypts all of p into the write BIO (memory BIOs never refuse a write). */
int tls_sess_write(tls_sess *s, const void *p, size_t n, merr *e);
/* Moves every ciphertext byte waiting for the socket to the end of out. */
int tls_sess_drain(tls_sess *s, mbuf *out);
size_t tls_sess_pending(tls_sess *s);

/* The verified peer's identity (after the handshake): its common name in
 * user, and whether it is a node certificate. */
int tls_sess_peer(tls_sess *s, char *user, size_t cap, int *is_node);

/* The conventional file names inside a certs directory (docs/security.md):
 * ca.crt, node.crt/node.key, client.USER.crt/client.USER.key. who = NULL for
 * the node's own pair. Each buffer holds PATH_MAX. */
int tls_certs_paths(const char *dir, const char *who, char *ca, char *cert, char *key, merr *e);

#endif
