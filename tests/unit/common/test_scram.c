/* SCRAM-SHA-256: RFC 7677's example exchange byte for byte, verifiers,
 * wrong passwords, tampered and malformed messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/scram.h"

/* RFC 7677 section 3. */
#define CNONCE "rOprNGfwEbeRWgbNEkqO"
#define SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define CFIRST "n,,n=user,r=" CNONCE
#define SFIRST "r=" CNONCE SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define CFINAL "c=biws,r=" CNONCE SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static const uint8_t rfc_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};

static void test_rfc7677_exchange(void **state)
{
    (void)state;
    scram_client c;
    scram_server s;
    scram_verifier v;
    char out[SCRAM_MSG_MAX], user[64];
    assert_int_equal(scram_verifier_make("pencil", rfc_salt, 16, 4096, &v), 0);
    assert_int_equal(scram_client_first(&c, "user", "pencil", CNONCE, out, sizeof(out)), 0);
    assert_string_equal(out, CFIRST);
    assert_int_equal(scram_parse_user(out, user, sizeof(user)), 0);
    assert_string_equal(user, "user");
    assert_int_equal(scram_server_first(&s, out, &v, SNONCE, out, sizeof(out)), 0);
    assert_string_equal(out, SFIRST);
    assert_int_equal(scram_client_final(&c, out, out, sizeof(out)), 0);
    assert_string_equal(out, CFINAL);
    assert_int_equal(scram_server_final(&s, out, out, sizeof(out)), 0);
    assert_string_equal(out, SFINAL);
    assert_int_equal(scram_client_check(&c, out), 0);
    /* A server-final from someone without the verifier is refused. */
    assert_int_not_equal(scram_client_check(&c, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                         0);
    scram_client_wipe(&c);
}

static void test_verifier_roundtrip(void **state)
{
    (void)state;
    scram_verifier v, w;
    char text[SCRAM_VERIFIER_MAX];
    assert_int_equal(scram_verifier_make("pencil", rfc_salt, 16, 4096, &v), 0);
    assert_int_equal(scram_verifier_encode(&v, text, sizeof(text)), 0);
    assert_non_null(strstr(text, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
    assert_null(strstr(text, "pencil"));
    assert_int_equal(scram_verifier_decode(text, &w), 0);
    assert_memory_equal(&v, &w, sizeof(v));
    /* Too few iterations, bad base64, missing parts. */
    assert_int_equal(scram_verifier_make("p", rfc_salt, 16, 1000, &v), MERR_INVALID);
    assert_int_not_equal(scram_verifier_decode("SCRAM-SHA-256$1000:AAAA$AAAA:AAAA", &w), 0);
    assert_int_not_equal(scram_verifier_decode("SCRAM-SHA-256$4096:A!!A$", &w), 0);
    assert_int_not_equal(scram_verifier_decode("md5abc", &w), 0);
}

static void run_with(const char *stored_pw, const char *given_pw, int expect_ok)
{
    scram_client c;
    scram_server s;
    scram_verifier v;
    char a[SCRAM_MSG_MAX], b[SCRAM_MSG_MAX];
    assert_int_equal(scram_verifier_make(stored_pw, rfc_salt, 16, 4096, &v), 0);
    assert_int_equal(scram_client_first(&c, "alice", given_pw, "abcdefgh", a, sizeof(a)), 0);
    assert_int_equal(scram_server_first(&s, a, &v, "XYZ123", b, sizeof(b)), 0);
    assert_int_equal(scram_client_final(&c, b, a, sizeof(a)), 0);
    int rc = scram_server_final(&s, a, b, sizeof(b));
    assert_int_equal(rc == 0, expect_ok);
}

static void test_wrong_password(void **state)
{
    (void)state;
    run_with("secret", "secret", 1);
    run_with("secret", "Secret", 0);
    run_with("secret", "", 0);
}

static void test_tampering(void **state)
{
    (void)state;
    scram_client c;
    scram_server s;
    scram_verifier v;
    char a[SCRAM_MSG_MAX], b[SCRAM_MSG_MAX], t[SCRAM_MSG_MAX];
    assert_int_equal(scram_verifier_make("pencil", rfc_salt, 16, 4096, &v), 0);
    assert_int_equal(scram_client_first(&c, "user", "pencil", CNONCE, a, sizeof(a)), 0);
    /* A server-first whose nonce does not extend the client's. */
    assert_int_not_equal(
        scram_client_final(&c, "r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", t, sizeof(t)), 0);
    assert_int_not_equal(scram_client_final(&c, "r=" CNONCE "x,s=W22Z,i=10", t, sizeof(t)), 0);
    assert_int_equal(scram_server_first(&s, a, &v, SNONCE, b, sizeof(b)), 0);
    assert_int_equal(scram_client_final(&c, b, a, sizeof(a)), 0);
    /* Another nonce, a flipped proof byte, no proof at all. */
    snprintf(t, sizeof(t), "%s", a);
    t[12] ^= 1;
    assert_int_not_equal(scram_server_final(&s, t, b, sizeof(b)), 0);
    snprintf(t, sizeof(t), "%s", a);
    char *p = strstr(t, ",p=") + 3;
    p[0] = p[0] == 'A' ? 'B' : 'A';
    assert_int_not_equal(scram_server_final(&s, t, b, sizeof(b)), 0);
    assert_int_not_equal(scram_server_final(&s, "c=biws,r=x", b, sizeof(b)), 0);
    assert_int_equal(scram_server_final(&s, a, b, sizeof(b)), 0);
}

static void test_malformed_first(void **state)
{
    (void)state;
    char user[64];
    scram_client c;
    char out[SCRAM_MSG_MAX];
    assert_int_not_equal(scram_parse_user("y,,n=user,r=abc", user, sizeof(user)), 0);
    assert_int_not_equal(scram_parse_user("n,,r=abc", user, sizeof(user)), 0);
    assert_int_not_equal(scram_parse_user("n,,n=,r=abc", user, sizeof(user)), 0);
    assert_int_not_equal(scram_parse_user("n,,n=user", user, sizeof(user)), 0);
    assert_int_not_equal(scram_parse_user("", user, sizeof(user)), 0);
    assert_int_not_equal(scram_client_first(&c, "a,b", "p", "nonce", out, sizeof(out)), 0);
    assert_int_not_equal(scram_client_first(&c, "a=b", "p", "nonce", out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_exchange), cmocka_unit_test(test_verifier_roundtrip),
        cmocka_unit_test(test_wrong_password),   cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_malformed_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
