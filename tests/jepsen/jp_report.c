/* Checker reports: verdict, anomaly counts and the explanation text. */
#include "tests/jepsen/jp_check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const anomaly_names[JP_A__COUNT] = {
    [JP_A_NONLINEAR] = "nonlinearizable",
    [JP_A_G0] = "G0",
    [JP_A_G1A] = "G1a",
    [JP_A_G1B] = "G1b",
    [JP_A_G1C] = "G1c",
    [JP_A_GSINGLE] = "G-single",
    [JP_A_G2] = "G2",
    [JP_A_REALTIME] = "realtime",
    [JP_A_SESSION] = "session",
    [JP_A_INCOMPATIBLE] = "incompatible-order",
    [JP_A_DUPLICATE] = "duplicate",
    [JP_A_LOST] = "lost",
    [JP_A_GARBAGE] = "garbage-read",
    [JP_A_INTERNAL] = "internal",
    [JP_A_UNEXPECTED] = "unexpected",
    [JP_A_WRONG_TOTAL] = "wrong-total",
    [JP_A_NEGATIVE] = "negative-balance",
    [JP_A_RECOVERED] = "recovered",
    [JP_A_INDETERMINATE] = "indeterminate",
};

const char *jp_anomaly_name(jp_anomaly a)
{
    return (unsigned)a < JP_A__COUNT ? anomaly_names[a] : "?";
}

const char *jp_verdict_name(jp_verdict v)
{
    switch (v) {
    case JP_VALID: return "valid";
    case JP_INVALID: return "invalid";
    case JP_UNKNOWN: return "unknown";
    }
    return "?";
}

void jp_report_init(jp_report *r)
{
    memset(r, 0, sizeof(*r));
    r->verdict = JP_VALID;
}

void jp_report_free(jp_report *r)
{
    mbuf_free(&r->text);
    memset(r, 0, sizeof(*r));
}

static void vappend(jp_report *r, const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    /* A report that cannot grow keeps its verdict; only the text is short. */
    (void)mbuf_printf(&r->text, "%s: %s\n", prefix, line);
}

void jp_report_add(jp_report *r, jp_anomaly a, const char *fmt, ...)
{
    va_list ap;
    r->count[a]++;
    if (a != JP_A_RECOVERED && a != JP_A_INDETERMINATE) r->verdict = JP_INVALID;
    va_start(ap, fmt);
    vappend(r, jp_anomaly_name(a), fmt, ap);
    va_end(ap);
}

void jp_report_unknown(jp_report *r, const char *fmt, ...)
{
    va_list ap;
    if (r->verdict != JP_INVALID) r->verdict = JP_UNKNOWN;
    va_start(ap, fmt);
    vappend(r, "unknown", fmt, ap);
    va_end(ap);
}

int jp_report_has(const jp_report *r, jp_anomaly a)
{
    return r->count[a] > 0;
}
