/* `meridian cert create-ca | create-node | create-client | list`: the keys and
 * certificates a secure cluster needs (docs/security.md), made by
 * rpc/tls_cert.c with OpenSSL's C API. File layout of a certs directory:
 * ca.crt, node.crt + node.key, client.USER.crt + client.USER.key. */
#include <dirent.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/fsutil.h"
#include "rpc/tls.h"
#include "rpc/tls_cert.h"
#include "server/commands.h"

/* "10y", "365d", "48h": certificate lifetimes are days to years, so the
 * duration parser's units (up to hours) would be awkward here. */
static int parse_lifetime(const char *s, int64_t *secs)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0 || end[0] == 0 || end[1] != 0) return -1;
    switch (end[0]) {
    case 'y': *secs = v * TLS_CERT_YEAR; break;
    case 'd': *secs = v * TLS_CERT_DAY; break;
    case 'h': *secs = v * 3600; break;
    default: return -1;
    }
    return v > 100 * 366 * 24 ? -1 : 0; /* no more than a century, whatever the unit */
}

typedef struct cert_args {
    const char *certs_dir, *ca_key, *lifetime;
    int overwrite;
    int npos;
} cert_args;

/* Parses the shared flags; returns -1 to go on, else the exit status. */
static int cert_parse(int argc, char **argv, const char *usage, const char *def_lifetime,
                      cert_args *a, int64_t *lifetime)
{
    a->lifetime = def_lifetime;
    const cli_flag flags[] = {
        {"certs-dir", CLI_STR, &a->certs_dir, "DIR", "where certificates live (required)"},
        {"ca-key", CLI_STR, &a->ca_key, "FILE", "the CA's private key (keep it off the nodes)"},
        {"lifetime", CLI_STR, &a->lifetime, "N{y,d,h}", "validity period"},
        {"overwrite", CLI_BOOL, &a->overwrite, NULL, "replace existing files"},
        {0},
    };
    int done = 0;
    int rc = cli_parse(argv[0], usage, flags, argc, argv, &a->npos, &done);
    if (done) return rc;
    if (!a->certs_dir) {
        fprintf(stderr, "%s: --certs-dir is required\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    if (parse_lifetime(a->lifetime, lifetime)) {
        fprintf(stderr, "%s: bad --lifetime '%s' (want e.g. 10y, 365d, 48h)\n", argv[0],
                a->lifetime);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    if (mfs_mkdirs(a->certs_dir, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    return -1;
}

static int report(const char *cmd, int rc, const merr *e, const char *what)
{
    if (rc) {
        fprintf(stderr, "%s: %s\n", cmd, merr_msg(e));
        return 1;
    }
    printf("%s\n", what);
    return 0;
}

int cmd_cert_create_ca(int argc, char **argv)
{
    cert_args a = {0};
    int64_t life;
    int st = cert_parse(argc, argv, "--certs-dir DIR [--ca-key FILE] [--lifetime 10y]", "10y", &a,
                        &life);
    if (st >= 0) return st;
    if (a.npos) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[1]);
        return CLI_EXIT_USAGE;
    }
    char ca[PATH_MAX], key[PATH_MAX], msg[PATH_MAX * 2 + 64];
    snprintf(ca, sizeof(ca), "%s/ca.crt", a.certs_dir);
    if (a.ca_key)
        snprintf(key, sizeof(key), "%s", a.ca_key);
    else
        snprintf(key, sizeof(key), "%s/ca.key", a.certs_dir);
    tls_cert_opts o = {.not_before = -3600, .not_after = life, .overwrite = a.overwrite};
    merr e = {0};
    char keydir[PATH_MAX];
    snprintf(keydir, sizeof(keydir), "%s", key);
    char *slash = strrchr(keydir, '/');
    if (slash && slash != keydir) {
        *slash = 0;
        if (mfs_mkdirs(keydir, &e)) return report(argv[0], e.code, &e, "");
    }
    int rc = tls_cert_create_ca(ca, key, &o, &e);
    snprintf(msg, sizeof(msg), "created CA certificate %s and key %s", ca, key);
    return report(argv[0], rc, &e, msg);
}

/* CERTS_DIR/metrics.token, the bearer token of a secure node's /metrics
 * (docs/security.md): made once, kept across certificate renewals. */
static int make_metrics_token(const char *dir, char *msg, size_t cap, merr *e)
{
    char path[PATH_MAX], hex[65];
    uint8_t r[32];
    snprintf(path, sizeof(path), "%s/metrics.token", dir);
    if (mfs_exists(path)) return 0;
    if (RAND_bytes(r, sizeof(r)) != 1) return merr_set(e, MERR_INTERNAL, "no randomness");
    for (size_t i = 0; i < sizeof(r); i++) snprintf(hex + 2 * i, 3, "%02x", r[i]);
    int rc = mfs_write_atomic_mode(path, hex, 64, 0600, e);
    size_t n = strlen(msg);
    if (!rc) snprintf(msg + n, cap - n, "\ncreated metrics token %s", path);
    return rc;
}

static int create_signed(int argc, char **argv, int node)
{
    cert_args a = {0};
    int64_t life;
    int st = cert_parse(argc, argv,
                        node ? "HOST... --certs-dir DIR --ca-key FILE [--lifetime 5y]"
                             : "USER --certs-dir DIR --ca-key FILE [--lifetime 5y]",
                        "5y", &a, &life);
    if (st >= 0) return st;
    merr e = {0};
    if (!a.ca_key || (node ? a.npos < 1 : a.npos != 1)) {
        fprintf(stderr, "%s: %s\n", argv[0],
                !a.ca_key ? "--ca-key is required"
                : node    ? "name at least one HOST (DNS name or IP address)"
                          : "name exactly one USER");
        return CLI_EXIT_USAGE;
    }
    if (!node && tls_cert_valid_user(argv[1], &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return CLI_EXIT_USAGE;
    }
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], msg[PATH_MAX * 2 + 64];
    if (tls_certs_paths(a.certs_dir, node ? NULL : argv[1], ca, cert, key, &e))
        return report(argv[0], e.code, &e, "");
    tls_cert_opts o = {.not_before = -3600, .not_after = life, .overwrite = a.overwrite};
    int rc =
        tls_cert_create(ca, a.ca_key, node ? TLS_NODE_CN : argv[1], (const char *const *)(argv + 1),
                        node ? a.npos : 0, node, cert, key, &o, &e);
    snprintf(msg, sizeof(msg), "created %s certificate %s and key %s", node ? "node" : "client",
             cert, key);
    if (!rc && node) rc = make_metrics_token(a.certs_dir, msg, sizeof(msg), &e);
    return report(argv[0], rc, &e, msg);
}

int cmd_cert_create_node(int argc, char **argv)
{
    return create_signed(argc, argv, 1);
}

int cmd_cert_create_client(int argc, char **argv)
{
    return create_signed(argc, argv, 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_cert_list(int argc, char **argv)
{
    const char *dir = NULL;
    const cli_flag flags[] = {
        {"certs-dir", CLI_STR, &dir, "DIR", "where certificates live (required)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--certs-dir DIR", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || !dir) {
        fprintf(stderr, "%s: %s\n", argv[0],
                npos ? "unexpected argument" : "--certs-dir is required");
        return CLI_EXIT_USAGE;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: cannot open %s\n", argv[0], dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".crt")) continue;
        char **nn = realloc(names, (n + 1) * sizeof(*nn));
        if (!nn || !(nn[n] = strdup(de->d_name))) {
            names = nn ? nn : names;
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX];
        mbuf line = MBUF_INIT;
        merr e = {0};
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        if (tls_cert_describe(p, &line, &e)) {
            fprintf(stderr, "%s: %s\n", argv[0], e.msg);
            status = 1;
        } else {
            printf("%-24s %.*s", names[i], (int)line.len, (const char *)line.data);
        }
        mbuf_free(&line);
        free(names[i]);
    }
    free(names);
    if (!n) printf("no certificates in %s\n", dir);
    return status;
}
