/* AS OF SYSTEM TIME: finding the clause and parsing its expression (asof.h).
 * Pure: wall-clock forms become Unix µs or an age; the KV resolves "now". */
#include "sql/asof.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql_int.h"

#define FORMS                                                                                      \
    "expected an interval like '-10s', a UTC time like '2026-11-26 12:00:00', a timestamp "        \
    "from meridian_now() or follower_read_timestamp()"

/* The digits at p[*i] (at most max of them) as a number; -1 when none. */
static int64_t digits(const char *p, size_t n, size_t *i, int max)
{
    int64_t v = 0;
    int k = 0;
    while (*i < n && k < max && isdigit((unsigned char)p[*i])) {
        v = v * 10 + (p[*i] - '0');
        (*i)++, k++;
    }
    return k ? v : -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so no timegm() and no time zone are involved. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int month_days(int64_t y, int64_t m)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return md[m - 1] + (m == 2 && leap);
}

/* YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z | ±HH[:MM]] -> Unix µs (UTC). */
static int parse_time(const char *p, size_t n, uint64_t *us)
{
    size_t i = 0;
    int64_t y = digits(p, n, &i, 4), mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (y < 1970 || i != 4 || i >= n || p[i++] != '-') return -1;
    if ((mo = digits(p, n, &i, 2)) < 1 || mo > 12 || i >= n || p[i++] != '-') return -1;
    if ((d = digits(p, n, &i, 2)) < 1 || d > month_days(y, mo)) return -1;
    if (i < n && (p[i] == ' ' || p[i] == 'T' || p[i] == 't')) {
        i++;
        if ((h = digits(p, n, &i, 2)) < 0 || h > 23 || i >= n || p[i++] != ':') return -1;
        if ((mi = digits(p, n, &i, 2)) < 0 || mi > 59) return -1;
        if (i < n && p[i] == ':') {
            i++;
            if ((sec = digits(p, n, &i, 2)) < 0 || sec > 59) return -1;
            if (i < n && p[i] == '.') {
                i++;
                size_t f0 = i;
                if ((frac = digits(p, n, &i, 6)) < 0) return -1;
                for (size_t k = i - f0; k < 6; k++) frac *= 10;
                if (i < n && isdigit((unsigned char)p[i])) return -1; /* finer than 1 µs */
            }
        }
    }
    int64_t off = 0;
    if (i < n && (p[i] == 'Z' || p[i] == 'z')) {
        i++;
    } else if (i < n && (p[i] == '+' || p[i] == '-')) {
        int sign = p[i++] == '-' ? -1 : 1;
        int64_t oh = digits(p, n, &i, 2), om = 0;
        if (oh < 0 || oh > 23) return -1;
        if (i < n && p[i] == ':') i++;
        if (i < n && (om = digits(p, n, &i, 2)) > 59) return -1;
        off = sign * (oh * 3600 + (om > 0 ? om : 0) * 60);
    }
    if (i != n) return -1;
    int64_t s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    if (s < 0) return -1;
    *us = (uint64_t)s * 1000000u + (uint64_t)frac;
    return 0;
}

/* [-]<num><unit>... (h m s ms us) -> µs ago. 1 when positive (a future). */
static int parse_interval(const char *p, size_t n, uint64_t *ago)
{
    static const struct {
        const char *u;
        double us;
    } units[] = {{"ms", 1e3}, {"us", 1}, {"h", 3600e6}, {"m", 60e6}, {"s", 1e6}};
    size_t i = 0;
    int neg = p[0] == '-';
    if (p[0] == '-' || p[0] == '+') i++;
    double total = 0;
    if (i >= n) return -1;
    while (i < n) {
        size_t s = i;
        while (i < n && isdigit((unsigned char)p[i])) i++;
        if (i < n && p[i] == '.') {
            i++;
            while (i < n && isdigit((unsigned char)p[i])) i++;
        }
        if (i == s || (i == s + 1 && p[s] == '.')) return -1;
        char num[64];
        if (i - s >= sizeof(num)) return -1;
        memcpy(num, p + s, i - s);
        num[i - s] = 0;
        size_t k = 0;
        for (; k < sizeof(units) / sizeof(units[0]); k++) {
            size_t ul = strlen(units[k].u);
            if (i + ul <= n && !strncasecmp(p + i, units[k].u, ul)) break;
        }
        if (k == sizeof(units) / sizeof(units[0])) return -1;
        i += strlen(units[k].u);
        total += strtod(num, NULL) * units[k].us;
    }
    if (total >= 1e15) return -1; /* decades: a typo, not a read */
    if (total > 0 && !neg) return 1;
    *ago = (uint64_t)(total + 0.5);
    return 0;
}

int sql_asof_parse(const char *expr, size_t n, sql_kv_at *at, merr *e)
{
    memset(at, 0, sizeof(*at));
    size_t pos = 0;
    char *text = strndup(expr, n);
    if (!text) return merr_set(e, MERR_NOMEM, "out of memory");
    sql_tok t = sql_lex(text, &pos);
    int rc = 0;
    char val[128];
    size_t vn = 0;
    if (t.kind == 'w' && t.n == 23 && !strncasecmp(t.p, "follower_read_timestamp", 23)) {
        sql_tok a = sql_lex(text, &pos), b = sql_lex(text, &pos);
        if (a.kind != 'p' || *a.p != '(' || b.kind != 'p' || *b.p != ')') goto bad;
        at->kind = SQL_KV_AT_FOLLOWER;
    } else if (t.kind == 'n' || (t.kind == 's' && t.n >= 2 && t.p[t.n - 1] == '\'')) {
        /* A literal: its text without quotes ('' is a quote, never valid here). */
        const char *p = t.kind == 's' ? t.p + 1 : t.p;
        vn = t.kind == 's' ? t.n - 2 : t.n;
        while (vn && isspace((unsigned char)*p)) p++, vn--;
        while (vn && isspace((unsigned char)p[vn - 1])) vn--;
        if (!vn || vn >= sizeof(val)) goto bad;
        memcpy(val, p, vn);
        val[vn] = 0;
        size_t nd = strspn(val, "0123456789");
        if (nd == vn) {
            /* meridian_now() returns it as an SQL integer: at most INT64_MAX. */
            uint64_t ts = 0;
            for (size_t i = 0; i < vn; i++) {
                if (ts > (UINT64_C(1) << 63) / 10) goto bad;
                ts = ts * 10 + (uint64_t)(val[i] - '0');
            }
            if (ts == 0 || ts > INT64_MAX) goto bad;
            at->kind = SQL_KV_AT_TS;
            at->ts = ts;
        } else if (nd == 4 && val[4] == '-') {
            if (parse_time(val, vn, &at->unix_us)) {
                rc = merr_set(e, MERR_INVALID,
                              "AS OF SYSTEM TIME: '%s' is not a valid UTC time "
                              "(YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][Z|+HH:MM])",
                              val);
                goto out;
            }
            at->kind = SQL_KV_AT_UNIX;
        } else {
            int r = parse_interval(val, vn, &at->ago_us);
            if (r > 0) {
                rc = merr_set(e, MERR_INVALID,
                              "AS OF SYSTEM TIME: '%s' is in the future; reads are in the past "
                              "('-%s')",
                              val, val[0] == '+' ? val + 1 : val);
                goto out;
            }
            if (r < 0) goto bad;
            at->kind = SQL_KV_AT_AGO;
        }
    } else {
        goto bad;
    }
    if (sql_lex(text, &pos).kind) goto bad; /* something after the expression */
    goto out;
bad:
    while (n && isspace((unsigned char)*expr)) expr++, n--;
    while (n && isspace((unsigned char)expr[n - 1])) n--;
    rc = merr_set(e, MERR_INVALID, "AS OF SYSTEM TIME: bad expression %.*s: " FORMS, (int)n, expr);
out:
    free(text);
    return rc;
}

/* The expression's extent: one token, or follower_read_timestamp ( ). */
static size_t expr_end(const char *sql, size_t pos)
{
    size_t p = pos;
    sql_tok t = sql_lex(sql, &p);
    if (!t.kind || (t.kind == 'p' && *t.p == ';')) return pos;
    if (t.kind == 'w') {
        size_t q = p;
        sql_tok a = sql_lex(sql, &q);
        if (a.kind == 'p' && *a.p == '(') {
            sql_tok b = sql_lex(sql, &q);
            if (b.kind == 'p' && *b.p == ')') return q;
        }
    }
    return p;
}

int sql_asof_strip(const char *sql, char **out, sql_kv_at *at, merr *e)
{
    static const char *const words[] = {"AS", "OF", "SYSTEM", "TIME"};
    size_t pos = 0, start = 0, end = 0;
    int depth = 0, found = 0;
    *out = NULL;
    for (;;) {
        sql_tok t = sql_lex(sql, &pos);
        if (!t.kind || (t.kind == 'p' && *t.p == ';' && depth == 0)) break;
        if (t.kind == 'p' && *t.p == '(') depth++;
        if (t.kind == 'p' && *t.p == ')' && depth > 0) depth--;
        if (!sql_tok_is(&t, "AS")) continue;
        size_t p = pos;
        int k = 1;
        for (; k < 4; k++) {
            sql_tok w = sql_lex(sql, &p);
            if (!sql_tok_is(&w, words[k])) break;
        }
        if (k < 4) continue;
        if (depth) {
            /* CAST(x AS of system time) is a type name (nothing follows);
             * a subquery with its own time is not something we run. */
            size_t q = p;
            sql_tok n = sql_lex(sql, &q);
            if (n.kind == 'p' && *n.p == ')') continue;
            return merr_set(e, MERR_INVALID,
                            "AS OF SYSTEM TIME applies to a whole statement: give it once, "
                            "outside parentheses");
        }
        if (found) return merr_set(e, MERR_INVALID, "AS OF SYSTEM TIME is given twice");
        found = 1;
        start = (size_t)(t.p - sql);
        end = expr_end(sql, p);
        if (end == p)
            return merr_set(e, MERR_INVALID, "AS OF SYSTEM TIME needs an expression: " FORMS);
        int rc = sql_asof_parse(sql + p, end - p, at, e);
        if (rc) return rc;
        pos = end;
    }
    if (!found) return 0;
    char *copy = strdup(sql);
    if (!copy) return merr_set(e, MERR_NOMEM, "out of memory");
    memset(copy + start, ' ', end - start);
    *out = copy;
    return 0;
}

/* meridian_now(): the snapshot ts the statement's read-only transaction
 * reads at (chosen by its first read: the catalog's version key), so a
 * later AS OF SYSTEM TIME <it> sees what this statement saw. */
static void fn_now(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    sql_session *s = sqlite3_user_data(cx);
    uint64_t ts = 0;
    merr e = {0};
    (void)argc, (void)argv;
    if (!s->ops->read_ts) {
        sqlite3_result_error(cx, "meridian_now() is not supported by this store", -1);
        return;
    }
    int rc = s->txn ? s->ops->read_ts(s->txn, &ts, &e) : MERR_INVALID;
    if (rc == MERR_UNSUPPORTED)
        sqlite3_result_error(cx,
                             "meridian_now() in a read-write transaction: its locked reads "
                             "have no snapshot timestamp; call it in a read-only statement",
                             -1);
    else if (rc || ts > INT64_MAX)
        sqlite3_result_error(cx, e.msg[0] ? e.msg : "meridian_now(): no snapshot timestamp", -1);
    else
        sqlite3_result_int64(cx, (sqlite3_int64)ts);
}

int sql_asof_register(sql_session *s, sqlite3 *db)
{
    /* Not SQLITE_DETERMINISTIC: the value is the transaction's, not the
     * statement text's. */
    int rc =
        sqlite3_create_function_v2(db, "meridian_now", 0, SQLITE_UTF8, s, fn_now, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "cluster_logical_timestamp", 0, SQLITE_UTF8, s, fn_now,
                                        NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : MERR_INTERNAL;
}
