/* pd.Settings (node_pd.c has the overview): the cluster settings as text,
 * read and written at range 1's leaseholder under "\x00sys/setting/". */
#include "server/node_pd_int.h"

typedef struct scan_ctx {
    pd_settings *s;
} scan_ctx;

static int setting_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       uint64_t ts)
{
    scan_ctx *c = arg;
    (void)ts;
    char name[64], value[PD_SETTING_VALUE_MAX];
    size_t nl = klen - SETTING_PREFIX_LEN;
    if (nl >= sizeof(name) || vlen >= sizeof(value)) return 0;
    memcpy(name, key + SETTING_PREFIX_LEN, nl);
    name[nl] = 0;
    memcpy(value, val, vlen);
    value[vlen] = 0;
    merr e = {0};
    /* One at a time: a stored pair (min, max) that is valid together may be
     * invalid midway; a second pass below settles those. */
    pd_setting_set(c->s, name, value, &e);
    return 0;
}

/* The settings as range 1 (this node's replica) holds them over the
 * defaults. Values were validated when set. */
void node_pd_load_settings(replica *r1, pd_settings *s)
{
    pd_settings_default(s);
    scan_ctx c = {.s = s};
    uint8_t end[SETTING_PREFIX_LEN];
    prefix_end(SETTING_PREFIX, SETTING_PREFIX_LEN, end);
    for (int pass = 0; pass < 2; pass++)
        range_scan(replica_store(r1), SETTING_PREFIX, SETTING_PREFIX_LEN, end, SETTING_PREFIX_LEN,
                   RANGE_TS_MAX, 0, 0, setting_row, &c, NULL);
}

/* ---- pd.Settings ---- */

typedef struct set_ctx {
    node_pd *p;
    rpc_req *req;
    char name[64];
    char value[PD_SETTING_VALUE_MAX];
    uint8_t key[SETTING_PREFIX_LEN + 64];
    size_t klen;
} set_ctx;

static void settings_reply(node_pd *p, rpc_req *req, const pd_settings *s, const char *only,
                           int code, const char *msg)
{
    Meridian__Pd__SettingsResponse resp = MERIDIAN__PD__SETTINGS_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    Meridian__Pd__Setting st[32], *sp[32];
    char vals[32][PD_SETTING_VALUE_MAX];
    if (code) {
        kv_fill_error(H(p), host_find(H(p), NODE_GENESIS_RANGE), &err, code, msg, NULL);
        resp.error = &err;
    }
    for (size_t i = 0; !code && pd_setting_name(i) && i < 32; i++) {
        const char *name = pd_setting_name(i);
        if (only && strcmp(only, name) != 0) continue;
        meridian__pd__setting__init(&st[resp.n_settings]);
        pd_setting_get(s, name, vals[resp.n_settings], sizeof(vals[0]), NULL);
        st[resp.n_settings].name = (char *)name;
        st[resp.n_settings].value = vals[resp.n_settings];
        st[resp.n_settings].help = (char *)pd_setting_help(i);
        sp[resp.n_settings] = &st[resp.n_settings];
        resp.n_settings++;
    }
    resp.settings = sp;
    pb_reply(req, &resp.base);
}

static void on_setting_written(void *arg, int code, const char *msg, uint64_t ts)
{
    set_ctx *c = arg;
    (void)ts;
    node_pd *p = c->p;
    pd_settings s;
    replica *r1 = p->stopped ? NULL : host_find(H(p), NODE_GENESIS_RANGE);
    if (r1) node_pd_load_settings(r1, &s);
    if (!code && !r1) code = MERR_CLOSED, msg = "node stopping";
    if (!code) {
        p->settings = s; /* live at once */
        MLOG_I(MOD, "setting changed", "name=%s value=%s", c->name, c->value);
    }
    settings_reply(p, c->req, &s, c->name, code, msg);
    free(c);
    node_pd_unref(p);
}

typedef struct lease_ctx {
    node_pd *p;
    rpc_req *req;
    node_pd_r1_fn serve;
} lease_ctx;

static void on_r1_lease(void *arg, int code)
{
    lease_ctx *l = arg;
    node_pd *p = l->p;
    replica *r1 = code || p->stopped ? NULL : host_find(H(p), NODE_GENESIS_RANGE);
    l->serve(p, l->req, r1 && replica_is_leaseholder(r1) ? r1 : NULL);
    free(l);
    node_pd_unref(p);
}

/* A quiet range 1 lets its lease lapse: renew it before reading or writing
 * its system keys, so they are never read from a replica that lost the
 * lead. */
void node_pd_at_range1(node_pd *p, rpc_req *req, node_pd_r1_fn serve)
{
    replica *r1 = node_pd_range1(p);
    lease_ctx *l = r1 && !replica_is_leaseholder(r1) ? calloc(1, sizeof(*l)) : NULL;
    if (l) {
        *l = (lease_ctx){p, req, serve};
        p->refs++;
        int rc = replica_lease_wait(r1, 0, on_r1_lease, l);
        if (rc == 1) return;
        p->refs--;
        free(l);
    }
    r1 = host_find(H(p), NODE_GENESIS_RANGE);
    serve(p, req, r1 && replica_is_leaseholder(r1) ? r1 : NULL);
}

static void settings_serve(node_pd *p, rpc_req *req, replica *r1);

void node_pd_on_settings(void *arg, rpc_req *req)
{
    node_pd_at_range1(arg, req, settings_serve);
}

static void settings_serve(node_pd *p, rpc_req *req, replica *r1)
{
    Meridian__Pd__SettingsRequest *q =
        meridian__pd__settings_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable SettingsRequest", NULL, 0);
        return;
    }
    pd_settings s;
    merr e = {0};
    if (!r1) {
        /* Read and written at range 1's leaseholder only: a follower's copy
         * may lag, and the CLI follows the hint. */
        settings_reply(p, req, NULL, NULL, MERR_NOT_LEADER, "not range 1's leaseholder");
        goto out;
    }
    node_pd_load_settings(r1, &s);
    int is_set = strcmp(q->op, "set") == 0;
    if (strcmp(q->op, "list") == 0) {
        settings_reply(p, req, &s, NULL, 0, NULL);
    } else if (!is_set && strcmp(q->op, "get") != 0) {
        settings_reply(p, req, &s, NULL, MERR_INVALID, "op must be list, get or set");
    } else if (!is_set) {
        char v[PD_SETTING_VALUE_MAX];
        if (pd_setting_get(&s, q->name, v, sizeof(v), &e))
            settings_reply(p, req, &s, NULL, e.code, e.msg);
        else
            settings_reply(p, req, &s, q->name, 0, NULL);
    } else if (pd_setting_set(&s, q->name, q->value, &e)) {
        settings_reply(p, req, &s, NULL, e.code, e.msg);
    } else {
        set_ctx *c = calloc(1, sizeof(*c));
        if (!c) {
            settings_reply(p, req, &s, NULL, MERR_NOMEM, "out of memory");
            goto out;
        }
        c->p = p;
        c->req = req;
        snprintf(c->name, sizeof(c->name), "%s", q->name);
        /* Stored in canonical form: what `get` shows is what was parsed. */
        pd_setting_get(&s, c->name, c->value, sizeof(c->value), NULL);
        memcpy(c->key, SETTING_PREFIX, SETTING_PREFIX_LEN);
        memcpy(c->key + SETTING_PREFIX_LEN, c->name, strlen(c->name));
        c->klen = SETTING_PREFIX_LEN + strlen(c->name);
        range_write w = {.key = c->key,
                         .klen = c->klen,
                         .val = (const uint8_t *)c->value,
                         .vlen = strlen(c->value)};
        p->refs++;
        if (replica_write(r1, &w, 1, mtime_mono_ns() + PD_OP_WAIT, on_setting_written, c, &e)) {
            p->refs--;
            free(c);
            settings_reply(p, req, &s, NULL, e.code, e.msg);
        }
    }
out:
    meridian__pd__settings_request__free_unpacked(q, NULL);
}
