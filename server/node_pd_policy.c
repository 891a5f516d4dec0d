/* pd.Policy (node_pd.c has the overview): named placement policies, read
 * and written at range 1's leaseholder under "\x00sys/policy/" + name in
 * their canonical text (placement/pd_policy_text.h), and added to every PD
 * run's snapshot. */
#include "server/node_pd_int.h"

#include "placement/pd_policy_text.h"
#include "sql/cluster.h"

typedef struct policy_scan {
    pd_named_policy *v;
    size_t n, cap;
} policy_scan;

static int policy_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t ts)
{
    policy_scan *c = arg;
    (void)ts;
    size_t nl = klen - POLICY_PREFIX_LEN;
    if (nl == 0 || nl >= PD_POLICY_NAME_MAX) return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        pd_named_policy *nv = realloc(c->v, cap * sizeof(*nv));
        if (!nv) return 1;
        c->v = nv;
        c->cap = cap;
    }
    pd_named_policy *np = &c->v[c->n];
    memcpy(np->name, key + POLICY_PREFIX_LEN, nl);
    np->name[nl] = 0;
    merr e = {0};
    /* Checked when set, so a row that does not parse is a bug or damage:
     * it is skipped (and said), never allowed to stop the PD. */
    if (pd_policy_parse((const char *)val, vlen, &np->p, &e)) {
        MLOG_W(MOD, "stored policy ignored", "name=%s error=\"%s\"", np->name, e.msg);
        return 0;
    }
    c->n++;
    return 0;
}

size_t node_pd_load_policies(replica *r1, pd_named_policy **out)
{
    policy_scan c = {0};
    uint8_t end[POLICY_PREFIX_LEN];
    prefix_end(POLICY_PREFIX, POLICY_PREFIX_LEN, end);
    range_scan(replica_store(r1), POLICY_PREFIX, POLICY_PREFIX_LEN, end, POLICY_PREFIX_LEN,
               RANGE_TS_MAX, 0, 0, policy_row, &c, NULL);
    *out = c.v;
    return c.n;
}

void node_pd_policies_free(pd_named_policy *v, size_t n)
{
    for (size_t i = 0; i < n; i++) pd_policy_free(&v[i].p);
    free(v);
}

int node_pd_add_policies(node_pd *p, replica *r1, pd_cluster *c)
{
    pd_named_policy *v;
    size_t n = node_pd_load_policies(r1, &v), hidden = 0;
    int rc = pd_policy_add_all(c, v, n, &hidden);
    if (!rc && hidden > p->policies_hidden)
        MLOG_W(MOD, "stored policies left out: they overlap others (list them, remove one)",
               "count=%zu", hidden);
    if (!rc) p->policies_hidden = hidden;
    node_pd_policies_free(v, n);
    return rc;
}

/* ---- pd.Policy ---- */

static void policy_reply(node_pd *p, rpc_req *req, const pd_named_policy *v, size_t n, int code,
                         const char *msg, const char *warning)
{
    Meridian__Pd__PolicyResponse resp = MERIDIAN__PD__POLICY_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    Meridian__Pd__Policy *pv = calloc(n ? n : 1, sizeof(*pv));
    Meridian__Pd__Policy **pp = calloc(n ? n : 1, sizeof(*pp));
    char **regions = calloc(n ? n : 1, PD_MAX_REGIONS * sizeof(*regions));
    if (!code && (!pv || !pp || !regions)) code = MERR_NOMEM, msg = "out of memory";
    if (code) {
        kv_fill_error(H(p), host_find(H(p), NODE_GENESIS_RANGE), &err, code, msg, NULL);
        resp.error = &err;
    }
    for (size_t i = 0; !code && i < n; i++) {
        const pd_policy *s = &v[i].p;
        Meridian__Pd__Policy *o = &pv[i];
        meridian__pd__policy__init(o);
        o->name = (char *)v[i].name;
        o->start = (ProtobufCBinaryData){s->start.len, s->start.p};
        o->end = (ProtobufCBinaryData){s->end.len, s->end.p};
        o->replicas = (uint32_t)s->replication_factor;
        o->regions = &regions[i * PD_MAX_REGIONS];
        for (int k = 0; k < s->n_allowed; k++)
            o->regions[o->n_regions++] = (char *)s->allowed_regions[k];
        o->lead_region = (char *)s->lead_region;
        o->survive = (char *)pd_survival_name(s->survival);
        pp[resp.n_policies++] = o;
    }
    resp.policies = pp;
    resp.warning = (char *)(warning ? warning : "");
    pb_reply(req, &resp.base);
    free(pv);
    free(pp);
    free(regions);
}

/* What a policy cannot do in the cluster as the PD last saw it: a region
 * no node is in is allowed (its nodes may join later), but said. */
static void region_warning(node_pd *p, const pd_policy *pol, char *buf, size_t cap)
{
    buf[0] = 0;
    if (!p->leading || !p->have_last) return;
    for (int i = -1; i < pol->n_allowed && !buf[0]; i++) {
        const char *r = i < 0 ? pol->lead_region : pol->allowed_regions[i];
        bool found = !r[0];
        for (size_t k = 0; k < p->last.n_nodes && !found; k++)
            found = strcmp(p->last.nodes[k].region, r) == 0;
        if (!found)
            snprintf(buf, cap,
                     "no node is in region \"%s\" yet: the policy applies once one joins "
                     "(replicas and leases stay where they are until then)",
                     r);
    }
}

typedef struct write_ctx {
    node_pd *p;
    rpc_req *req;
    uint8_t key[POLICY_PREFIX_LEN + PD_POLICY_NAME_MAX];
    char text[PD_POLICY_TEXT_MAX];
    char warning[256];
    char name[PD_POLICY_NAME_MAX];
    int del;
} write_ctx;

static void on_policy_written(void *arg, int code, const char *msg, uint64_t ts)
{
    write_ctx *c = arg;
    (void)ts;
    node_pd *p = c->p;
    p->policy_writing = 0;
    replica *r1 = p->stopped ? NULL : host_find(H(p), NODE_GENESIS_RANGE);
    if (!code && !r1) code = MERR_CLOSED, msg = "node stopping";
    pd_named_policy *v = NULL;
    size_t n = r1 && !code ? node_pd_load_policies(r1, &v) : 0;
    if (!code)
        MLOG_I(MOD, c->del ? "policy removed" : "policy set", "name=%s policy=\"%s\"", c->name,
               c->text);
    policy_reply(p, c->req, v, n, code, msg, c->warning);
    node_pd_policies_free(v, n);
    free(c);
    node_pd_unref(p);
}

/* The request's policy as the model sees it (keys borrowed from q). */
static int policy_from(const Meridian__Pd__Policy *q, pd_policy *out, merr *e)
{
    memset(out, 0, sizeof(*out));
    out->start = (pd_key){q->start.data, q->start.len};
    out->end = (pd_key){q->end.data, q->end.len};
    out->replication_factor = q->replicas > 100 ? 100 : (int)q->replicas;
    if (q->n_regions > PD_MAX_REGIONS)
        return merr_set(e, MERR_INVALID, "at most %d regions", PD_MAX_REGIONS);
    for (size_t i = 0; i < q->n_regions; i++) {
        if (strlen(q->regions[i]) >= PD_NAME_MAX)
            return merr_set(e, MERR_INVALID, "region name longer than %d characters",
                            PD_NAME_MAX - 1);
        strcpy(out->allowed_regions[out->n_allowed++], q->regions[i]);
    }
    if (strlen(q->lead_region) >= PD_NAME_MAX)
        return merr_set(e, MERR_INVALID, "lead region name longer than %d characters",
                        PD_NAME_MAX - 1);
    strcpy(out->lead_region, q->lead_region);
    return pd_policy_parse_survival(q->survive[0] ? q->survive : "zone", &out->survival, e);
}

/* Policy boundaries are split points: one below the SQL catalog would move
 * it out of range 1, away from the transaction records SQL writes there. */
static int above_catalog(const pd_policy *pol, merr *e)
{
    mbuf min = MBUF_INIT;
    int rc = sql_policy_min_key(&min) ? merr_set(e, MERR_NOMEM, "out of memory") : 0;
    pd_key k = {min.data, min.len};
    if (!rc && pd_key_cmp(&pol->start, &k) < 0) {
        char hex[64] = "0x";
        for (size_t i = 0; i < min.len && 2 * i + 4 < sizeof(hex); i++)
            snprintf(hex + 2 + 2 * i, sizeof(hex) - 2 - 2 * i, "%02x", min.data[i]);
        rc = merr_set(e, MERR_INVALID,
                      "a policy must start at or above %s, where user tables begin: the keys "
                      "below (the SQL catalog) stay in range 1",
                      hex);
    }
    mbuf_free(&min);
    return rc;
}

static int start_write(node_pd *p, rpc_req *req, replica *r1, const char *name,
                       const pd_policy *pol, merr *e)
{
    write_ctx *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    c->p = p;
    c->req = req;
    c->del = pol == NULL;
    snprintf(c->name, sizeof(c->name), "%s", name);
    if (pol) {
        pd_policy_format(pol, c->text, sizeof(c->text));
        region_warning(p, pol, c->warning, sizeof(c->warning));
    }
    memcpy(c->key, POLICY_PREFIX, POLICY_PREFIX_LEN);
    memcpy(c->key + POLICY_PREFIX_LEN, c->name, strlen(c->name));
    range_write w = {.key = c->key,
                     .klen = POLICY_PREFIX_LEN + strlen(c->name),
                     .val = (const uint8_t *)c->text,
                     .vlen = strlen(c->text),
                     .del = c->del};
    p->refs++;
    if (replica_write(r1, &w, 1, mtime_mono_ns() + PD_OP_WAIT, on_policy_written, c, e)) {
        p->refs--;
        free(c);
        return e->code ? e->code : MERR_INTERNAL;
    }
    p->policy_writing = 1;
    return 0;
}

static void policy_serve(node_pd *p, rpc_req *req, replica *r1)
{
    Meridian__Pd__PolicyRequest *q =
        meridian__pd__policy_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable PolicyRequest", NULL, 0);
        return;
    }
    if (!r1) {
        /* Read and written at range 1's leaseholder only (the CLI follows
         * the hint): a follower's copy may lag. */
        policy_reply(p, req, NULL, 0, MERR_NOT_LEADER, "not range 1's leaseholder", NULL);
        goto out;
    }
    pd_named_policy *v = NULL;
    size_t n = node_pd_load_policies(r1, &v);
    merr e = {0};
    int rc = 0;
    if (strcmp(q->op, "list") == 0) {
        policy_reply(p, req, v, n, 0, NULL, NULL);
    } else if (p->policy_writing && (!strcmp(q->op, "set") || !strcmp(q->op, "rm"))) {
        /* One change at a time: each is checked against what is stored,
         * which must include the one before it. BUSY: the client retries. */
        rc = merr_set(&e, MERR_BUSY, "another policy change is being written: retry");
    } else if (strcmp(q->op, "set") == 0) {
        pd_policy pol;
        const char *name = q->policy ? q->policy->name : "";
        rc = q->policy ? policy_from(q->policy, &pol, &e)
                       : merr_set(&e, MERR_INVALID, "set: no policy given");
        if (!rc) rc = pd_policy_check_with(v, n, name, &pol, &e);
        if (!rc) rc = above_catalog(&pol, &e);
        if (!rc) rc = start_write(p, req, r1, name, &pol, &e);
    } else if (strcmp(q->op, "rm") == 0) {
        size_t i = 0;
        while (i < n && strcmp(v[i].name, q->name) != 0) i++;
        /* INVALID, not NOTFOUND: clients take that for a missing replica
         * and try elsewhere. */
        rc = i == n ? merr_set(&e, MERR_INVALID, "no policy named \"%s\"", q->name)
                    : start_write(p, req, r1, q->name, NULL, &e);
    } else {
        rc = merr_set(&e, MERR_INVALID, "op must be list, set or rm");
    }
    if (rc) policy_reply(p, req, NULL, 0, rc, e.msg, NULL);
    node_pd_policies_free(v, n);
out:
    meridian__pd__policy_request__free_unpacked(q, NULL);
}

void node_pd_on_policy(void *arg, rpc_req *req)
{
    node_pd_at_range1(arg, req, policy_serve);
}
