/* Fault injection decisions, spec parsing and reconnect backoff (fault.h). */
#include "rpc/fault.h"
#include "common/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rpc_rng_seed(rpc_rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t rpc_rng_next(rpc_rng *r)
{
    /* splitmix64: tiny state, good enough for fault decisions and jitter. */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double rpc_rng_double(rpc_rng *r)
{
    return (double)(rpc_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

void rpc_backoff_init(rpc_backoff *b, int64_t initial_ns, int64_t max_ns)
{
    b->initial_ns = initial_ns > 0 ? initial_ns : 1;
    b->max_ns = max_ns >= b->initial_ns ? max_ns : b->initial_ns;
    b->attempt = 0;
}

int64_t rpc_backoff_next(rpc_backoff *b, double jitter01)
{
    int64_t base = b->initial_ns;
    for (unsigned i = 0; i < b->attempt && base < b->max_ns; i++) base *= 2;
    if (base > b->max_ns) base = b->max_ns;
    if (b->attempt < 64) b->attempt++;
    if (jitter01 < 0) jitter01 = 0;
    if (jitter01 >= 1) jitter01 = 0.999999;
    int64_t half = base / 2;
    return half + (int64_t)((double)(base - half) * jitter01);
}

void rpc_backoff_reset(rpc_backoff *b)
{
    b->attempt = 0;
}

void rpc_faults_init(rpc_faults *f, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    rpc_rng_seed(&f->rng, seed);
}

void rpc_faults_clear(rpc_faults *f)
{
    free(f->rules);
    free(f->lat);
    f->rules = NULL;
    f->lat = NULL;
    f->nrules = f->nlat = 0;
}

void rpc_faults_free(rpc_faults *f)
{
    rpc_faults_clear(f);
}

int rpc_faults_active(const rpc_faults *f)
{
    return f->nrules > 0 || f->nlat > 0;
}

static int prob_ok(double p)
{
    return p >= 0.0 && p <= 1.0;
}

int rpc_faults_set_rule(rpc_faults *f, const rpc_fault_rule *rule, merr *e)
{
    if (!prob_ok(rule->drop) || !prob_ok(rule->dup) || !prob_ok(rule->reorder))
        return merr_set(e, MERR_INVALID, "fault probabilities must be in [0, 1]");
    if (rule->delay_ns < 0 || rule->jitter_ns < 0 || rule->hold_ns < 0)
        return merr_set(e, MERR_INVALID, "fault durations must not be negative");
    for (size_t i = 0; i < f->nrules; i++) {
        if (f->rules[i].peer == rule->peer) {
            f->rules[i] = *rule;
            return 0;
        }
    }
    rpc_fault_rule *nr = realloc(f->rules, (f->nrules + 1) * sizeof(*nr));
    if (!nr) return merr_set(e, MERR_NOMEM, "fault rule: out of memory");
    f->rules = nr;
    f->rules[f->nrules++] = *rule;
    return 0;
}

int rpc_faults_set_latency(rpc_faults *f, const char *from, const char *to, int64_t ns, merr *e)
{
    if (!from[0] || !to[0] || strlen(from) >= RPC_REGION_MAX || strlen(to) >= RPC_REGION_MAX)
        return merr_set(e, MERR_INVALID, "latency: region names must be 1..%d characters",
                        RPC_REGION_MAX - 1);
    if (ns < 0) return merr_set(e, MERR_INVALID, "latency must not be negative");
    for (size_t i = 0; i < f->nlat; i++) {
        if (!strcmp(f->lat[i].from, from) && !strcmp(f->lat[i].to, to)) {
            f->lat[i].ns = ns;
            return 0;
        }
    }
    rpc_fault_latency *nl = realloc(f->lat, (f->nlat + 1) * sizeof(*nl));
    if (!nl) return merr_set(e, MERR_NOMEM, "latency: out of memory");
    f->lat = nl;
    rpc_fault_latency *l = &f->lat[f->nlat++];
    snprintf(l->from, sizeof(l->from), "%s", from);
    snprintf(l->to, sizeof(l->to), "%s", to);
    l->ns = ns;
    return 0;
}

const rpc_fault_rule *rpc_faults_rule(const rpc_faults *f, uint64_t peer)
{
    const rpc_fault_rule *any = NULL;
    for (size_t i = 0; i < f->nrules; i++) {
        if (f->rules[i].peer == peer) return &f->rules[i];
        if (f->rules[i].peer == RPC_FAULT_ANY_PEER) any = &f->rules[i];
    }
    return any;
}

int rpc_faults_in_blocked(const rpc_faults *f, uint64_t peer)
{
    const rpc_fault_rule *r = rpc_faults_rule(f, peer);
    return r && r->block_in;
}

static int64_t region_latency(const rpc_faults *f, const char *a, const char *b)
{
    if (!a || !b || !a[0] || !b[0]) return 0;
    for (size_t i = 0; i < f->nlat; i++)
        if (!strcmp(f->lat[i].from, a) && !strcmp(f->lat[i].to, b)) return f->lat[i].ns;
    return 0;
}

void rpc_faults_out(rpc_faults *f, uint64_t peer, const char *my_region, const char *peer_region,
                    rpc_fault_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->copies = 1;
    v->delay_ns = region_latency(f, my_region, peer_region);
    const rpc_fault_rule *r = rpc_faults_rule(f, peer);
    if (!r) return;
    if (r->block_out) {
        v->partitioned = 1;
        v->copies = 0;
        return;
    }
    /* Draw only for the faults that are on, so a rule's decisions do not
     * depend on which other knobs exist. */
    if (r->drop > 0 && rpc_rng_double(&f->rng) < r->drop) {
        v->dropped = 1;
        v->copies = 0;
        return;
    }
    if (r->dup > 0 && rpc_rng_double(&f->rng) < r->dup) v->copies = 2;
    v->delay_ns += r->delay_ns;
    if (r->jitter_ns > 0) v->delay_ns += (int64_t)(rpc_rng_double(&f->rng) * (double)r->jitter_ns);
    if (r->reorder > 0 && rpc_rng_double(&f->rng) < r->reorder) {
        v->reordered = 1;
        v->delay_ns += r->hold_ns ? r->hold_ns : RPC_REORDER_HOLD_DEFAULT_NS;
    }
}

void rpc_locality_region(const char *locality, char *out, size_t cap)
{
    if (cap) out[0] = 0;
    if (!locality) return;
    const char *p = locality;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 7 && !strncmp(p, "region=", 7)) {
            size_t m = n - 7 < cap - 1 ? n - 7 : cap - 1;
            memcpy(out, p + 7, m);
            out[m] = 0;
            return;
        }
        if (!end) break;
        p = end + 1;
    }
}

static int parse_prob(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !prob_ok(d)) return -1;
    *out = d;
    return 0;
}

/* One "k=v,k=v" rule clause (modified in place). */
static int parse_rule(rpc_faults *f, char *clause, merr *e)
{
    rpc_fault_rule r;
    memset(&r, 0, sizeof(r));
    r.peer = RPC_FAULT_ANY_PEER;
    char *save = NULL;
    for (char *item = strtok_r(clause, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) return merr_set(e, MERR_INVALID, "fault spec: '%s' is not key=value", item);
        *eq = 0;
        const char *k = item, *v = eq + 1;
        int bad = 0;
        if (!strcmp(k, "peer")) {
            int64_t id;
            if (!strcmp(v, "*"))
                r.peer = RPC_FAULT_ANY_PEER;
            else if (cli_parse_int(v, &id) || id < 0)
                bad = 1;
            else
                r.peer = (uint64_t)id;
        } else if (!strcmp(k, "drop"))
            bad = parse_prob(v, &r.drop);
        else if (!strcmp(k, "dup"))
            bad = parse_prob(v, &r.dup);
        else if (!strcmp(k, "reorder"))
            bad = parse_prob(v, &r.reorder);
        else if (!strcmp(k, "delay"))
            bad = cli_parse_duration(v, &r.delay_ns) != 0;
        else if (!strcmp(k, "jitter"))
            bad = cli_parse_duration(v, &r.jitter_ns) != 0;
        else if (!strcmp(k, "hold"))
            bad = cli_parse_duration(v, &r.hold_ns) != 0;
        else if (!strcmp(k, "partition")) {
            if (!strcmp(v, "out"))
                r.block_out = 1;
            else if (!strcmp(v, "in"))
                r.block_in = 1;
            else if (!strcmp(v, "both"))
                r.block_out = r.block_in = 1;
            else if (!strcmp(v, "none"))
                r.block_out = r.block_in = 0;
            else
                bad = 1;
        } else {
            return merr_set(e, MERR_INVALID, "fault spec: unknown key '%s'", k);
        }
        if (bad) return merr_set(e, MERR_INVALID, "fault spec: bad value '%s' for %s", v, k);
    }
    return rpc_faults_set_rule(f, &r, e);
}

static int parse_latency(rpc_faults *f, char *v, merr *e)
{
    char *c1 = strchr(v, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2) return merr_set(e, MERR_INVALID, "fault spec: latency wants A:B:DURATION");
    *c1 = *c2 = 0;
    int64_t ns;
    if (cli_parse_duration(c2 + 1, &ns))
        return merr_set(e, MERR_INVALID, "fault spec: bad latency '%s'", c2 + 1);
    int rc = rpc_faults_set_latency(f, v, c1 + 1, ns, e);
    if (!rc) rc = rpc_faults_set_latency(f, c1 + 1, v, ns, e);
    return rc;
}

int rpc_faults_parse(rpc_faults *f, const char *spec, merr *e)
{
    if (!spec) return 0;
    char *copy = strdup(spec);
    if (!copy) return merr_set(e, MERR_NOMEM, "fault spec: out of memory");
    int rc = 0;
    char *save = NULL;
    for (char *cl = strtok_r(copy, ";", &save); cl; cl = strtok_r(NULL, ";", &save)) {
        while (*cl == ' ') cl++;
        if (!*cl) continue;
        if (!strncmp(cl, "latency=", 8))
            rc = parse_latency(f, cl + 8, e);
        else
            rc = parse_rule(f, cl, e);
        if (rc) break;
    }
    free(copy);
    return rc;
}
