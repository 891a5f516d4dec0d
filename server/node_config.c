/* Node configuration validation (see node_config.h). */
#include "server/node_config.h"

#include <string.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/mtime.h"

void node_config_init(node_config *c)
{
    memset(c, 0, sizeof(*c));
    c->locality = "region=local,zone=a";
    c->clock_source = "chrony";
    c->max_clock_uncertainty_ns = 500 * MTIME_MS; /* CockroachDB's and YugabyteDB's bound */
    c->static_uncertainty_ns = 100 * MTIME_MS;
    c->log_level = "info";
    c->chrony_port = 323;
    c->max_connections = 1024;
    c->max_session_memory = 64 << 20;
    c->max_result_buffer = 4 << 20;
}

static int valid_label(const char *s, size_t n)
{
    if (n == 0 || n >= NODE_LOCALITY_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) return 0;
    }
    return 1;
}

int node_locality_parse(const char *s, node_locality *out, merr *e)
{
    memset(out, 0, sizeof(*out));
    const char *p = s;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) return merr_set(e, MERR_INVALID, "bad locality '%s': want region=R,zone=Z", s);
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        char *dst;
        if (klen == 6 && strncmp(p, "region", 6) == 0)
            dst = out->region;
        else if (klen == 4 && strncmp(p, "zone", 4) == 0)
            dst = out->zone;
        else
            return merr_set(e, MERR_INVALID, "bad locality '%s': unknown tier '%.*s'", s, (int)klen,
                            p);
        if (dst[0]) return merr_set(e, MERR_INVALID, "bad locality '%s': tier given twice", s);
        if (!valid_label(eq + 1, vlen))
            return merr_set(e, MERR_INVALID,
                            "bad locality '%s': values are 1-63 characters of a-z, 0-9 and -", s);
        memcpy(dst, eq + 1, vlen);
        p = comma ? comma + 1 : NULL;
    }
    if (!out->region[0] || !out->zone[0])
        return merr_set(e, MERR_INVALID, "bad locality '%s': want region=R,zone=Z", s ? s : "");
    return 0;
}

int node_config_check_security(const node_config *c, merr *e)
{
    if (c->insecure && c->certs_dir)
        return merr_set(e, MERR_INVALID, "--insecure and --certs-dir exclude each other");
    if (c->insecure || (c->certs_dir && *c->certs_dir)) return 0;
    return merr_set(e, MERR_INVALID,
                    "refusing to start without TLS: give --certs-dir DIR (ca.crt, node.crt, "
                    "node.key) or --insecure for local tests and demos. To create certificates:\n"
                    "  meridian cert create-ca --certs-dir DIR --ca-key SAFE/ca.key\n"
                    "  meridian cert create-node HOST... --certs-dir DIR --ca-key SAFE/ca.key\n"
                    "  meridian cert create-client root --certs-dir DIR --ca-key SAFE/ca.key");
}

int node_config_validate(node_config *c, merr *e)
{
    if (!c->store || !*c->store) return merr_set(e, MERR_INVALID, "--store DIR is required");
    if (!c->listen || !*c->listen)
        return merr_set(e, MERR_INVALID, "--listen HOST:PORT is required");
    int rc = maddr_parse_listen(c->listen, &c->listen_addr, e);
    if (rc) return merr_wrap(e, "--listen");
    if (c->max_connections < 1 || c->max_connections > 1000000)
        return merr_set(e, MERR_INVALID, "--max-connections: between 1 and 1000000, got %lld",
                        (long long)c->max_connections);
    if (c->max_session_memory < (1 << 20))
        return merr_set(e, MERR_INVALID, "--max-session-memory: at least 1MiB, got %lld bytes",
                        (long long)c->max_session_memory);
    if (c->max_result_buffer < (64 << 10) || c->max_result_buffer > (1LL << 30))
        return merr_set(e, MERR_INVALID,
                        "--max-result-buffer: between 64KiB and 1GiB, got %lld bytes",
                        (long long)c->max_result_buffer);
    if (c->advertise) {
        struct sockaddr_storage tmp;
        if ((rc = maddr_parse(c->advertise, &tmp, e))) return merr_wrap(e, "--advertise");
    }
    if (c->join) {
        int n = maddr_parse_list(c->join, c->join_addrs, NODE_MAX_JOIN, e);
        if (n < 0) return merr_wrap(e, "--join");
        c->njoin = n;
    }
    if (c->http_listen) {
        struct sockaddr_storage tmp;
        if ((rc = maddr_parse_listen(c->http_listen, &tmp, e)))
            return merr_wrap(e, "--http-listen");
    }
    if ((rc = node_locality_parse(c->locality, &c->loc, e))) return merr_wrap(e, "--locality");
    if (strcmp(c->clock_source, "chrony") && strcmp(c->clock_source, "static") &&
        strcmp(c->clock_source, "kernel"))
        return merr_set(e, MERR_INVALID, "--clock-source '%s': want chrony, static or kernel",
                        c->clock_source);
    if (c->max_clock_uncertainty_ns <= 0 || c->max_clock_uncertainty_ns > 10 * MTIME_S)
        return merr_set(e, MERR_INVALID, "--max-clock-uncertainty must be in (0, 10s]");
    if (c->static_uncertainty_ns <= 0 || c->static_uncertainty_ns > c->max_clock_uncertainty_ns)
        return merr_set(
            e, MERR_INVALID,
            "--static-uncertainty must be positive and at most --max-clock-uncertainty");
    if (c->chrony_port <= 0 || c->chrony_port > 65535)
        return merr_set(e, MERR_INVALID, "--chrony-port must be in 1..65535");
    if (c->chrony_socket && c->chrony_socket[0] != '/')
        return merr_set(e, MERR_INVALID, "--chrony-socket '%s': want an absolute path",
                        c->chrony_socket);
    c->clock_skew_ns = 0;
    if (c->testing_clock_skew) {
        const char *d = c->testing_clock_skew;
        int neg = *d == '-';
        int64_t ns;
        /* A minute is far beyond any bound: a larger skew is a typo. */
        if (cli_parse_duration(d + neg, &ns) || ns > 60 * MTIME_S)
            return merr_set(e, MERR_INVALID,
                            "--testing-clock-skew '%s': want a duration such as 40ms or -2s, "
                            "at most 1m",
                            d);
        c->clock_skew_ns = neg ? -ns : ns;
    }
    mlog_level lvl;
    if (mlog_parse_level(c->log_level, &lvl))
        return merr_set(e, MERR_INVALID, "--log-level '%s': want trace, debug, info, warn or error",
                        c->log_level);
    return 0;
}
