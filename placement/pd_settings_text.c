/* Cluster settings by name (pd_settings_text.h). One table maps each name to
 * its field and kind, so get, set and list cannot disagree. */
#include "placement/pd_settings_text.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"

typedef enum kind { K_BYTES, K_DURATION, K_DOUBLE, K_COUNT } kind;

typedef struct setting {
    const char *name;
    kind k;
    size_t off;
    const char *help;
} setting;

#define F(field) offsetof(pd_settings, field)
static const setting SETTINGS[] = {
    {"range.max_bytes", K_BYTES, F(range_max_bytes), "split a range above this size"},
    {"range.min_bytes", K_BYTES, F(range_min_bytes), "merge ranges below this (<= max/2)"},
    {"range.split_qps", K_DOUBLE, F(range_split_qps),
     "split a range above reads+writes/s (at its load median)"},
    {"range.merge_qps_fraction", K_DOUBLE, F(merge_qps_fraction),
     "cold enough to merge: qps below this x split_qps (<= 0.5)"},
    {"range.merge_cooldown", K_DURATION, F(merge_cooldown_ns),
     "no merge this soon after a split or merge"},
    {"range.replication_factor", K_COUNT, F(default_replication_factor),
     "voters per range (1, 3 or 5)"},
    {"node.dead_timeout", K_DURATION, F(dead_timeout_ns),
     "a node silent this long is dead: its replicas are replaced"},
    {"node.suspect_timeout", K_DURATION, F(suspect_timeout_ns),
     "a node silent this long gets nothing new"},
    {"rebalance.threshold", K_DOUBLE, F(rebalance_threshold),
     "replica counts may differ from the mean by this fraction"},
    {"rebalance.max_moves", K_COUNT, F(max_moves), "replica moves under way cluster-wide"},
    {"node.max_fullness", K_DOUBLE, F(max_fullness), "never place a replica on a fuller node"},
    {"move.learner_timeout", K_DURATION, F(learner_timeout_ns),
     "a learner not caught up this long is removed (its move ends)"},
};
#define N_SETTINGS (sizeof(SETTINGS) / sizeof(SETTINGS[0]))

const char *pd_setting_name(size_t i)
{
    return i < N_SETTINGS ? SETTINGS[i].name : NULL;
}

const char *pd_setting_help(size_t i)
{
    return i < N_SETTINGS ? SETTINGS[i].help : NULL;
}

static const setting *find(const char *name)
{
    for (size_t i = 0; name && i < N_SETTINGS; i++)
        if (strcmp(SETTINGS[i].name, name) == 0) return &SETTINGS[i];
    return NULL;
}

int pd_setting_get(const pd_settings *s, const char *name, char *buf, size_t cap, merr *e)
{
    const setting *d = find(name);
    if (!d)
        return merr_set(e, MERR_INVALID,
                        "unknown setting \"%s\" (see `meridian debug settings list`)",
                        name ? name : "");
    const char *p = (const char *)s + d->off;
    switch (d->k) {
    case K_BYTES: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        snprintf(buf, cap, "%llu", (unsigned long long)v);
        break;
    }
    case K_DURATION: {
        int64_t v;
        memcpy(&v, p, sizeof(v));
        cli_format_duration(v, buf, cap);
        break;
    }
    case K_DOUBLE: {
        double v;
        memcpy(&v, p, sizeof(v));
        snprintf(buf, cap, "%g", v);
        break;
    }
    case K_COUNT: {
        /* max_moves is a uint32_t, the factor an int: both 4 bytes */
        int32_t v;
        memcpy(&v, p, sizeof(v));
        snprintf(buf, cap, "%ld", (long)v);
        break;
    }
    }
    return 0;
}

int pd_setting_set(pd_settings *s, const char *name, const char *value, merr *e)
{
    const setting *d = find(name);
    if (!d)
        return merr_set(e, MERR_INVALID,
                        "unknown setting \"%s\" (see `meridian debug settings list`)",
                        name ? name : "");
    if (!value || !*value) return merr_set(e, MERR_INVALID, "%s: a value is needed", d->name);
    pd_settings t = *s;
    char *p = (char *)&t + d->off;
    int64_t iv = 0;
    double dv = 0;
    char *end = NULL;
    switch (d->k) {
    case K_BYTES:
        if (cli_parse_size(value, &iv) || iv < 0)
            return merr_set(e, MERR_INVALID, "%s: \"%s\" is not a size (e.g. 65536, 64MiB)",
                            d->name, value);
        uint64_t u = (uint64_t)iv;
        memcpy(p, &u, sizeof(u));
        break;
    case K_DURATION:
        if (cli_parse_duration(value, &iv) || iv < 0)
            return merr_set(e, MERR_INVALID, "%s: \"%s\" is not a duration (e.g. 30s, 500ms)",
                            d->name, value);
        memcpy(p, &iv, sizeof(iv));
        break;
    case K_DOUBLE:
        dv = strtod(value, &end);
        if (end == value || *end || dv != dv)
            return merr_set(e, MERR_INVALID, "%s: \"%s\" is not a number", d->name, value);
        memcpy(p, &dv, sizeof(dv));
        break;
    case K_COUNT:
        if (cli_parse_int(value, &iv) || iv < 0 || iv > 1000000)
            return merr_set(e, MERR_INVALID, "%s: \"%s\" is not a count", d->name, value);
        int32_t c = (int32_t)iv;
        memcpy(p, &c, sizeof(c));
        break;
    }
    merr ve = {0};
    if (pd_settings_validate(&t, &ve)) return merr_set(e, MERR_INVALID, "%s", ve.msg);
    *s = t;
    return 0;
}
