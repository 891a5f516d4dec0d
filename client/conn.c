/* libmeridian connections: conninfo, the private rpc node (node id 0, its
 * own loop thread), sessions and failover across seed hosts, blocking calls
 * and statement streams over rpc, options, interrupt, errors. */
#include "client/internal.h"

#include "common/addr.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/mtime.h"
#include "common/scram.h"
#include "common/sqllex.h"
#include "rpc/tls.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

int client_err(meridian *db, int code, int retryable, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
    va_end(ap);
    db->errcode = code;
    db->retryable = retryable;
    db->erroffset = -1;
    return code;
}

void client_ok(meridian *db)
{
    db->errcode = MERIDIAN_OK;
    db->errmsg[0] = 0;
    db->erroffset = -1;
    db->retryable = 0;
}

int client_err_from(meridian *db, const Meridian__Session__Error *e)
{
    if (!e || !e->code) {
        client_ok(db);
        return MERIDIAN_OK;
    }
    client_err(db, e->code, e->retryable, "%s", e->message ? e->message : "error");
    db->erroffset = e->offset;
    return e->code;
}

void client_txn_from(meridian *db, int txn)
{
    db->txn = txn;
}

int client_may_commit(const char *sql, int txn)
{
    size_t pos = 0;
    sql_tok t = sql_lex(sql, &pos);
    while (t.kind == 'p' && t.n == 1 && (t.p[0] == ';' || t.p[0] == '(')) t = sql_lex(sql, &pos);
    if (sql_tok_is(&t, "commit") || sql_tok_is(&t, "end") || sql_tok_is(&t, "release")) return 1;
    if (txn != MERIDIAN_TXN_IDLE) return 0; /* its writes wait for COMMIT */
    static const char *const harmless[] = {"select",    "begin",  "start",   "rollback",
                                           "savepoint", "values", "explain", "show"};
    for (size_t k = 0; k < sizeof(harmless) / sizeof(harmless[0]); k++)
        if (sql_tok_is(&t, harmless[k])) return 0;
    if (!sql_tok_is(&t, "with")) return 1;
    /* A common table expression ends in a SELECT or a write: a write names
     * one of these words (strings are tokens of their own). */
    for (t = sql_lex(sql, &pos); t.kind; t = sql_lex(sql, &pos))
        if (sql_tok_is(&t, "insert") || sql_tok_is(&t, "update") || sql_tok_is(&t, "delete") ||
            sql_tok_is(&t, "replace"))
            return 1;
    return 0;
}

int client_rpc_failed(meridian *db, int rpc_code, const char *msg, int may_have_committed)
{
    const char *host = db->nhosts ? db->hosts[db->cur] : "?";
    switch (rpc_code) {
    case MERR_UNAVAILABLE:
    case MERR_CLOSED:
    case MERR_TIMEOUT:
    case MERR_PROTOCOL:
    case MERR_NOTFOUND: /* the gateway restarted and forgot the session */
        db->connected = 0;
        db->txn = MERIDIAN_TXN_IDLE;
        db->cur = (db->cur + 1) % (db->nhosts ? db->nhosts : 1);
        if (may_have_committed)
            return client_err(db, MERIDIAN_UNAVAILABLE, 0,
                              "connection to %s lost (%s) while the statement could have "
                              "committed: its outcome is unknown (the session is gone)",
                              host, msg && *msg ? msg : merr_str(rpc_code));
        return client_err(db, MERIDIAN_UNAVAILABLE, 1,
                          "connection to %s lost (%s); the session and any open transaction "
                          "are gone: retry",
                          host, msg && *msg ? msg : merr_str(rpc_code));
    case MERR_CANCELED: return client_err(db, MERIDIAN_INTERRUPT, 0, "interrupted");
    case MERR_NOMEM: return client_err(db, MERIDIAN_NOMEM, 0, "out of memory");
    default:
        return client_err(db, MERIDIAN_PROTOCOL, 0, "%s: %s", host,
                          msg && *msg ? msg : merr_str(rpc_code));
    }
}

/* ---- calls ---- */

typedef struct ccall {
    meridian *db;
    const char *method;
    const uint8_t *req;
    size_t req_len;
    int64_t deadline_us;
    int done, code, start_rc;
    char msg[256];
    uint8_t *resp;
    size_t len;
} ccall;

static void ccall_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    ccall *c = arg;
    meridian *db = c->db;
    pthread_mutex_lock(&db->mu);
    c->code = code;
    snprintf(c->msg, sizeof(c->msg), "%s", msg ? msg : "");
    if (!code && len) {
        c->resp = malloc(len);
        if (c->resp)
            memcpy(c->resp, p, len);
        else
            c->code = MERR_NOMEM;
    }
    c->len = len;
    c->done = 1;
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

static void ccall_start(void *arg)
{
    ccall *c = arg;
    c->start_rc = rpc_node_call(c->db->node, (uint64_t)c->db->cur + 1, c->method, c->req,
                                c->req_len, c->deadline_us, ccall_reply, c, NULL);
}

static int encode(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    *out = malloc(*len ? *len : 1);
    if (!*out) return MERR_NOMEM;
    protobuf_c_message_pack(m, *out);
    return 0;
}

/* One request to the current host; rpc-level result in the ccall. */
static int raw_call(meridian *db, const char *method, const ProtobufCMessage *req,
                    int64_t timeout_ns, ccall *c)
{
    memset(c, 0, sizeof(*c));
    uint8_t *buf;
    if (encode(req, &buf, &c->req_len)) return MERR_NOMEM;
    c->db = db;
    c->method = method;
    c->req = buf;
    c->deadline_us = timeout_ns ? (mtime_real_ns() + timeout_ns) / 1000 : 0;
    int rc = rpc_node_run_sync(db->node, ccall_start, c);
    if (!rc) rc = c->start_rc;
    if (!rc) {
        pthread_mutex_lock(&db->mu);
        while (!c->done) pthread_cond_wait(&db->cv, &db->mu);
        pthread_mutex_unlock(&db->mu);
    }
    free(buf);
    return rc;
}

int client_call(meridian *db, const char *method, const ProtobufCMessage *req, uint8_t **resp,
                size_t *len, int *sent_nothing)
{
    ccall c;
    *sent_nothing = 0;
    /* statement_timeout bounds preparing a statement too (the gateway may
     * read the catalog); the deadline travels with the request. */
    int rc = raw_call(db, method, req, db->stmt_timeout_ns, &c);
    if (rc) {
        *sent_nothing = rc == MERR_UNAVAILABLE;
        return client_rpc_failed(db, rc, "not sent", 0);
    }
    if (c.code) {
        free(c.resp);
        return client_rpc_failed(db, c.code, c.msg, 0);
    }
    *resp = c.resp;
    *len = c.len;
    return 0;
}

/* ---- sessions ---- */

static void fill_settings(meridian *db, Meridian__Session__Settings *s)
{
    s->read_only = db->read_only;
    s->max_staleness_ms = db->max_staleness_ms;
    s->application_name = db->app_name;
}

/* One session.auth round: sends msg, returns the server's answer in out. */
static int auth_round(meridian *db, uint64_t sid, const char *msg, char *out, size_t outcap,
                      int *done, char *why, size_t cap)
{
    Meridian__Session__AuthRequest req = MERIDIAN__SESSION__AUTH_REQUEST__INIT;
    req.session_id = sid;
    req.message = (char *)msg;
    ccall c;
    int rc = raw_call(db, "session.auth", &req.base, db->connect_timeout_ns, &c);
    if (!rc) rc = c.code;
    if (rc) {
        snprintf(why, cap, "%s: %s", db->hosts[db->cur], c.msg[0] ? c.msg : merr_str(rc));
        free(c.resp);
        return MERIDIAN_UNAVAILABLE;
    }
    Meridian__Session__AuthReply *r = meridian__session__auth_reply__unpack(NULL, c.len, c.resp);
    free(c.resp);
    if (!r) {
        snprintf(why, cap, "%s: undecodable auth reply", db->hosts[db->cur]);
        return MERIDIAN_PROTOCOL;
    }
    if (r->error && r->error->code) {
        snprintf(why, cap, "%s: %s", db->hosts[db->cur], r->error->message);
        rc = r->error->code;
    } else {
        snprintf(out, outcap, "%s", r->message ? r->message : "");
        *done = r->done;
    }
    meridian__session__auth_reply__free_unpacked(r, NULL);
    return rc;
}

/* SCRAM-SHA-256 (common/scram.h) inside TLS: client-first, client-final,
 * then the server must prove it knows the verifier too. */
static int scram_login(meridian *db, uint64_t sid, char *why, size_t cap)
{
    scram_client sc;
    uint8_t nb[18];
    char nonce[64], a[SCRAM_MSG_MAX], b[SCRAM_MSG_MAX];
    int done = 0, rc;
    if (!db->password[0] || db->insecure) {
        snprintf(why, cap,
                 "%s: authentication failed for user %s: the server wants a password "
                 "(password= or MERIDIAN_PASSWORD) or a client certificate",
                 db->hosts[db->cur], db->user);
        return MERIDIAN_AUTH;
    }
    if (RAND_bytes(nb, sizeof(nb)) != 1 || scram_nonce_from(nb, sizeof(nb), nonce, sizeof(nonce)) ||
        scram_client_first(&sc, db->user, db->password, nonce, a, sizeof(a))) {
        snprintf(why, cap, "user %s: cannot start a password login (a name with ',' or '='?)",
                 db->user);
        scram_client_wipe(&sc);
        return MERIDIAN_MISUSE;
    }
    rc = auth_round(db, sid, a, b, sizeof(b), &done, why, cap);
    if (!rc && scram_client_final(&sc, b, a, sizeof(a))) {
        snprintf(why, cap, "%s: malformed SCRAM server-first message", db->hosts[db->cur]);
        rc = MERIDIAN_PROTOCOL;
    }
    if (!rc) rc = auth_round(db, sid, a, b, sizeof(b), &done, why, cap);
    if (!rc && (!done || scram_client_check(&sc, b))) {
        /* The server does not know the verifier: not the cluster we meant. */
        snprintf(why, cap, "%s: the server failed to prove it knows user %s's password",
                 db->hosts[db->cur], db->user);
        rc = MERIDIAN_AUTH;
    }
    scram_client_wipe(&sc);
    return rc;
}

static int open_on(meridian *db, int host, char *why, size_t cap)
{
    Meridian__Session__OpenRequest req = MERIDIAN__SESSION__OPEN_REQUEST__INIT;
    Meridian__Session__Settings st = MERIDIAN__SESSION__SETTINGS__INIT;
    fill_settings(db, &st);
    req.protocol_version = CLIENT_PROTOCOL_VERSION;
    req.cluster_id = db->cluster;
    req.user = db->user;
    req.settings = &st;
    /* insecure=on: the server checks nothing; the password stays here. */
    req.auth_method = (char *)(db->password[0] && !db->insecure ? "scram-sha-256" : "");
    db->cur = host;
    ccall c;
    int rc = raw_call(db, "session.open", &req.base, db->connect_timeout_ns, &c);
    if (!rc) rc = c.code;
    if (rc) {
        snprintf(why, cap, "%s: %s", db->hosts[host], c.msg[0] ? c.msg : merr_str(rc));
        free(c.resp);
        return MERIDIAN_UNAVAILABLE;
    }
    Meridian__Session__OpenReply *r = meridian__session__open_reply__unpack(NULL, c.len, c.resp);
    free(c.resp);
    if (!r) {
        snprintf(why, cap, "%s: undecodable session reply", db->hosts[host]);
        return MERIDIAN_PROTOCOL;
    }
    if (r->error && r->error->code) {
        snprintf(why, cap, "%s: %s", db->hosts[host], r->error->message);
        rc = r->error->code;
    } else if (!r->session_id) {
        snprintf(why, cap, "%s: no session id in reply", db->hosts[host]);
        rc = MERIDIAN_PROTOCOL;
    } else if (r->auth_required && (rc = scram_login(db, r->session_id, why, cap))) {
        Meridian__Session__CloseRequest cr = MERIDIAN__SESSION__CLOSE_REQUEST__INIT;
        cr.session_id = r->session_id;
        if (!raw_call(db, "session.close", &cr.base, 2 * MTIME_S, &c)) free(c.resp);
    } else {
        db->session_id = r->session_id;
        db->gen++;
        db->connected = 1;
        db->txn = MERIDIAN_TXN_IDLE;
    }
    meridian__session__open_reply__free_unpacked(r, NULL);
    return rc;
}

int client_ensure_session(meridian *db)
{
    if (db->connected) return 0;
    char why[1024] = "", one[300];
    size_t used = 0;
    int start = db->cur, last = MERIDIAN_UNAVAILABLE;
    for (int i = 0; i < db->nhosts; i++) {
        int h = (start + i) % db->nhosts;
        one[0] = 0;
        last = open_on(db, h, one, sizeof(one));
        if (!last) return 0;
        used += (size_t)snprintf(why + used, used < sizeof(why) ? sizeof(why) - used : 0, "%s%s",
                                 i ? "; " : "", one);
        if (used >= sizeof(why)) used = sizeof(why) - 1;
        /* A gateway that answered and refused (wrong cluster, protocol) is
         * as final as it gets: others will say the same. */
        if (last != MERIDIAN_UNAVAILABLE) break;
    }
    db->cur = start;
    return client_err(
        db, last, last == MERIDIAN_UNAVAILABLE,
        last == MERIDIAN_UNAVAILABLE ? "cannot reach any host: %s" : "session refused: %s", why);
}

/* ---- streams ---- */

typedef struct sstart {
    meridian_stmt *st;
    const uint8_t *req;
    size_t len;
    int64_t deadline_us;
    int rc;
} sstart;

static int stream_item(void *arg, const uint8_t *p, size_t len)
{
    meridian_stmt *st = arg;
    meridian *db = st->db;
    cbatch *b = calloc(1, sizeof(*b));
    if (b) b->msg = meridian__session__row_batch__unpack(NULL, len, p);
    pthread_mutex_lock(&db->mu);
    if (b && b->msg) {
        if (st->tail)
            st->tail->next = b;
        else
            st->head = b;
        st->tail = b;
    } else {
        /* Undecodable or out of memory: the statement fails at the end. */
        if (!st->end_code) st->end_code = b ? MERR_PROTOCOL : MERR_NOMEM;
        free(b);
        b = NULL;
    }
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
    /* Held (0): credit goes back when the application has read the batch,
     * which is what keeps a slow reader from making the server buffer. */
    return b ? 0 : 1;
}

static void stream_end(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    meridian_stmt *st = arg;
    meridian *db = st->db;
    Meridian__Session__ExecResult *r = NULL;
    if (!code) {
        r = meridian__session__exec_result__unpack(NULL, len, p);
        if (!r) code = MERR_PROTOCOL, msg = "undecodable exec result";
    }
    pthread_mutex_lock(&db->mu);
    if (!st->end_code) st->end_code = code;
    if (code) st->end_msg = strdup(msg ? msg : "");
    st->result = r;
    st->ended = 1;
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

static void stream_start_cb(void *arg)
{
    sstart *s = arg;
    meridian_stmt *st = s->st;
    s->rc = rpc_node_call_stream(st->db->node, (uint64_t)st->db->cur + 1, "session.exec", s->req,
                                 s->len, s->deadline_us, CLIENT_STREAM_WINDOW, stream_item,
                                 stream_end, st, &st->call_id);
}

int client_stream_start(meridian_stmt *st, const ProtobufCMessage *req, int *sent_nothing)
{
    meridian *db = st->db;
    sstart s = {.st = st};
    uint8_t *buf;
    *sent_nothing = 0;
    if (encode(req, &buf, &s.len)) return client_err(db, MERIDIAN_NOMEM, 0, "out of memory");
    s.req = buf;
    /* The deadline travels with the request; when it passes, rpc cancels
     * the call and the gateway interrupts the statement. */
    if (db->stmt_timeout_ns) s.deadline_us = (mtime_real_ns() + db->stmt_timeout_ns) / 1000;
    st->deadline_us = s.deadline_us;
    st->ended = 0;
    st->end_code = 0;
    int rc = rpc_node_run_sync(db->node, stream_start_cb, &s);
    free(buf);
    if (!rc) rc = s.rc;
    if (rc) {
        *sent_nothing = rc == MERR_UNAVAILABLE;
        return client_rpc_failed(db, rc, "not sent", 0);
    }
    return 0;
}

typedef struct sgrant {
    rpc_node *node;
    uint64_t call_id;
} sgrant;

static void grant_cb(void *arg)
{
    sgrant *g = arg;
    rpc_node_stream_grant(g->node, g->call_id, 1); /* the call may be over: fine */
    free(g);
}

void client_stream_grant(meridian_stmt *st)
{
    sgrant *g = malloc(sizeof(*g));
    if (!g) return; /* the server stalls; a reset or finalize still ends it */
    g->node = st->db->node;
    g->call_id = st->call_id;
    if (rpc_node_post(st->db->node, grant_cb, g)) free(g);
}

static void cancel_cb(void *arg)
{
    meridian_stmt *st = arg;
    rpc_node_cancel(st->db->node, st->call_id); /* ends the call (and its callbacks) now */
}

void client_stream_cancel(meridian_stmt *st)
{
    pthread_mutex_lock(&st->db->mu);
    int ended = st->ended;
    pthread_mutex_unlock(&st->db->mu);
    if (!ended) rpc_node_run_sync(st->db->node, cancel_cb, st);
}

/* ---- fire-and-forget calls, interrupt ---- */

typedef struct casync {
    meridian *db;
    const char *method;
    uint8_t *req;
    size_t len;
    uint64_t to;
} casync;

static void async_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    free(arg); /* the request buffer: nobody waits for the answer */
}

static void async_cb(void *arg)
{
    casync *c = arg;
    if (rpc_node_call(c->db->node, c->to, c->method, c->req, c->len, 0, async_reply, c->req, NULL))
        free(c->req);
    free(c);
}

void client_call_async(meridian *db, const char *method, const ProtobufCMessage *req, int host)
{
    casync *c = calloc(1, sizeof(*c));
    if (!c) return;
    c->db = db;
    c->method = method;
    c->to = (uint64_t)host + 1;
    if (encode(req, &c->req, &c->len)) {
        free(c);
        return;
    }
    if (rpc_node_post(db->node, async_cb, c)) {
        free(c->req);
        free(c);
    }
}

int client_check_idle(meridian *db, meridian_stmt *except)
{
    pthread_mutex_lock(&db->mu);
    meridian_stmt *r = db->running;
    int busy = r && r != except && !r->ended;
    pthread_mutex_unlock(&db->mu);
    if (busy)
        return client_err(db, MERIDIAN_BUSY, 0,
                          "another statement of this connection still has rows to read: "
                          "finalize or reset it first");
    return 0;
}

void meridian_interrupt(meridian *db)
{
    if (!db) return;
    pthread_mutex_lock(&db->mu);
    uint64_t seq = db->inflight_seq, sid = db->session_id;
    int host = db->cur;
    if (seq) db->interrupted_seq = seq;
    pthread_mutex_unlock(&db->mu);
    if (!seq) return;
    Meridian__Session__CancelRequest req = MERIDIAN__SESSION__CANCEL_REQUEST__INIT;
    req.session_id = sid;
    req.seq = seq;
    /* Handled on the gateway's loop at once, not queued behind the statement. */
    client_call_async(db, "session.cancel", &req.base, host);
}

typedef struct addpeers {
    meridian *db;
    int rc;
} addpeers;

static void add_peers_cb(void *arg)
{
    addpeers *a = arg;
    for (int i = 0; i < a->db->nhosts && !a->rc; i++)
        a->rc = rpc_node_add_peer(a->db->node, (uint64_t)i + 1, a->db->hosts[i]);
}

int meridian_open(const char *conninfo, meridian **out)
{
    if (!out) return MERIDIAN_MISUSE;
    meridian *db = calloc(1, sizeof(*db));
    *out = db;
    if (!db) return MERIDIAN_NOMEM;
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->cv, NULL);
    snprintf(db->user, sizeof(db->user), "root");
    db->connect_timeout_ns = 5 * MTIME_S;
    client_ok(db);
    if (!conninfo) return client_err(db, MERIDIAN_MISUSE, 0, "conninfo is NULL");
    int rc = client_parse_conninfo(db, conninfo);
    if (rc) return rc;
    /* A gateway that hangs up must fail a statement, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* The transport logs to stderr; an application embedding us did not ask
     * for that. MERIDIAN_LOG_LEVEL=debug|info|warn|... turns it on. */
    mlog_level lvl = MLOG_OFF;
    const char *ll = getenv("MERIDIAN_LOG_LEVEL");
    if (ll) mlog_parse_level(ll, &lvl);
    mlog_set_level(lvl);
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = 0;
    cfg.cluster_id = db->cluster;
    cfg.stream_window = CLIENT_STREAM_WINDOW;
    cfg.handshake_timeout_ns = db->connect_timeout_ns;
    /* Reconnect quickly: after a gateway dies we move on to the next one,
     * and a restarted one should be usable again soon. */
    cfg.backoff_initial_ns = 20 * MTIME_MS;
    cfg.backoff_max_ns = 1 * MTIME_S;
    merr e = {0};
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    if (db->certs_dir[0]) {
        if (tls_certs_paths(db->certs_dir, db->user, ca, cert, key, &e))
            return client_err(db, MERIDIAN_MISUSE, 0, "certs_dir: %s", e.msg);
        cfg.tls_ca = ca;
        /* The user's client certificate when there is one; otherwise TLS
         * without one, and a password login. */
        if (access(cert, R_OK) == 0 && access(key, R_OK) == 0) {
            cfg.tls_cert = cert;
            cfg.tls_key = key;
        } else if (!db->password[0]) {
            return client_err(db, MERIDIAN_AUTH, 0,
                              "no client certificate for user %s in %s (client.%s.crt) and no "
                              "password (password= or MERIDIAN_PASSWORD)",
                              db->user, db->certs_dir, db->user);
        }
    }
    if (rpc_node_start(&cfg, &db->node, &e))
        return client_err(db, db->certs_dir[0] ? MERIDIAN_MISUSE : MERIDIAN_INTERNAL, 0,
                          "start the network thread: %s", e.msg);
    addpeers a = {db, 0};
    rc = rpc_node_run_sync(db->node, add_peers_cb, &a);
    if (rc || a.rc) return client_err(db, MERIDIAN_INTERNAL, 0, "register hosts");
    return client_ensure_session(db);
}

int meridian_set_option(meridian *db, const char *name, const char *value)
{
    if (!db || !name || !value) return MERIDIAN_MISUSE;
    int rc = client_set_option(db, name, value);
    if (rc) return rc;
    if (!db->connected) {
        client_ok(db);
        return 0;
    }
    if ((rc = client_check_idle(db, NULL))) return rc;
    Meridian__Session__SetRequest req = MERIDIAN__SESSION__SET_REQUEST__INIT;
    Meridian__Session__Settings st = MERIDIAN__SESSION__SETTINGS__INIT;
    fill_settings(db, &st);
    req.session_id = db->session_id;
    req.settings = &st;
    uint8_t *resp = NULL;
    size_t len = 0;
    int none;
    if ((rc = client_call(db, "session.set", &req.base, &resp, &len, &none))) {
        /* The option is kept; the next session gets it. */
        return rc;
    }
    Meridian__Session__Status *s = meridian__session__status__unpack(NULL, len, resp);
    free(resp);
    if (!s) return client_err(db, MERIDIAN_PROTOCOL, 0, "undecodable status");
    rc = client_err_from(db, s->error);
    client_txn_from(db, s->txn);
    meridian__session__status__free_unpacked(s, NULL);
    return rc;
}

int meridian_close(meridian *db)
{
    if (!db) return MERIDIAN_OK;
    while (db->stmts) meridian_finalize(db->stmts);
    if (db->node && db->connected) {
        Meridian__Session__CloseRequest req = MERIDIAN__SESSION__CLOSE_REQUEST__INIT;
        req.session_id = db->session_id;
        ccall c;
        /* Best effort with a short deadline: a dead gateway must not hang
         * close, and the server reaps idle sessions anyway. */
        if (!raw_call(db, "session.close", &req.base, 2 * MTIME_S, &c)) free(c.resp);
    }
    if (db->node) rpc_node_stop(db->node);
    OPENSSL_cleanse(db->password, sizeof(db->password));
    for (int i = 0; i < db->nhosts; i++) free(db->hosts[i]);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->cv);
    free(db);
    return MERIDIAN_OK;
}

int meridian_errcode(meridian *db)
{
    return db ? db->errcode : MERIDIAN_NOMEM;
}
const char *meridian_errmsg(meridian *db)
{
    if (!db) return "out of memory";
    return db->errcode ? db->errmsg : "not an error";
}
int meridian_error_offset(meridian *db)
{
    return db && db->errcode ? db->erroffset : -1;
}
int meridian_error_retryable(meridian *db)
{
    return db && db->errcode ? db->retryable : 0;
}
int meridian_txn_state(meridian *db)
{
    return db ? db->txn : MERIDIAN_TXN_IDLE;
}
int64_t meridian_changes(meridian *db)
{
    return db ? db->changes : 0;
}
const char *meridian_host(meridian *db)
{
    return db && db->connected ? db->hosts[db->cur] : NULL;
}

const char *meridian_libversion(void)
{
    return "0.1.0";
}

const char *meridian_errstr(int code)
{
    switch (code) {
    case MERIDIAN_OK: return "not an error";
    case MERIDIAN_ERROR: return "SQL error";
    case MERIDIAN_INTERNAL: return "internal error";
    case MERIDIAN_ABORT: return "transaction aborted";
    case MERIDIAN_BUSY: return "another statement is running on this connection";
    case MERIDIAN_NOMEM: return "out of memory";
    case MERIDIAN_READONLY: return "attempt to write in a read-only session";
    case MERIDIAN_INTERRUPT: return "interrupted";
    case MERIDIAN_PROTOCOL: return "protocol error";
    case MERIDIAN_TOOBIG: return "string or blob too big";
    case MERIDIAN_CONSTRAINT: return "constraint failed";
    case MERIDIAN_MISUSE: return "bad use of the API";
    case MERIDIAN_RANGE: return "index out of range";
    case MERIDIAN_ROW: return "another row available";
    case MERIDIAN_DONE: return "no more rows available";
    case MERIDIAN_UNAVAILABLE: return "no server available";
    case MERIDIAN_AUTH: return "authentication failed or permission denied";
    default: return "unknown error";
    }
}
