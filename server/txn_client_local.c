/* The gateway's own node without a socket (txn_client_set_local).
 *
 * A SQL session's transaction client runs on the session's worker thread.
 * Over a cli_rpc connection a request to the node the session runs on takes
 * four thread wake-ups (worker → the connection's loop → the node's loop
 * through loopback TCP, and back the same way); here it takes two: the
 * request is posted to the node's loop, which runs the txn.* handler on it
 * directly (rpc_node_call_local), and the answer wakes the worker. On a
 * small virtual machine a wake-up costs tens of microseconds, more than the
 * handler itself.
 *
 * The call belongs to both threads until one is done with it: the worker
 * may give up (deadline, cancel) before the loop answers, and then the loop
 * frees it when the answer comes. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "rpc/rpc.h"
#include "server/txn_client_int.h"

struct tc_local {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;      /* mu: the loop answered */
    int abandoned; /* mu: the worker left; the loop frees */
    int code;
    char msg[256];
    mbuf reply;
    rpc_node *n;
    const char *method; /* a literal */
    int64_t deadline_us;
    size_t len;
    uint8_t payload[];
};

static atomic_uint_fast64_t local_calls_total;

uint64_t txn_client_local_calls_total(void)
{
    return (uint64_t)atomic_load(&local_calls_total);
}

void txn_client_set_local(txn_client *c, struct rpc_node *n, const char *addr)
{
    c->local = n;
    snprintf(c->local_addr, sizeof(c->local_addr), "%s", addr ? addr : "");
}

static void local_free(tc_local *l)
{
    mbuf_free(&l->reply);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* Loop thread: the handler's answer. */
static void local_done(void *arg, int code, const char *msg, const uint8_t *payload, size_t len)
{
    tc_local *l = arg;
    pthread_mutex_lock(&l->mu);
    int gone = l->abandoned;
    if (!gone) {
        l->code = code;
        if (code)
            snprintf(l->msg, sizeof(l->msg), "%s", msg && *msg ? msg : merr_str(code));
        else if (mbuf_append(&l->reply, payload, len))
            l->code = MERR_NOMEM, snprintf(l->msg, sizeof(l->msg), "out of memory");
        l->done = 1;
        pthread_cond_signal(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    if (gone) local_free(l);
}

/* Loop thread. The gateway's client acts as the admin user, as its
 * connections do with the node's client certificate. */
static void local_start(void *arg)
{
    tc_local *l = arg;
    if (rpc_node_call_local(l->n, l->method, l->payload, l->len, l->deadline_us, "root", 0,
                            local_done, l))
        local_done(l, MERR_NOMEM, "out of memory", NULL, 0);
}

static int local_call(txn_client *c, const char *method, const void *buf, size_t len,
                      int64_t tmo_ns, int interruptible, mbuf *reply, merr *e)
{
    tc_local *l = calloc(1, sizeof(*l) + (len ? len : 1));
    if (!l) return merr_set(e, MERR_NOMEM, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* mtime_mono_ns's clock */
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    mbuf_init(&l->reply);
    l->n = c->local, l->method = method, l->len = len;
    if (len) memcpy(l->payload, buf, len);
    int64_t deadline = mtime_mono_ns() + tmo_ns;
    l->deadline_us = (mtime_real_ns() + tmo_ns) / 1000;
    /* Lock order: c->mu, then l->mu (tc_local_wake). */
    pthread_mutex_lock(&c->mu);
    c->lcur = l;
    pthread_mutex_unlock(&c->mu);
    int rc = 0, posted = rpc_node_post(c->local, local_start, l) == 0;
    if (posted) {
        atomic_fetch_add(&local_calls_total, 1);
        pthread_mutex_lock(&l->mu);
        while (!l->done) {
            if (interruptible && atomic_load(&c->canceled)) {
                rc = merr_set(e, MERR_CANCELED, "%s: canceled", method);
                break;
            }
            int64_t now = mtime_mono_ns();
            if (now >= deadline) {
                rc = merr_set(e, MERR_TIMEOUT, "%s: no answer in time", method);
                break;
            }
            struct timespec ts = {(time_t)(deadline / MTIME_S), (long)(deadline % MTIME_S)};
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        }
        pthread_mutex_unlock(&l->mu);
    } else {
        rc = merr_set(e, MERR_UNAVAILABLE, "%s: this node is stopping", method);
    }
    pthread_mutex_lock(&c->mu);
    c->lcur = NULL;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&l->mu);
    int mine = !posted || l->done;
    if (l->done) { /* an answer that came while leaving still counts */
        rc = l->code;
        if (rc)
            merr_set(e, rc, "%s", l->msg);
        else if (mbuf_append(reply, l->reply.data, l->reply.len))
            rc = merr_set(e, MERR_NOMEM, "out of memory");
    } else if (posted) {
        l->abandoned = 1; /* the loop frees it when the answer comes */
    }
    pthread_mutex_unlock(&l->mu);
    if (mine) local_free(l);
    return rc;
}

void tc_local_wake(txn_client *c)
{
    /* c->mu held by the caller: lcur cannot go meanwhile. */
    if (!c->lcur) return;
    pthread_mutex_lock(&c->lcur->mu);
    pthread_cond_signal(&c->lcur->cv);
    pthread_mutex_unlock(&c->lcur->mu);
}

int tc_rpc(txn_client *c, const char *method, const void *buf, size_t len, int64_t tmo_ns,
           int interruptible, mbuf *reply, merr *e)
{
    if (c->local && !strcmp(c->cur, c->local_addr))
        return local_call(c, method, buf, len, tmo_ns, interruptible, reply, e);
    return interruptible ? cli_rpc_call_interruptible(c->rpc, method, buf, len, tmo_ns, reply, e)
                         : cli_rpc_call(c->rpc, method, buf, len, tmo_ns, reply, e);
}
