/* TrueTime-style interval clock: the pure core (tt_compute) and the thin
 * clock wrapper that feeds it readings through tt_clock_ops (see tt.h). */
#include "timesvc/tt.h"

#include "common/log.h"
#include "common/mtime.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ε is saturated here so that now ± ε can never overflow; anything near it is
 * far beyond any sane max_uncertainty anyway. */
#define TT_EPSILON_CAP (INT64_C(1) << 60)

const char *tt_status_name(tt_status s)
{
    switch (s) {
    case TT_SYNCHRONIZED: return "SYNCHRONIZED";
    case TT_FREE_RUNNING: return "FREE_RUNNING";
    case TT_STATIC: return "STATIC";
    case TT_UNKNOWN: break;
    }
    return "UNKNOWN";
}

const char *tt_source_name(tt_source_kind k)
{
    switch (k) {
    case TT_SOURCE_CHRONY: return "chrony";
    case TT_SOURCE_STATIC: return "static";
    case TT_SOURCE_KERNEL: return "kernel";
    }
    return "unknown";
}

void tt_config_default(tt_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->source = TT_SOURCE_CHRONY;
    cfg->max_drift_ppm = TT_DEFAULT_MAX_DRIFT_PPM;
    cfg->max_uncertainty_ns = TT_DEFAULT_MAX_UNCERTAINTY_NS;
    cfg->static_uncertainty_ns = TT_DEFAULT_STATIC_UNCERTAINTY;
    cfg->stale_after_ns = TT_DEFAULT_STALE_AFTER_NS;
}

int tt_config_check(const tt_config *cfg, merr *e)
{
    if (cfg->source != TT_SOURCE_CHRONY && cfg->source != TT_SOURCE_STATIC &&
        cfg->source != TT_SOURCE_KERNEL)
        return merr_set(e, MERR_INVALID, "unknown time source %d", (int)cfg->source);
    if (!(cfg->max_drift_ppm >= 0 && cfg->max_drift_ppm <= 1e6))
        return merr_set(e, MERR_INVALID, "max drift %g ppm out of range [0, 1e6]",
                        cfg->max_drift_ppm);
    if (cfg->max_uncertainty_ns <= 0 || cfg->max_uncertainty_ns >= TT_EPSILON_CAP)
        return merr_set(e, MERR_INVALID, "max uncertainty must be positive");
    if (cfg->static_uncertainty_ns < 0 || cfg->static_uncertainty_ns >= TT_EPSILON_CAP)
        return merr_set(e, MERR_INVALID, "static uncertainty must not be negative");
    if (cfg->stale_after_ns <= 0) return merr_set(e, MERR_INVALID, "stale-after must be positive");
    /* A skew beyond ±100 years is a typo, and would risk overflow below. */
    if (cfg->skew_ns > INT64_C(3155760000) * 1000000000 ||
        cfg->skew_ns < -INT64_C(3155760000) * 1000000000)
        return merr_set(e, MERR_INVALID, "clock skew out of range");
    return 0;
}

static int64_t abs64(int64_t v)
{
    return v == INT64_MIN ? INT64_MAX : v < 0 ? -v : v;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    /* both non-negative here */
    return a > TT_EPSILON_CAP - b ? TT_EPSILON_CAP : a + b;
}

int tt_compute(const tt_config *cfg, const tt_source_state *src, int64_t real_ns, int64_t mono_ns,
               tt_interval *out, merr *e)
{
    memset(out, 0, sizeof(*out));
    out->now_ns = real_ns + cfg->skew_ns;
    int64_t eps;
    tt_status st;
    if (cfg->source == TT_SOURCE_STATIC) {
        eps = cfg->static_uncertainty_ns;
        st = TT_STATIC;
    } else {
        if (!src->have_good) {
            out->status = out->source_status = TT_UNKNOWN;
            out->earliest_ns = out->latest_ns = out->now_ns;
            return merr_set(e, MERR_CLOCK,
                            "cannot vouch for time: no synchronised sample from the time "
                            "source yet%s%s",
                            src->last_error[0] ? ": " : "", src->last_error);
        }
        const tt_sample *s = &src->last_good;
        /* Age = how old the estimate was when we read it (by the real clock,
         * the only clock chronyd's timestamp shares with us) plus how long ago
         * we read it (by the monotonic clock, which no step can fool). */
        int64_t age_at_read = src->good_taken_real_ns - s->ref_real_ns;
        if (age_at_read < 0) age_at_read = 0; /* sub-offset noise */
        int64_t since_read = mono_ns - src->good_taken_mono_ns;
        if (since_read < 0) since_read = 0;
        int64_t age = sat_add(age_at_read, since_read);
        double drift = (double)age * cfg->max_drift_ppm / 1e6;
        int64_t drift_ns = drift >= (double)TT_EPSILON_CAP ? TT_EPSILON_CAP : (int64_t)ceil(drift);
        eps = sat_add(abs64(s->offset_ns), abs64(s->root_dispersion_ns));
        int64_t delay = abs64(s->root_delay_ns);
        eps = sat_add(eps, delay / 2 + (delay & 1)); /* round up */
        eps = sat_add(eps, drift_ns);
        out->age_ns = age;

        int64_t stale_age = sat_add(cfg->stale_after_ns, 3 * abs64(s->update_interval_ns));
        int answering = src->have_answer && !src->last_failed &&
                        mono_ns - src->last_ok_mono_ns <= cfg->stale_after_ns;
        if (answering && src->last_synchronized && age <= stale_age)
            st = TT_SYNCHRONIZED;
        else
            st = TT_FREE_RUNNING;
    }
    out->epsilon_ns = eps;
    out->earliest_ns = out->now_ns - eps;
    out->latest_ns = out->now_ns + eps;
    out->source_status = st;
    out->status = st;
    if (eps > cfg->max_uncertainty_ns) {
        out->status = TT_UNKNOWN;
        return merr_set(e, MERR_CLOCK,
                        "cannot vouch for time: uncertainty %.3fms exceeds the maximum %.3fms "
                        "(source %s, estimate age %.3fs%s%s)",
                        (double)eps / 1e6, (double)cfg->max_uncertainty_ns / 1e6,
                        tt_status_name(st), (double)out->age_ns / 1e9,
                        src->last_failed ? ", last query: " : "",
                        src->last_failed ? src->last_error : "");
    }
    return 0;
}

void tt_source_record(tt_source_state *src, const tt_sample *s, int64_t real_ns, int64_t mono_ns)
{
    src->have_answer = 1;
    src->last_failed = 0;
    src->last_error[0] = 0;
    src->last_ok_mono_ns = mono_ns;
    src->last_synchronized = s->synchronized;
    /* An unsynchronised report carries no usable bound: keep ageing the last
     * good one instead (its ε grows with age, so it stays a valid bound). */
    if (!s->synchronized) return;
    src->have_good = 1;
    src->last_good = *s;
    src->good_taken_real_ns = real_ns;
    src->good_taken_mono_ns = mono_ns;
}

void tt_source_record_failure(tt_source_state *src, const char *why)
{
    src->last_failed = 1;
    snprintf(src->last_error, sizeof(src->last_error), "%s", why ? why : "query failed");
}

/* ---- the clock wrapper ---- */

static int64_t os_real(void *ctx)
{
    (void)ctx;
    return mtime_real_ns();
}

static int64_t os_mono(void *ctx)
{
    (void)ctx;
    return mtime_mono_ns();
}

const tt_clock_ops tt_os_clock_ops = {os_real, os_mono, NULL};

int tt_clock_init(tt_clock *c, const tt_config *cfg, const tt_clock_ops *ops, merr *e)
{
    memset(c, 0, sizeof(*c));
    int rc = tt_config_check(cfg, e);
    if (rc) return rc;
    c->cfg = *cfg;
    c->ops = ops ? *ops : tt_os_clock_ops;
    if (cfg->source == TT_SOURCE_STATIC)
        MLOG_W("timesvc", "static time source: no time daemon checks this clock", "epsilon_ms=%.3f",
               (double)cfg->static_uncertainty_ns / 1e6);
    return 0;
}

void tt_clock_feed(tt_clock *c, const tt_sample *s)
{
    int64_t real = c->ops.real_ns(c->ops.ctx);
    int64_t mono = c->ops.mono_ns(c->ops.ctx);
    tt_source_record(&c->src, s, real, mono);
}

void tt_clock_feed_failure(tt_clock *c, const char *why)
{
    tt_source_record_failure(&c->src, why);
}

int tt_now(tt_clock *c, tt_interval *out, merr *e)
{
    /* Real first, then monotonic: the age is then measured up to a moment a
     * little after the reading, so ε errs large, never small. */
    int64_t real = c->ops.real_ns(c->ops.ctx);
    int64_t mono = c->ops.mono_ns(c->ops.ctx);
    return tt_compute(&c->cfg, &c->src, real, mono, out, e);
}

void tt_read(tt_clock *c, tt_interval *out, merr *e)
{
    (void)tt_now(c, out, e);
}

int tt_after(tt_clock *c, int64_t t_ns, merr *e)
{
    tt_interval iv;
    int rc = tt_now(c, &iv, e);
    if (rc) return rc;
    return iv.earliest_ns > t_ns;
}

int tt_before(tt_clock *c, int64_t t_ns, merr *e)
{
    tt_interval iv;
    int rc = tt_now(c, &iv, e);
    if (rc) return rc;
    return iv.latest_ns < t_ns;
}
