/* Who a session runs as (docs/security.md).
 *
 * Insecure node: the user the client claims. Secure node: a client
 * certificate's user (CN), or, for a client without a certificate (or one
 * claiming another user), a SCRAM-SHA-256 login before the session serves
 * anything: open -> auth(client-first) -> auth(client-final). The verifier
 * is read from the catalog on the session's worker (a KV read may wait on
 * the network; the loop must not).
 *
 * Failures all read "authentication failed for user X", whether the user is
 * unknown, has no password or gave a wrong one: unknown users get a decoy
 * verifier so the exchange looks the same. Each failure doubles the wait
 * imposed on that user from that address (common/backoff.h); attempts
 * inside the wait are refused unchecked and counted (auth_throttled). */
#include "server/session_internal.h"
#include "server/session_wire.h"

#include "common/log.h"
#include "common/mtime.h"
#include "common/scram.h"

#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MOD "session"

static int is_scram(const char *m)
{
    return m && !strcasecmp(m, "scram-sha-256");
}

int session_auth_open(session_service *svc, rpc_req *req, const char *claimed, const char *method,
                      ssession *ss, sexec_error *err)
{
    const char *user = claimed && *claimed ? claimed : "root";
    int state = SA_DONE;
    snprintf(ss->peer, sizeof(ss->peer), "%s", req->peer_addr ? req->peer_addr : "");
    if (svc->cfg.secure && !(req->peer_verified && req->peer_is_node)) {
        const char *cert = req->peer_verified ? req->peer_user : NULL;
        if (cert && *cert && (!claimed || !*claimed || !strcasecmp(claimed, cert))) {
            user = cert;
        } else if (is_scram(method)) {
            state = SA_WANT_FIRST;
        } else {
            err->code = SEXEC_AUTH;
            if (cert && *cert)
                snprintf(err->msg, sizeof(err->msg),
                         "authentication failed for user %.63s: the client certificate is "
                         "user %.63s's, and no password was given",
                         user, cert);
            else
                snprintf(err->msg, sizeof(err->msg),
                         "authentication failed for user %.63s: give a password or a client "
                         "certificate",
                         user);
            return -1;
        }
    }
    snprintf(ss->user, sizeof(ss->user), "%s", user);
    atomic_store(&ss->auth_state, state);
    return 0;
}

/* user@host: the port changes with every connection, the host does not. */
static void backoff_key(const ssession *ss, char *out, size_t cap)
{
    const char *colon = strrchr(ss->peer, ':');
    int hl = colon ? (int)(colon - ss->peer) : (int)strlen(ss->peer);
    snprintf(out, cap, "%s@%.*s", ss->user, hl, ss->peer);
}

/* A verifier nobody has the password of, the same for a name every time. */
static void decoy(session_service *svc, const char *user, scram_verifier *v)
{
    uint8_t mac[32];
    unsigned int n = sizeof(mac);
    memset(v, 0, sizeof(*v));
    HMAC(EVP_sha256(), svc->decoy_key, sizeof(svc->decoy_key), (const uint8_t *)user, strlen(user),
         mac, &n);
    memcpy(v->salt, mac, SCRAM_SALT_LEN);
    v->salt_len = SCRAM_SALT_LEN;
    v->iter = SCRAM_ITER_DEFAULT;
    RAND_bytes(v->stored_key, sizeof(v->stored_key));
    RAND_bytes(v->server_key, sizeof(v->server_key));
}

static int first_step(sjob *j, const char *msg, char *out, size_t cap, sexec_error *err)
{
    ssession *ss = j->ss;
    session_service *svc = ss->svc;
    char user[64], key[MBACKOFF_KEY_MAX], text[SCRAM_VERIFIER_MAX], snonce[64];
    uint8_t nb[18];
    scram_verifier v;
    int found = 0;
    if (scram_parse_user(msg, user, sizeof(user)) || strcasecmp(user, ss->user)) return -1;
    backoff_key(ss, key, sizeof(key));
    pthread_mutex_lock(&svc->mu);
    int64_t wait = mbackoff_check(&svc->backoff, key, mtime_mono_ns());
    if (wait) svc->st.auth_throttled++;
    pthread_mutex_unlock(&svc->mu);
    if (wait) {
        MLOG_W(MOD, "login refused: too many failures", "user=%s peer=%s wait_ms=%lld", ss->user,
               ss->peer, (long long)(wait / MTIME_MS));
        return -2;
    }
    const session_executor *ex = svc->ex;
    if (!ex->user_verifier) {
        err->code = SEXEC_AUTH;
        snprintf(err->msg, sizeof(err->msg), "this server cannot check passwords");
        return 1;
    }
    if (ex->user_verifier(ss->ctx, ss->user, text, sizeof(text), &found, err)) return 1;
    if (!found || !text[0] || scram_verifier_decode(text, &v)) decoy(svc, ss->user, &v);
    if (!(ss->scram = calloc(1, sizeof(*ss->scram)))) return -1;
    if (RAND_bytes(nb, sizeof(nb)) != 1 ||
        scram_nonce_from(nb, sizeof(nb), snonce, sizeof(snonce)) ||
        scram_server_first(ss->scram, msg, &v, snonce, out, cap))
        return -1;
    atomic_store(&ss->auth_state, SA_WANT_FINAL);
    return 0;
}

void session_run_auth(sjob *j)
{
    ssession *ss = j->ss;
    session_service *svc = ss->svc;
    sexec_error err = {.offset = -1};
    char out[SCRAM_MSG_MAX] = "", key[MBACKOFF_KEY_MAX];
    const char *msg = NULL;
    void *m = NULL;
    int done = 0, rc;
    if (swire_auth_decode(j->payload, j->len, &msg, &m)) {
        j->code = MERR_CORRUPT;
        snprintf(j->msg, sizeof(j->msg), "undecodable auth request");
        return;
    }
    int state = atomic_load(&ss->auth_state);
    if (state == SA_WANT_FIRST) {
        rc = first_step(j, msg, out, sizeof(out), &err);
    } else if (state == SA_WANT_FINAL) {
        rc = scram_server_final(ss->scram, msg, out, sizeof(out)) ? -1 : 0;
        done = !rc;
    } else {
        rc = 1;
        err.code = SEXEC_MISUSE;
        snprintf(err.msg, sizeof(err.msg), "no login in progress on this session");
    }
    swire_auth_free(m);
    if (rc < 0 || done) {
        free(ss->scram);
        ss->scram = NULL;
    }
    backoff_key(ss, key, sizeof(key));
    if (rc < 0) {
        atomic_store(&ss->auth_state, SA_FAILED);
        if (rc == -1) {
            pthread_mutex_lock(&svc->mu);
            svc->st.auth_failures++;
            mbackoff_fail(&svc->backoff, key, mtime_mono_ns());
            pthread_mutex_unlock(&svc->mu);
            MLOG_W(MOD, "authentication failed", "user=%s peer=%s", ss->user, ss->peer);
        }
        err.code = SEXEC_AUTH;
        snprintf(err.msg, sizeof(err.msg), "authentication failed for user %.63s", ss->user);
        out[0] = 0;
    } else if (done) {
        atomic_store(&ss->auth_state, SA_DONE);
        pthread_mutex_lock(&svc->mu);
        svc->st.auth_ok++;
        mbackoff_ok(&svc->backoff, key);
        pthread_mutex_unlock(&svc->mu);
        MLOG_I(MOD, "password login", "user=%s peer=%s", ss->user, ss->peer);
    }
    if (swire_auth_reply_encode(rc ? &err : NULL, out, done, &j->out)) j->code = MERR_NOMEM;
}

int session_service_metrics_render(session_service *svc, mbuf *out)
{
    session_service_stats st;
    session_service_stats_get(svc, &st);
    int rc = 0;
#define C(name, type, v, help)                                                                     \
    rc |= mbuf_printf(out,                                                                         \
                      "# HELP meridian_sql_" name " " help "\n# TYPE meridian_sql_" name " " type  \
                      "\nmeridian_sql_" name " %llu\n",                                            \
                      (unsigned long long)(v))
    C("sessions_open", "gauge", st.sessions_open, "SQL sessions open now");
    C("sessions_total", "counter", st.sessions_total, "SQL sessions opened");
    C("jobs_running", "gauge", st.jobs_running,
      "sessions whose worker is busy with a request now (a statement, prepare, ...)");
    C("auth_ok_total", "counter", st.auth_ok, "password logins that succeeded");
    C("auth_failures_total", "counter", st.auth_failures,
      "password logins that failed (wrong password, unknown user)");
    C("auth_throttled_total", "counter", st.auth_throttled,
      "password logins refused unchecked: the user+address waits after failures");
    C("batches_waiting", "gauge", st.batches_waiting,
      "result batches held back until the client grants credit or its connection drains");
#undef C
    return rc;
}
