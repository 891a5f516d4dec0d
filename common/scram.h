/* SCRAM-SHA-256 (RFC 5802, RFC 7677): password verifiers and both sides of
 * the exchange, with OpenSSL's PBKDF2, HMAC and SHA-256.
 *
 * A server stores only the verifier: salt, iteration count, StoredKey =
 * H(HMAC(SaltedPassword, "Client Key")) and ServerKey = HMAC(SaltedPassword,
 * "Server Key"). A stolen verifier does not give the password, and does not
 * let anyone log in (the proof needs ClientKey, which H() hides).
 *
 *   client-first  n,,n=USER,r=CNONCE
 *   server-first  r=CNONCE+SNONCE,s=SALT,i=ITER
 *   client-final  c=biws,r=CNONCE+SNONCE,p=PROOF      PROOF = ClientKey ^ HMAC(StoredKey,
 * AuthMessage) server-final  v=HMAC(ServerKey, AuthMessage)      (or e=... on failure)
 *
 * Pure: nonces and salts come from the caller (RAND_bytes in production, the
 * RFC's vector in tests). No channel binding ("n,,"): the exchange runs
 * inside TLS whose server certificate the client has verified already. */
#ifndef MERIDIAN_COMMON_SCRAM_H
#define MERIDIAN_COMMON_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#define SCRAM_ITER_DEFAULT 4096 /* RFC 7677's minimum */
#define SCRAM_SALT_LEN     16
#define SCRAM_KEY_LEN      32
#define SCRAM_MSG_MAX      512
#define SCRAM_NONCE_MAX    128
#define SCRAM_VERIFIER_MAX 192

typedef struct scram_verifier {
    uint8_t salt[64];
    size_t salt_len;
    uint32_t iter;
    uint8_t stored_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN];
} scram_verifier;

/* Derives a verifier from a password. 0 or MERR_INVALID (iter < 4096, bad salt). */
int scram_verifier_make(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iter,
                        scram_verifier *v);
/* Text form, PostgreSQL's: SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY (base64). */
int scram_verifier_encode(const scram_verifier *v, char *out, size_t cap);
int scram_verifier_decode(const char *s, scram_verifier *v);

/* Base64 of n random-looking bytes given by the caller, as a nonce. */
int scram_nonce_from(const uint8_t *bytes, size_t n, char *out, size_t cap);

/* ---- client ---- */
typedef struct scram_client {
    char password[256];
    char cnonce[SCRAM_NONCE_MAX];
    char first_bare[SCRAM_MSG_MAX];
    uint8_t server_sig[SCRAM_KEY_LEN];
} scram_client;

/* User names with ',' or '=' are refused (MERR_INVALID): SQL names never
 * need them and the RFC's escaping would be one more parser to get wrong. */
int scram_client_first(scram_client *c, const char *user, const char *password, const char *cnonce,
                       char *out, size_t cap);
/* Parses server-first, checks that its nonce extends ours, answers. */
int scram_client_final(scram_client *c, const char *server_first, char *out, size_t cap);
/* 0 when server-final proves the server knows the verifier. */
int scram_client_check(const scram_client *c, const char *server_final);
void scram_client_wipe(scram_client *c);

/* ---- server ---- */
typedef struct scram_server {
    scram_verifier v;
    char nonce[2 * SCRAM_NONCE_MAX];
    char auth_prefix[2 * SCRAM_MSG_MAX]; /* client-first-bare "," server-first */
} scram_server;

/* The user named by a client-first message (and its basic shape). */
int scram_parse_user(const char *client_first, char *user, size_t cap);
/* Starts the server side with the user's verifier (a decoy for unknown
 * users, so that the exchange looks the same either way). */
int scram_server_first(scram_server *s, const char *client_first, const scram_verifier *v,
                       const char *snonce, char *out, size_t cap);
/* 0 and server-final in out when the proof is right (constant-time
 * compare); MERR_INVALID otherwise. */
int scram_server_final(scram_server *s, const char *client_final, char *out, size_t cap);

#endif
