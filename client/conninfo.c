/* libmeridian's conninfo ("key=value ..." and quoting) and session options:
 * parsing and checking, with nothing sent (conn.c connects). */
#include "client/internal.h"

#include "common/addr.h"
#include "common/cli.h"
#include "common/mtime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_value(meridian *db, const char *k, char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return client_err(db, MERIDIAN_MISUSE, 0, "%s: longer than %zu bytes", k, cap - 1);
    memcpy(dst, v, n + 1);
    return 0;
}

int client_set_option(meridian *db, const char *k, const char *v)
{
    if (!strcmp(k, "read_only")) {
        if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1"))
            db->read_only = 1;
        else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0"))
            db->read_only = 0;
        else
            return client_err(db, MERIDIAN_MISUSE, 0, "read_only: expected on or off, got '%s'", v);
    } else if (!strcmp(k, "max_staleness")) {
        int64_t ns = 0;
        if (strcmp(v, "0") && cli_parse_duration(v, &ns))
            return client_err(db, MERIDIAN_MISUSE, 0,
                              "max_staleness: expected a duration like 10s, got '%s'", v);
        db->max_staleness_ms = (uint64_t)(ns / MTIME_MS);
    } else if (!strcmp(k, "statement_timeout")) {
        int64_t ns = 0;
        if (strcmp(v, "0") && (cli_parse_duration(v, &ns) || ns <= 0))
            return client_err(db, MERIDIAN_MISUSE, 0,
                              "statement_timeout: expected a duration like 30s, got '%s'", v);
        db->stmt_timeout_ns = ns;
    } else if (!strcmp(k, "application_name")) {
        return copy_value(db, k, db->app_name, sizeof(db->app_name), v);
    } else {
        return client_err(db, MERIDIAN_MISUSE, 0, "unknown option '%s'", k);
    }
    return 0;
}

/* A value: up to the next space, or single-quoted with \' and \\ escapes. */
static int conninfo_value(const char *p, char *v, size_t cap, const char **end)
{
    size_t o = 0;
    if (*p != '\'') {
        while (*p && !isspace((unsigned char)*p)) {
            if (o + 1 >= cap) return -1;
            v[o++] = *p++;
        }
    } else {
        for (p++; *p != '\''; p++) {
            if (!*p || o + 1 >= cap) return -1;
            if (*p == '\\' && p[1]) p++;
            v[o++] = *p;
        }
        p++;
    }
    v[o] = 0;
    *end = p;
    return 0;
}

int client_parse_conninfo(meridian *db, const char *ci)
{
    const char *p = ci;
    while (*p) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *eq = strchr(p, '='), *end = p;
        while (*end && !isspace((unsigned char)*end) && *end != '=') end++;
        if (!eq || eq > end || eq != end)
            return client_err(db, MERIDIAN_MISUSE, 0, "conninfo: expected key=value at '%.*s'",
                              (int)(end - p), p);
        char k[64], v[1024];
        snprintf(k, sizeof(k), "%.*s", (int)(eq - p), p);
        if (conninfo_value(eq + 1, v, sizeof(v), &end))
            return client_err(db, MERIDIAN_MISUSE, 0,
                              "conninfo: %s: unterminated quote or too long", k);
        p = end;
        if (!strcmp(k, "hosts") || !strcmp(k, "host")) {
            char *save = NULL, *tok = strtok_r(v, ",", &save);
            for (; tok; tok = strtok_r(NULL, ",", &save)) {
                struct sockaddr_storage ss;
                merr e = {0};
                if (db->nhosts == CLIENT_MAX_HOSTS)
                    return client_err(db, MERIDIAN_MISUSE, 0, "conninfo: more than %d hosts",
                                      CLIENT_MAX_HOSTS);
                if (maddr_parse(tok, &ss, &e))
                    return client_err(db, MERIDIAN_MISUSE, 0, "conninfo: host '%s': %s", tok,
                                      e.msg);
                if (!(db->hosts[db->nhosts++] = strdup(tok)))
                    return client_err(db, MERIDIAN_NOMEM, 0, "out of memory");
            }
        } else if (!strcmp(k, "user")) {
            if (copy_value(db, k, db->user, sizeof(db->user), v)) return db->errcode;
        } else if (!strcmp(k, "password")) {
            if (copy_value(db, k, db->password, sizeof(db->password), v)) return db->errcode;
        } else if (!strcmp(k, "certs_dir")) {
            if (copy_value(db, k, db->certs_dir, sizeof(db->certs_dir), v)) return db->errcode;
        } else if (!strcmp(k, "insecure")) {
            db->insecure = !strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1");
            if (!db->insecure && strcmp(v, "off") && strcmp(v, "false") && strcmp(v, "0"))
                return client_err(db, MERIDIAN_MISUSE, 0, "insecure: expected on or off, got '%s'",
                                  v);
        } else if (!strcmp(k, "cluster")) {
            if (copy_value(db, k, db->cluster, sizeof(db->cluster), v)) return db->errcode;
        } else if (!strcmp(k, "connect_timeout")) {
            if (cli_parse_duration(v, &db->connect_timeout_ns) || db->connect_timeout_ns <= 0)
                return client_err(
                    db, MERIDIAN_MISUSE, 0,
                    "conninfo: connect_timeout: expected a duration like 5s, got '%s'", v);
        } else if (client_set_option(db, k, v)) {
            return db->errcode;
        }
    }
    if (!db->nhosts)
        return client_err(db, MERIDIAN_MISUSE, 0, "conninfo: no hosts (hosts=HOST:PORT[,...])");
    const char *envpw = getenv("MERIDIAN_PASSWORD");
    if (!db->password[0] && envpw &&
        copy_value(db, "MERIDIAN_PASSWORD", db->password, sizeof(db->password), envpw))
        return db->errcode;
    if (db->insecure && db->certs_dir[0])
        return client_err(db, MERIDIAN_MISUSE, 0,
                          "conninfo: insecure=on and certs_dir exclude each other");
    if (db->password[0] && !db->certs_dir[0] && !db->insecure)
        return client_err(db, MERIDIAN_MISUSE, 0,
                          "refusing to send a password over a plaintext connection: give "
                          "certs_dir=DIR (TLS), or insecure=on for an --insecure cluster (which "
                          "checks no password)");
    return 0;
}
