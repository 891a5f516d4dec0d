/* Named placement policies: checks and the canonical text form
 * (pd_policy_text.h). */
#include "common/buf.h"
#include "placement/pd_policy_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

int pd_policy_name_check(const char *name, merr *e)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0) return merr_set(e, MERR_INVALID, "a policy needs a name");
    if (n >= PD_POLICY_NAME_MAX)
        return merr_set(e, MERR_INVALID, "policy name \"%.20s...\" is longer than %d characters",
                        name, PD_POLICY_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if (!name_char(name[i]))
            return merr_set(e, MERR_INVALID,
                            "policy name \"%s\": only letters, digits, '_', '.' and '-'", name);
    return 0;
}

/* Region names as `meridian start --locality` accepts them, so a policy can
 * name any region a node can be in and its text form needs no quoting. */
static int region_check(const char *r, const char *what, merr *e)
{
    size_t n = strnlen(r, PD_NAME_MAX);
    if (n == 0) return merr_set(e, MERR_INVALID, "%s: empty region name", what);
    if (n >= PD_NAME_MAX)
        return merr_set(e, MERR_INVALID, "%s: region name longer than %d characters", what,
                        PD_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return merr_set(e, MERR_INVALID,
                            "%s: region \"%s\": only lower-case letters, digits and '-'", what, r);
    return 0;
}

int pd_policy_check(const pd_policy *p, merr *e)
{
    if (p->replication_factor != 1 && p->replication_factor != 3 && p->replication_factor != 5)
        return merr_set(e, MERR_INVALID, "replicas must be 1, 3 or 5 (not %d)",
                        p->replication_factor);
    if (p->survival != PD_SURVIVE_ZONE && p->survival != PD_SURVIVE_REGION)
        return merr_set(e, MERR_INVALID, "survive must be zone or region");
    if (p->n_allowed < 0 || p->n_allowed > PD_MAX_REGIONS)
        return merr_set(e, MERR_INVALID, "at most %d regions", PD_MAX_REGIONS);
    int rc;
    bool lead_allowed = p->n_allowed == 0;
    for (int i = 0; i < p->n_allowed; i++) {
        if ((rc = region_check(p->allowed_regions[i], "regions", e))) return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(p->allowed_regions[i], p->allowed_regions[j]) == 0)
                return merr_set(e, MERR_INVALID, "regions: \"%s\" is listed twice",
                                p->allowed_regions[i]);
        lead_allowed |= strcmp(p->allowed_regions[i], p->lead_region) == 0;
    }
    if (p->lead_region[0] && (rc = region_check(p->lead_region, "lead_region", e))) return rc;
    if (p->lead_region[0] && !lead_allowed)
        return merr_set(e, MERR_INVALID,
                        "lead_region \"%s\" is not among the allowed regions: no replica, "
                        "hence no leader, could be there",
                        p->lead_region);
    if (p->start.len == 0 || p->start.p[0] < PD_POLICY_USER_START)
        return merr_set(e, MERR_INVALID,
                        "a policy must start at or above 0x01: system keys (0x00...) stay in "
                        "range 1 under its own policy");
    if (p->end.len && pd_key_cmp(&p->start, &p->end) >= 0)
        return merr_set(e, MERR_INVALID, "the start key must be below the end key");
    /* The model's own snapshot check has the last word. */
    pd_cluster c;
    pd_cluster_init(&c);
    c.policies = (pd_policy *)p;
    c.n_policies = 1;
    return pd_cluster_validate(&c, e);
}

bool pd_policy_overlaps(const pd_policy *a, const pd_policy *b)
{
    bool a_before = a->end.len && pd_key_cmp(&a->end, &b->start) <= 0;
    bool b_before = b->end.len && pd_key_cmp(&b->end, &a->start) <= 0;
    return !a_before && !b_before;
}

int pd_policy_check_with(const pd_named_policy *v, size_t n, const char *name, const pd_policy *p,
                         merr *e)
{
    int rc = pd_policy_name_check(name, e);
    if (!rc) rc = pd_policy_check(p, e);
    if (rc) return rc;
    size_t others = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0) continue;
        others++;
        if (pd_policy_overlaps(&v[i].p, p))
            return merr_set(e, MERR_INVALID,
                            "the span overlaps policy \"%s\" (policies never overlap: remove or "
                            "narrow it first)",
                            v[i].name);
    }
    if (others >= PD_POLICY_MAX)
        return merr_set(e, MERR_INVALID, "at most %d policies", PD_POLICY_MAX);
    return 0;
}

int pd_policy_add_all(pd_cluster *c, const pd_named_policy *v, size_t n, size_t *left_out)
{
    size_t base = c->n_policies;
    *left_out = 0;
    for (size_t i = 0; i < n; i++) {
        bool overlaps = false;
        for (size_t k = base; k < c->n_policies && !overlaps; k++)
            overlaps = pd_policy_overlaps(&c->policies[k], &v[i].p);
        if (overlaps) {
            (*left_out)++;
            continue;
        }
        int rc = pd_cluster_add_policy(c, &v[i].p);
        if (rc) return rc;
    }
    return 0;
}

int pd_policy_parse_regions(const char *csv, pd_policy *p, merr *e)
{
    p->n_allowed = 0;
    memset(p->allowed_regions, 0, sizeof(p->allowed_regions));
    for (const char *s = csv; s && *s;) {
        size_t l = strcspn(s, ",");
        if (p->n_allowed == PD_MAX_REGIONS)
            return merr_set(e, MERR_INVALID, "at most %d regions", PD_MAX_REGIONS);
        if (l == 0 || l >= PD_NAME_MAX)
            return merr_set(e, MERR_INVALID, "regions \"%s\": empty or too long a name", csv);
        char *r = p->allowed_regions[p->n_allowed++];
        memcpy(r, s, l);
        r[l] = 0;
        int rc = region_check(r, "regions", e);
        if (rc) return rc;
        s += l;
        if (*s == ',' && !*++s)
            return merr_set(e, MERR_INVALID, "regions \"%s\": ends with a comma", csv);
    }
    return 0;
}

int pd_policy_parse_survival(const char *s, pd_survival *out, merr *e)
{
    if (s && strcmp(s, "zone") == 0)
        *out = PD_SURVIVE_ZONE;
    else if (s && strcmp(s, "region") == 0)
        *out = PD_SURVIVE_REGION;
    else
        return merr_set(e, MERR_INVALID, "survive \"%s\": must be zone or region", s ? s : "");
    return 0;
}

const char *pd_survival_name(pd_survival s)
{
    return s == PD_SURVIVE_REGION ? "region" : "zone";
}

void pd_policy_regions_text(const pd_policy *p, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < p->n_allowed && len < cap; i++) {
        int k = snprintf(buf + len, cap - len, "%s%s", i ? "," : "", p->allowed_regions[i]);
        if (k > 0) len += (size_t)k;
    }
}

static size_t hex_put(char *buf, size_t cap, size_t len, const pd_key *k)
{
    static const char digits[] = "0123456789abcdef";
    if (k->len && len + 2 < cap) {
        buf[len++] = '0';
        buf[len++] = 'x';
    }
    for (size_t i = 0; i < k->len && len + 2 < cap; i++) {
        buf[len++] = digits[k->p[i] >> 4];
        buf[len++] = digits[k->p[i] & 15];
    }
    if (len < cap) buf[len] = 0;
    return len;
}

size_t pd_policy_format(const pd_policy *p, char *buf, size_t cap)
{
    if (!cap) return 0;
    size_t len = 0;
    mstr_appendf(buf, cap, &len, "replicas=%d start=", p->replication_factor);
    if (len < cap) len = hex_put(buf, cap, len, &p->start);
    mstr_appendf(buf, cap, &len, " end=");
    if (len < cap) len = hex_put(buf, cap, len, &p->end);
    if (p->n_allowed) {
        char r[PD_MAX_REGIONS * PD_NAME_MAX];
        pd_policy_regions_text(p, r, sizeof(r));
        mstr_appendf(buf, cap, &len, " regions=%s", r);
    }
    if (p->lead_region[0]) mstr_appendf(buf, cap, &len, " lead_region=%s", p->lead_region);
    mstr_appendf(buf, cap, &len, " survive=%s", pd_survival_name(p->survival));
    return len < cap ? len : cap - 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* canonical text is lower case */
}

static int hex_key(const char *v, size_t n, pd_key *k, merr *e)
{
    *k = (pd_key){0};
    if (n == 0) return 0;
    if (n < 4 || n % 2 || v[0] != '0' || v[1] != 'x')
        return merr_set(e, MERR_INVALID, "policy text: a key must be 0x and hex digits");
    size_t kl = (n - 2) / 2;
    uint8_t *b = malloc(kl);
    if (!b) return merr_set(e, MERR_NOMEM, "out of memory");
    for (size_t i = 0; i < kl; i++) {
        int hi = hexval(v[2 + 2 * i]), lo = hexval(v[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            free(b);
            return merr_set(e, MERR_INVALID, "policy text: a key must be 0x and hex digits");
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    k->p = b;
    k->len = kl;
    return 0;
}

void pd_policy_free(pd_policy *p)
{
    pd_key_free(&p->start);
    pd_key_free(&p->end);
}

int pd_policy_parse(const char *text, size_t len, pd_policy *out, merr *e)
{
    memset(out, 0, sizeof(*out));
    bool have_rf = false, have_start = false, have_end = false, have_surv = false;
    int rc = 0;
    char val[PD_POLICY_TEXT_MAX];
    for (size_t i = 0; i < len && !rc;) {
        if (text[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && text[j] != ' ') j++;
        const char *f = text + i, *eq = memchr(f, '=', j - i);
        size_t fl = eq ? (size_t)(eq - f) : 0, vl = eq ? (size_t)(text + j - eq - 1) : 0;
        i = j;
        if (!eq || vl >= sizeof(val)) {
            rc = merr_set(e, MERR_INVALID, "policy text: \"%.*s\" is not name=value", (int)fl, f);
            break;
        }
        memcpy(val, eq + 1, vl);
        val[vl] = 0;
#define FIELD(s) (fl == sizeof(s) - 1 && memcmp(f, s, fl) == 0)
        int64_t iv;
        if (FIELD("replicas") && !have_rf) {
            have_rf = true;
            if (cli_parse_int(val, &iv) || iv < 0 || iv > 100)
                rc = merr_set(e, MERR_INVALID, "policy text: replicas \"%s\"", val);
            else
                out->replication_factor = (int)iv;
        } else if (FIELD("start") && !have_start) {
            have_start = true;
            rc = hex_key(val, vl, &out->start, e);
        } else if (FIELD("end") && !have_end) {
            have_end = true;
            rc = hex_key(val, vl, &out->end, e);
        } else if (FIELD("regions") && !out->n_allowed) {
            rc = pd_policy_parse_regions(val, out, e);
        } else if (FIELD("lead_region") && !out->lead_region[0] && vl && vl < PD_NAME_MAX) {
            memcpy(out->lead_region, val, vl + 1);
        } else if (FIELD("survive") && !have_surv) {
            have_surv = true;
            rc = pd_policy_parse_survival(val, &out->survival, e);
        } else {
            rc = merr_set(e, MERR_INVALID, "policy text: unexpected field \"%.*s\"", (int)fl, f);
        }
#undef FIELD
    }
    if (!rc && (!have_rf || !have_start || !have_end || !have_surv))
        rc = merr_set(e, MERR_INVALID, "policy text: replicas, start, end and survive are needed");
    if (!rc) rc = pd_policy_check(out, e);
    if (rc) {
        pd_policy_free(out);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}
