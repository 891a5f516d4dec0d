/* Blocking rpc calls for command-line tools (see cli_rpc.h). */
#include "server/cli_rpc.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/mtime.h"
#include "rpc/rpc.h"
#include "rpc/tls.h"

#define GATEWAY 1 /* the local handle of the one gateway address */

struct cli_rpc {
    rpc_node *rpc;
    char host[128];
    pthread_mutex_t mu;  /* guards interrupted and cur */
    int interrupted;     /* sticky until cli_rpc_clear_interrupt */
    struct pending *cur; /* the interruptible call waiting now */
};

typedef struct pending {
    cli_rpc *c;
    uint64_t call_id; /* loop thread */
    int cancel;       /* mu: interrupted while waiting */
    int cancel_ran;   /* mu: the loop has run cancel_call */
    const char *method;
    const void *payload;
    size_t len;
    int64_t deadline_us;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int code;
    merr err;
    mbuf *reply;
} pending;

int cli_rpc_open(const char *host, const char *certs_dir, const char *user, cli_rpc **out, merr *e)
{
    struct sockaddr_storage ss;
    if (maddr_parse(host, &ss, e)) return merr_wrap(e, "--host");
    /* Tools print their own errors; the transport's chatter stays out of the way. */
    mlog_quiet(MLOG_ERROR);
    cli_rpc *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    snprintf(c->host, sizeof(c->host), "%s", host);
    pthread_mutex_init(&c->mu, NULL);
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = 0;
    cfg.listen_addr = NULL;
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    if (certs_dir) {
        if (tls_certs_paths(certs_dir, user ? user : "root", ca, cert, key, e)) {
            free(c);
            return e->code;
        }
        cfg.tls_ca = ca, cfg.tls_cert = cert, cfg.tls_key = key;
    }
    int rc = rpc_node_start(&cfg, &c->rpc, e);
    if (rc) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cli_rpc_close(cli_rpc *c)
{
    if (!c) return;
    rpc_node_stop(c->rpc);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void on_reply(void *arg, int code, const char *msg, const uint8_t *payload, size_t len)
{
    pending *p = arg;
    pthread_mutex_lock(&p->mu);
    p->code = code;
    if (code) {
        merr_set(&p->err, code, "%s", msg && *msg ? msg : merr_str(code));
        /* A connection refused or cut before any reply: say why, from rpc. */
        merr why = {0};
        if ((code == MERR_UNAVAILABLE || code == MERR_CLOSED) &&
            rpc_node_peer_error(p->c->rpc, GATEWAY, &why) && why.msg[0])
            merr_set(&p->err, code, "cannot reach %s: %s", p->c->host, why.msg);
    } else if (mbuf_append(p->reply, payload, len)) {
        p->code = merr_set(&p->err, MERR_NOMEM, "out of memory");
    }
    p->done = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void start_call(void *arg)
{
    pending *p = arg;
    int rc = rpc_node_add_gateway(p->c->rpc, GATEWAY, p->c->host);
    if (rc) {
        on_reply(p, rc, "bad host address", NULL, 0);
        return;
    }
    rc = rpc_node_call(p->c->rpc, GATEWAY, p->method, p->payload, p->len, p->deadline_us, on_reply,
                       p, &p->call_id);
    if (rc) on_reply(p, rc, NULL, NULL, 0);
}

/* Loop thread: cancels the call (its reply callback then runs with
 * MERR_CANCELED, unless it has already run). */
static void cancel_call(void *arg)
{
    pending *p = arg;
    pthread_mutex_lock(&p->mu);
    int done = p->done;
    pthread_mutex_unlock(&p->mu);
    if (!done) rpc_node_cancel(p->c->rpc, p->call_id);
    pthread_mutex_lock(&p->mu);
    p->cancel_ran = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static int call(cli_rpc *c, const char *method, const void *payload, size_t len, int64_t timeout_ns,
                int interruptible, mbuf *reply, merr *e)
{
    pending p = {.c = c, .method = method, .payload = payload, .len = len, .reply = reply};
    p.deadline_us = (mtime_real_ns() + timeout_ns) / 1000;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    int rc = 0;
    if (interruptible) {
        pthread_mutex_lock(&c->mu);
        if (c->interrupted)
            rc = merr_set(e, MERR_CANCELED, "%s: canceled", method);
        else
            c->cur = &p;
        pthread_mutex_unlock(&c->mu);
    }
    if (rc == 0 && (rc = rpc_node_post(c->rpc, start_call, &p)) == 0) {
        int posted_cancel = 0;
        pthread_mutex_lock(&p.mu);
        while (!p.done) {
            if (p.cancel && !posted_cancel) {
                /* start_call was posted first, so the call id is set. */
                posted_cancel = rpc_node_post(c->rpc, cancel_call, &p) == 0;
                if (!posted_cancel) p.cancel = 0; /* stopping: the reply comes anyway */
                continue;
            }
            pthread_cond_wait(&p.cv, &p.mu);
        }
        /* cancel_call must be done with p before p goes. */
        while (posted_cancel && !p.cancel_ran) pthread_cond_wait(&p.cv, &p.mu);
        pthread_mutex_unlock(&p.mu);
        rc = p.code;
        if (rc && e) *e = p.err;
    } else if (rc != MERR_CANCELED) {
        merr_set(e, rc, "rpc endpoint is stopping");
    }
    if (interruptible) {
        pthread_mutex_lock(&c->mu);
        c->cur = NULL;
        pthread_mutex_unlock(&c->mu);
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    return rc;
}

int cli_rpc_call(cli_rpc *c, const char *method, const void *payload, size_t len,
                 int64_t timeout_ns, mbuf *reply, merr *e)
{
    return call(c, method, payload, len, timeout_ns, 0, reply, e);
}

int cli_rpc_call_interruptible(cli_rpc *c, const char *method, const void *payload, size_t len,
                               int64_t timeout_ns, mbuf *reply, merr *e)
{
    return call(c, method, payload, len, timeout_ns, 1, reply, e);
}

void cli_rpc_interrupt(cli_rpc *c)
{
    pthread_mutex_lock(&c->mu);
    c->interrupted = 1;
    if (c->cur) {
        pthread_mutex_lock(&c->cur->mu);
        c->cur->cancel = 1;
        pthread_cond_signal(&c->cur->cv);
        pthread_mutex_unlock(&c->cur->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

void cli_rpc_clear_interrupt(cli_rpc *c)
{
    pthread_mutex_lock(&c->mu);
    c->interrupted = 0;
    pthread_mutex_unlock(&c->mu);
}

typedef struct oneshot {
    cli_rpc *c;
    int64_t deadline_us;
    size_t len;
    char method[64];
    uint8_t payload[];
} oneshot;

static void oneshot_done(void *arg, int code, const char *msg, const uint8_t *payload, size_t len)
{
    (void)code, (void)msg, (void)payload, (void)len;
    free(arg);
}

static void oneshot_start(void *arg)
{
    oneshot *o = arg;
    if (rpc_node_add_gateway(o->c->rpc, GATEWAY, o->c->host) ||
        rpc_node_call(o->c->rpc, GATEWAY, o->method, o->payload, o->len, o->deadline_us,
                      oneshot_done, o, NULL))
        free(o);
}

int cli_rpc_send(cli_rpc *c, const char *method, const void *payload, size_t len,
                 int64_t timeout_ns)
{
    oneshot *o = malloc(sizeof(*o) + (len ? len : 1));
    if (!o) return MERR_NOMEM;
    o->c = c;
    o->deadline_us = (mtime_real_ns() + timeout_ns) / 1000;
    o->len = len;
    snprintf(o->method, sizeof(o->method), "%s", method);
    if (len) memcpy(o->payload, payload, len);
    int rc = rpc_node_post(c->rpc, oneshot_start, o);
    if (rc) free(o);
    return rc;
}

ProtobufCMessage *cli_rpc_ask(const char *addr, const char *certs, const char *method,
                              const ProtobufCMessageDescriptor *desc, int64_t timeout_ns, merr *e)
{
    cli_rpc *c = NULL;
    if (cli_rpc_open(addr, certs, "root", &c, e)) return NULL;
    mbuf reply = MBUF_INIT;
    ProtobufCMessage *r = NULL;
    /* An empty message packs to zero bytes. */
    if (cli_rpc_call(c, method, NULL, 0, timeout_ns, &reply, e) == 0) {
        r = protobuf_c_message_unpack(desc, NULL, reply.len, reply.data);
        if (!r) merr_set(e, MERR_PROTOCOL, "undecodable reply from %s", addr);
    }
    mbuf_free(&reply);
    cli_rpc_close(c);
    return r;
}
