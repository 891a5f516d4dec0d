/* Users, roles and grants in the catalog; the session's privilege cache and
 * the SQLite authorizers that enforce it (sql/auth.h, docs/security.md). */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/scram.h"
#include "sql/auth.h"

#define SYS_USER   4
#define SYS_GRANT  5
#define REC_FORMAT 1

typedef struct auth_user {
    char name[SQL_NAME_MAX];
    int role;
    char verifier[SCRAM_VERIFIER_MAX];
    char (*roles)[SQL_NAME_MAX];
    size_t nroles;
} auth_user;

typedef struct auth_grant {
    char grantee[SQL_NAME_MAX], object[SQL_NAME_MAX];
    unsigned privs;
} auth_grant;

struct sql_auth_cache {
    auth_user *users;
    size_t nusers;
    auth_grant *grants;
    size_t ngrants, capgrants;
};

/* ---- records ---- */

static void lower(char *dst, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < SQL_NAME_MAX; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
    dst[i] = 0;
}

static int key(mbuf *k, int which, const char *a, const char *b, int prefix)
{
    char la[SQL_NAME_MAX], lb[SQL_NAME_MAX];
    mkey_val v[4] = {mkey_int(SQL_SYS_TABLE, 0), mkey_int(which, 0)};
    size_t n = 2;
    if (a) {
        lower(la, a);
        v[n++] = mkey_text(la, strlen(la), 0);
    }
    if (b) {
        lower(lb, b);
        v[n++] = mkey_text(lb, strlen(lb), 0);
    }
    mbuf_reset(k);
    return prefix ? mkey_encode_prefix(v, n, k) : mkey_encode(v, n, k);
}

static int put_str(mbuf *b, const char *s)
{
    size_t n = strlen(s);
    int rc = mbuf_append_varint(b, n);
    return rc ? rc : mbuf_append(b, s, n);
}

static int get_str(mreader *r, char *out, size_t cap)
{
    uint64_t n;
    const uint8_t *p;
    if (mreader_varint(r, &n) || n >= cap || mreader_bytes(r, (size_t)n, &p)) return MERR_CORRUPT;
    memcpy(out, p, (size_t)n);
    out[n] = 0;
    return 0;
}

static int user_encode(const auth_user *u, mbuf *out)
{
    int rc = mbuf_append_u8(out, REC_FORMAT);
    rc = rc ? rc : mbuf_append_u8(out, (uint8_t)u->role);
    rc = rc ? rc : put_str(out, u->name);
    rc = rc ? rc : put_str(out, u->verifier);
    rc = rc ? rc : mbuf_append_varint(out, u->nroles);
    for (size_t i = 0; i < u->nroles && !rc; i++) rc = put_str(out, u->roles[i]);
    return rc;
}

static void user_free(auth_user *u)
{
    free(u->roles);
    memset(u, 0, sizeof(*u));
}

static int user_decode(const uint8_t *p, size_t n, auth_user *u, merr *e)
{
    mreader r;
    uint8_t fmt, role;
    uint64_t nr;
    memset(u, 0, sizeof(*u));
    mreader_init(&r, p, n);
    if (mreader_u8(&r, &fmt) || fmt != REC_FORMAT || mreader_u8(&r, &role) ||
        get_str(&r, u->name, sizeof(u->name)) || get_str(&r, u->verifier, sizeof(u->verifier)) ||
        mreader_varint(&r, &nr) || nr > mreader_left(&r))
        goto bad;
    u->role = role != 0;
    u->roles = calloc(nr + 1, sizeof(*u->roles));
    if (!u->roles) goto bad;
    for (u->nroles = 0; u->nroles < nr; u->nroles++)
        if (get_str(&r, u->roles[u->nroles], SQL_NAME_MAX)) goto bad;
    return 0;
bad:
    user_free(u);
    return merr_set(e, MERR_CORRUPT, "catalog: malformed user record");
}

static int grant_decode(const uint8_t *p, size_t n, auth_grant *g, merr *e)
{
    mreader r;
    uint8_t fmt;
    uint64_t bits;
    mreader_init(&r, p, n);
    if (mreader_u8(&r, &fmt) || fmt != REC_FORMAT || get_str(&r, g->grantee, sizeof(g->grantee)) ||
        get_str(&r, g->object, sizeof(g->object)) || mreader_varint(&r, &bits) || bits > 0xff)
        return merr_set(e, MERR_CORRUPT, "catalog: malformed grant record");
    g->privs = (unsigned)bits;
    return 0;
}

static int grant_put(sql_session *s, const auth_grant *g, merr *e)
{
    mbuf k = MBUF_INIT, v = MBUF_INIT;
    int rc = key(&k, SYS_GRANT, g->grantee, g->object, 0);
    if (!g->privs) {
        if (!rc) rc = s->ops->del(s->txn, k.data, k.len, e);
    } else {
        if (!rc) rc = mbuf_append_u8(&v, REC_FORMAT);
        if (!rc) rc = put_str(&v, g->grantee);
        if (!rc) rc = put_str(&v, g->object);
        if (!rc) rc = mbuf_append_varint(&v, g->privs);
        if (rc)
            rc = merr_set(e, MERR_NOMEM, "out of memory");
        else
            rc = s->ops->put(s->txn, k.data, k.len, v.data, v.len, e);
    }
    mbuf_free(&k);
    mbuf_free(&v);
    return rc;
}

static int user_put(sql_session *s, const auth_user *u, merr *e)
{
    mbuf k = MBUF_INIT, v = MBUF_INIT;
    int rc = key(&k, SYS_USER, u->name, NULL, 0);
    if (!rc) rc = user_encode(u, &v);
    if (rc)
        rc = merr_set(e, MERR_NOMEM, "out of memory");
    else
        rc = s->ops->put(s->txn, k.data, k.len, v.data, v.len, e);
    mbuf_free(&k);
    mbuf_free(&v);
    return rc;
}

/* Calls fn for each record under (0, which[, a]). */
static int scan(sql_session *s, sql_kv_txn *txn, int which, const char *a,
                int (*fn)(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                          merr *e),
                void *arg, merr *e)
{
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    sql_kv_iter *it = NULL;
    int rc = key(&lo, which, a, NULL, 1);
    if (!rc) rc = key(&hi, which, a, NULL, 1);
    if (!rc) rc = mkey_prefix_end(&hi);
    if (!rc) rc = s->ops->scan(txn, lo.data, lo.len, hi.data, hi.len, 0, 0, &it, e);
    while (!rc) {
        const uint8_t *k, *v;
        size_t kl, vl;
        rc = s->ops->iter_next(it, &k, &kl, &v, &vl, e);
        if (rc <= 0) break;
        rc = fn(arg, k, kl, v, vl, e);
    }
    if (it) s->ops->iter_close(it);
    mbuf_free(&lo);
    mbuf_free(&hi);
    return rc < 0 ? rc : 0;
}

/* ---- the cache ---- */

static void cache_free(struct sql_auth_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nusers; i++) user_free(&c->users[i]);
    free(c->users);
    free(c->grants);
    free(c);
}

void sql_auth_cache_free(sql_session *s)
{
    cache_free(s->auth);
    s->auth = NULL;
}

static int load_user(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, merr *e)
{
    struct sql_auth_cache *c = arg;
    (void)k, (void)kl;
    auth_user *nu = realloc(c->users, (c->nusers + 1) * sizeof(*nu));
    if (!nu) return merr_set(e, MERR_NOMEM, "out of memory");
    c->users = nu;
    int rc = user_decode(v, vl, &c->users[c->nusers], e);
    if (!rc) c->nusers++;
    return rc;
}

static int add_grant(struct sql_auth_cache *c, const auth_grant *g)
{
    if (c->ngrants == c->capgrants) {
        size_t nc = c->capgrants ? 2 * c->capgrants : 16;
        auth_grant *p = realloc(c->grants, nc * sizeof(*p));
        if (!p) return MERR_NOMEM;
        c->grants = p;
        c->capgrants = nc;
    }
    c->grants[c->ngrants++] = *g;
    return 0;
}

static int load_grant(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, merr *e)
{
    auth_grant g;
    (void)k, (void)kl;
    int rc = grant_decode(v, vl, &g, e);
    if (!rc && add_grant(arg, &g)) rc = merr_set(e, MERR_NOMEM, "out of memory");
    return rc;
}

int sql_auth_load(sql_session *s, merr *e)
{
    struct sql_auth_cache *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    int rc = scan(s, s->txn, SYS_USER, NULL, load_user, c, e);
    if (!rc) rc = scan(s, s->txn, SYS_GRANT, NULL, load_grant, c, e);
    if (rc) {
        cache_free(c);
        return rc;
    }
    cache_free(s->auth);
    s->auth = c;
    return 0;
}

static auth_user *find_user(const struct sql_auth_cache *c, const char *name)
{
    for (size_t i = 0; c && i < c->nusers; i++)
        if (!strcasecmp(c->users[i].name, name)) return &c->users[i];
    return NULL;
}

static unsigned grants_of(const struct sql_auth_cache *c, const char *who, const char *table)
{
    unsigned p = 0;
    for (size_t i = 0; i < c->ngrants; i++) {
        const auth_grant *g = &c->grants[i];
        if (strcasecmp(g->grantee, who)) continue;
        if (!strcmp(g->object, SQL_AUTH_OBJ_DB) || (table && !strcasecmp(g->object, table)))
            p |= g->privs;
    }
    return p;
}

/* The session user's privileges on table (NULL: database-wide only),
 * through its own grants and its roles'. */
static unsigned privs(sql_session *s, const char *table)
{
    if (!strcasecmp(s->user, SQL_ROOT_USER)) return SQL_PRIV_ALL | SQL_PRIV_ADMIN;
    const struct sql_auth_cache *c = s->auth;
    const auth_user *u = find_user(c, s->user);
    if (!u || u->role) return 0; /* dropped, or a role (which cannot log in) */
    unsigned p = grants_of(c, u->name, table);
    for (size_t i = 0; i < u->nroles; i++) p |= grants_of(c, u->roles[i], table);
    if (p & SQL_PRIV_ADMIN) p |= SQL_PRIV_ALL;
    return p;
}

int sql_auth_user_missing(sql_session *s)
{
    if (!s->auth_enforce || !strcasecmp(s->user, SQL_ROOT_USER)) return 0;
    const auth_user *u = find_user(s->auth, s->user);
    return !u || u->role;
}

static int bypass(sql_session *s)
{
    return !s->auth_enforce || (privs(s, NULL) & SQL_PRIV_ADMIN);
}

static const char *priv_name(unsigned bit)
{
    switch (bit) {
    case SQL_PRIV_SELECT: return "SELECT";
    case SQL_PRIV_INSERT: return "INSERT";
    case SQL_PRIV_UPDATE: return "UPDATE";
    case SQL_PRIV_DELETE: return "DELETE";
    case SQL_PRIV_CREATE: return "CREATE";
    default: return "ADMIN";
    }
}

static int deny(sql_session *s, unsigned need, const char *table)
{
    if (!find_user(s->auth, s->user) && strcasecmp(s->user, SQL_ROOT_USER))
        snprintf(s->auth_msg, sizeof(s->auth_msg),
                 "permission denied: user %s does not exist (dropped?)", s->user);
    else if (table)
        snprintf(s->auth_msg, sizeof(s->auth_msg),
                 "permission denied: user %s has no %s privilege on table %s", s->user,
                 priv_name(need), table);
    else
        snprintf(s->auth_msg, sizeof(s->auth_msg),
                 "permission denied: user %s has no %s privilege on the database", s->user,
                 priv_name(need));
    return SQLITE_DENY;
}

/* Views are not in s->tables; the scratch connection has the same schema
 * (and, unlike s->db, may be queried from inside s->db's authorizer). */
static int view_exists(sql_session *s, const char *name)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(s->scratch,
                           "SELECT 1 FROM sqlite_schema WHERE type = 'view' AND name = ?1 "
                           "COLLATE NOCASE",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

static int user_object(sql_session *s, const char *t)
{
    return sql_find_table(s, t) || view_exists(s, t);
}

/* Everyone may read SQLite's schema tables and Meridian's system views; a
 * user table whose name merely starts with "meridian_" is checked like any. */
static int system_object(sql_session *s, const char *t)
{
    return !strncasecmp(t, "sqlite_", 7) || (sql_sysview_is(t) && !user_object(s, t));
}

/* PRAGMAs a non-admin may run: they only describe the schema, which
 * sqlite_master shows anyway. Anything else (writable_schema, journal or
 * cache settings, schema_version, ...) changes the session's connection. */
static int pragma_allowed(const char *name)
{
    static const char *ok[] = {"table_info", "table_xinfo", "table_list",      "index_list",
                               "index_info", "index_xinfo", "foreign_key_list"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!strcasecmp(name, ok[i])) return 1;
    return 0;
}

static int refuse(sql_session *s, const char *what)
{
    snprintf(s->auth_msg, sizeof(s->auth_msg), "permission denied: user %s may not %s", s->user,
             what);
    return SQLITE_DENY;
}

/* The user connection: reads and writes of every table a statement names,
 * and whatever else could reach around them (docs/security.md). */
static int db_authorizer(void *arg, int op, const char *a1, const char *a2, const char *db,
                         const char *trigger)
{
    sql_session *s = arg;
    char what[SQL_NAME_MAX + 64];
    unsigned need;
    (void)db, (void)trigger;
    if ((op == SQLITE_INSERT || op == SQLITE_UPDATE || op == SQLITE_DELETE) && a1)
        sql_note_write_target(s, a1); /* its reads lock for writing (session.c) */
    switch (op) {
    case SQLITE_READ: need = SQL_PRIV_SELECT; break;
    case SQLITE_INSERT: need = SQL_PRIV_INSERT; break;
    case SQLITE_UPDATE: need = SQL_PRIV_UPDATE; break;
    case SQLITE_DELETE: need = SQL_PRIV_DELETE; break;
    case SQLITE_ATTACH:
    case SQLITE_DETACH: return s->auth_enforce ? refuse(s, "attach databases") : SQLITE_OK;
    case SQLITE_PRAGMA:
        if (!a1 || pragma_allowed(a1) || bypass(s)) return SQLITE_OK;
        snprintf(what, sizeof(what), "run PRAGMA %s (ADMIN only)", a1);
        return refuse(s, what);
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_VTABLE:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_TEMP_VIEW:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_VTABLE:
    case SQLITE_ALTER_TABLE:
        /* Schema changes go through the DDL path and the catalog (which
         * builds this connection's schema with the authorizer off); here
         * one could only point a name at another table's data, or leave
         * this session's schema out of step with the catalog. */
        return refuse(s, "change the schema outside DDL statements");
    default: return SQLITE_OK;
    }
    /* sqlite_master itself is exempt: SQLite reports an UPDATE of it while
     * it sets up an eponymous table; real writes fail in defensive mode
     * (session.c), so no table name can be pointed at another's data. */
    if (!a1 || system_object(s, a1) || bypass(s) || (privs(s, a1) & need)) return SQLITE_OK;
    return deny(s, need, a1);
}

int sql_auth_is_admin(sql_session *s)
{
    return bypass(s);
}

int sql_auth_may(sql_session *s, const char *table, unsigned need)
{
    if (system_object(s, table) || bypass(s) || (privs(s, table) & need) == need) return 1;
    deny(s, need, table);
    return 0;
}

/* The scratch connection while it runs a DDL statement. */
static int ddl_authorizer(void *arg, int op, const char *a1, const char *a2, const char *db,
                          const char *trigger)
{
    sql_session *s = arg;
    const char *table;
    (void)db, (void)trigger;
    switch (op) {
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_VIEW: table = NULL; break;
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_VIEW:
        table = a1;
        snprintf(s->auth_dropped, sizeof(s->auth_dropped), "%s", a1 ? a1 : "");
        break;
    case SQLITE_ALTER_TABLE:
    case SQLITE_CREATE_INDEX:
    case SQLITE_DROP_INDEX: table = a2; break;
    default: return SQLITE_OK;
    }
    if (!s->auth_enforce || !s->auth || bypass(s)) return SQLITE_OK;
    if (!(privs(s, table) & SQL_PRIV_CREATE)) return deny(s, SQL_PRIV_CREATE, table);
    if (!table && a1) {
        /* Its creator owns the new object: ALL on it, at once (CREATE TABLE
         * ... AS SELECT inserts within this statement), stored afterwards. */
        auth_grant g = {.privs = SQL_PRIV_ALL};
        snprintf(g.grantee, sizeof(g.grantee), "%s", s->user);
        snprintf(g.object, sizeof(g.object), "%s", a1);
        snprintf(s->auth_created, sizeof(s->auth_created), "%s", a1);
        if (add_grant(s->auth, &g)) return SQLITE_DENY;
    }
    return SQLITE_OK;
}

void sql_auth_install(sql_session *s)
{
    sqlite3_set_authorizer(s->db, db_authorizer, s);
}

void sql_auth_ddl(sql_session *s, int on)
{
    if (on) s->auth_created[0] = s->auth_dropped[0] = 0;
    sqlite3_set_authorizer(s->scratch, on ? ddl_authorizer : NULL, s);
}

static int drop_table_grants(sql_session *s, const char *table, merr *e);

int sql_auth_after_ddl(sql_session *s, merr *e)
{
    int rc = 0;
    if (s->auth_dropped[0]) rc = drop_table_grants(s, s->auth_dropped, e);
    s->auth_dropped[0] = 0;
    if (rc || !s->auth_created[0]) return rc;
    auth_grant g = {.privs = SQL_PRIV_ALL};
    snprintf(g.grantee, sizeof(g.grantee), "%s", s->user);
    snprintf(g.object, sizeof(g.object), "%s", s->auth_created);
    s->auth_created[0] = 0;
    return grant_put(s, &g, e);
}

/* ---- statements ---- */

static int make_verifier(const char *password, char *out, size_t cap, merr *e)
{
    uint8_t salt[SCRAM_SALT_LEN];
    scram_verifier v;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return merr_set(e, MERR_INTERNAL, "no randomness for a password salt");
    if (scram_verifier_make(password, salt, sizeof(salt), SCRAM_ITER_DEFAULT, &v) ||
        scram_verifier_encode(&v, out, cap))
        return merr_set(e, MERR_INTERNAL, "cannot derive the password verifier");
    return 0;
}

typedef struct del_ctx {
    sql_session *s;
    const char *object; /* only grants on this object (NULL: all of the prefix) */
} del_ctx;

static int del_grant(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, merr *e)
{
    del_ctx *d = arg;
    auth_grant g;
    int rc = grant_decode(v, vl, &g, e);
    if (rc || (d->object && strcasecmp(g.object, d->object))) return rc;
    return d->s->ops->del(d->s->txn, k, kl, e);
}

static int user_del(sql_session *s, const char *name, merr *e)
{
    mbuf k = MBUF_INIT;
    del_ctx d = {s, NULL};
    int rc = key(&k, SYS_USER, name, NULL, 0);
    if (!rc) rc = s->ops->del(s->txn, k.data, k.len, e);
    mbuf_free(&k);
    if (!rc) rc = scan(s, s->txn, SYS_GRANT, name, del_grant, &d, e);
    /* Members of a dropped role lose it. */
    for (size_t i = 0; s->auth && i < s->auth->nusers && !rc; i++) {
        auth_user *u = &s->auth->users[i];
        size_t o = 0;
        for (size_t j = 0; j < u->nroles; j++)
            if (strcasecmp(u->roles[j], name)) memmove(u->roles[o++], u->roles[j], SQL_NAME_MAX);
        if (o != u->nroles) {
            u->nroles = o;
            rc = user_put(s, u, e);
        }
    }
    return rc;
}

static int drop_table_grants(sql_session *s, const char *table, merr *e)
{
    del_ctx d = {s, table};
    return scan(s, s->txn, SYS_GRANT, NULL, del_grant, &d, e);
}

static int exec_change(sql_session *s, const sql_auth_stmt *a, merr *e)
{
    auth_user *u = find_user(s->auth, a->name);
    int is_root = !strcasecmp(a->name, SQL_ROOT_USER);
    auth_user nu = {0};
    int rc = 0;
    switch (a->kind) {
    case SQL_AUTH_CREATE_USER:
    case SQL_AUTH_CREATE_ROLE:
        if (u || is_root)
            return merr_set(e, MERR_INVALID, "%s %s already exists", u && u->role ? "role" : "user",
                            a->name);
        snprintf(nu.name, sizeof(nu.name), "%s", a->name);
        nu.role = a->kind == SQL_AUTH_CREATE_ROLE;
        if (a->password && (rc = make_verifier(a->password, nu.verifier, sizeof(nu.verifier), e)))
            return rc;
        return user_put(s, &nu, e);
    case SQL_AUTH_ALTER_USER:
        if (!u && !is_root) return merr_set(e, MERR_INVALID, "user %s does not exist", a->name);
        if (u && u->role) return merr_set(e, MERR_INVALID, "%s is a role, not a user", a->name);
        if (u) nu = *u;
        snprintf(nu.name, sizeof(nu.name), "%s", u ? u->name : SQL_ROOT_USER);
        nu.verifier[0] = 0;
        if (a->password && (rc = make_verifier(a->password, nu.verifier, sizeof(nu.verifier), e)))
            return rc;
        return user_put(s, &nu, e);
    case SQL_AUTH_DROP_USER:
    case SQL_AUTH_DROP_ROLE: {
        int want_role = a->kind == SQL_AUTH_DROP_ROLE;
        if (is_root) return merr_set(e, MERR_INVALID, "user root cannot be dropped");
        if (!u || u->role != want_role)
            return merr_set(e, MERR_INVALID, "%s %s does not exist", want_role ? "role" : "user",
                            a->name);
        if (!strcasecmp(a->name, s->user))
            return merr_set(e, MERR_INVALID, "cannot drop the session's own user");
        return user_del(s, u->name, e);
    }
    case SQL_AUTH_GRANT_ROLE:
    case SQL_AUTH_REVOKE_ROLE: {
        auth_user *r = find_user(s->auth, a->role);
        if (!r || !r->role) return merr_set(e, MERR_INVALID, "role %s does not exist", a->role);
        if (!u || u->role) return merr_set(e, MERR_INVALID, "user %s does not exist", a->name);
        size_t j = 0;
        while (j < u->nroles && strcasecmp(u->roles[j], r->name)) j++;
        if (a->kind == SQL_AUTH_GRANT_ROLE && j == u->nroles) {
            void *p = realloc(u->roles, (u->nroles + 1) * SQL_NAME_MAX);
            if (!p) return merr_set(e, MERR_NOMEM, "out of memory");
            u->roles = p;
            snprintf(u->roles[u->nroles++], SQL_NAME_MAX, "%s", r->name);
        } else if (a->kind == SQL_AUTH_REVOKE_ROLE && j < u->nroles) {
            memmove(u->roles[j], u->roles[j + 1], (u->nroles - j - 1) * SQL_NAME_MAX);
            u->nroles--;
        } else {
            return 0;
        }
        return user_put(s, u, e);
    }
    case SQL_AUTH_GRANT:
    case SQL_AUTH_REVOKE: {
        if (!u) return merr_set(e, MERR_INVALID, "user or role %s does not exist", a->name);
        if (is_root) return merr_set(e, MERR_INVALID, "root has every privilege already");
        if (strcmp(a->object, SQL_AUTH_OBJ_DB) && !user_object(s, a->object))
            return merr_set(e, MERR_INVALID, "no such table: %s", a->object);
        auth_grant g = {0};
        snprintf(g.grantee, sizeof(g.grantee), "%s", u->name);
        snprintf(g.object, sizeof(g.object), "%s", a->object);
        for (size_t i = 0; i < s->auth->ngrants; i++)
            if (!strcasecmp(s->auth->grants[i].grantee, g.grantee) &&
                !strcasecmp(s->auth->grants[i].object, g.object))
                g.privs = s->auth->grants[i].privs;
        g.privs = a->kind == SQL_AUTH_GRANT ? g.privs | a->privs : g.privs & ~a->privs;
        return grant_put(s, &g, e);
    }
    default: return merr_set(e, MERR_INTERNAL, "not a change");
    }
}

int sql_auth_exec(sql_session *s, const sql_auth_stmt *a, merr *e)
{
    if (!bypass(s)) {
        deny(s, SQL_PRIV_ADMIN, NULL);
        return merr_set(e, MERR_INVALID, "%s", s->auth_msg);
    }
    if (!s->auth && (a->kind != SQL_AUTH_SHOW_USERS && a->kind != SQL_AUTH_SHOW_GRANTS)) {
        int rc = sql_auth_load(s, e);
        if (rc) return rc;
    }
    int rc = exec_change(s, a, e);
    if (!rc) rc = sql_catalog_bump(s, e);
    /* The cache is stale now; the bumped version reloads it. */
    s->catalog_dirty = 1;
    return rc;
}

/* ---- SHOW ---- */

static void privs_text(unsigned p, char *out, size_t cap)
{
    static const unsigned bits[] = {SQL_PRIV_SELECT, SQL_PRIV_INSERT, SQL_PRIV_UPDATE,
                                    SQL_PRIV_DELETE, SQL_PRIV_CREATE, SQL_PRIV_ADMIN};
    size_t n = 0;
    out[0] = 0;
    if ((p & SQL_PRIV_ALL) == SQL_PRIV_ALL) {
        n += (size_t)snprintf(out, cap, "ALL");
        p &= ~(unsigned)SQL_PRIV_ALL;
    }
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
        if (p & bits[i] && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", priv_name(bits[i]));
}

int sql_auth_show_sql(sql_session *s, const sql_auth_stmt *a, char **out, merr *e)
{
    struct sql_auth_cache empty = {0};
    const struct sql_auth_cache *c = s->auth ? s->auth : &empty;
    mbuf q = MBUF_INIT;
    int rc = 0;
    if (a->kind == SQL_AUTH_SHOW_USERS) {
        /* Everyone for an admin; a non-admin sees only itself (as SHOW GRANTS). */
        const char *only = s->auth_enforce && !bypass(s) ? s->user : NULL;
        rc = mbuf_printf(&q, "SELECT 'root' AS name, 'user' AS kind, %s AS password, '' AS roles%s",
                         find_user(c, SQL_ROOT_USER) && find_user(c, SQL_ROOT_USER)->verifier[0]
                             ? "'yes'"
                             : "'no'",
                         only ? " WHERE 0" : "");
        for (size_t i = 0; i < c->nusers && !rc; i++) {
            const auth_user *u = &c->users[i];
            if (!strcasecmp(u->name, SQL_ROOT_USER)) continue;
            if (only && strcasecmp(u->name, only)) continue;
            mbuf roles = MBUF_INIT;
            for (size_t j = 0; j < u->nroles; j++)
                mbuf_printf(&roles, "%s%s", j ? "," : "", u->roles[j]);
            mbuf_append_u8(&roles, 0);
            char *one = sqlite3_mprintf(" UNION ALL SELECT %Q, %Q, %Q, %Q", u->name,
                                        u->role ? "role" : "user", u->verifier[0] ? "yes" : "no",
                                        roles.data ? (const char *)roles.data : "");
            rc = one ? mbuf_printf(&q, "%s", one) : MERR_NOMEM;
            sqlite3_free(one);
            mbuf_free(&roles);
        }
    } else {
        const char *who = a->name[0] ? a->name : NULL;
        /* Without FOR: everyone's for an admin, one's own otherwise. */
        if (!who && s->auth_enforce && !bypass(s)) who = s->user;
        if (who && s->auth_enforce && !bypass(s) && strcasecmp(who, s->user)) {
            deny(s, SQL_PRIV_ADMIN, NULL);
            return merr_set(e, MERR_INVALID, "%s", s->auth_msg);
        }
        rc = mbuf_printf(&q, "SELECT NULL AS grantee, NULL AS object, NULL AS privileges WHERE 0");
        const auth_user *wu = who ? find_user(c, who) : NULL;
        for (size_t i = 0; i < c->ngrants && !rc; i++) {
            const auth_grant *g = &c->grants[i];
            int mine = !who || !strcasecmp(g->grantee, who);
            for (size_t j = 0; wu && j < wu->nroles; j++)
                mine |= !strcasecmp(g->grantee, wu->roles[j]);
            if (!mine) continue;
            char obj[SQL_NAME_MAX + 8], pt[64];
            snprintf(obj, sizeof(obj), "%s%s", strcmp(g->object, SQL_AUTH_OBJ_DB) ? "TABLE " : "",
                     strcmp(g->object, SQL_AUTH_OBJ_DB) ? g->object : "DATABASE");
            privs_text(g->privs, pt, sizeof(pt));
            char *one = sqlite3_mprintf(" UNION ALL SELECT %Q, %Q, %Q", g->grantee, obj, pt);
            rc = one ? mbuf_printf(&q, "%s", one) : MERR_NOMEM;
            sqlite3_free(one);
        }
    }
    if (!rc) rc = mbuf_append_u8(&q, 0);
    if (rc) {
        mbuf_free(&q);
        return merr_set(e, MERR_NOMEM, "out of memory");
    }
    *out = strdup((const char *)q.data);
    mbuf_free(&q);
    return *out ? 0 : merr_set(e, MERR_NOMEM, "out of memory");
}

/* ---- login ---- */

int sql_auth_lookup(sql_session *s, const char *user, char *verifier, size_t cap, int *found,
                    merr *e)
{
    sql_kv_txn *txn = NULL;
    mbuf k = MBUF_INIT, v = MBUF_INIT;
    auth_user u;
    *found = 0;
    verifier[0] = 0;
    int rc = key(&k, SYS_USER, user, NULL, 0);
    if (!rc) rc = s->ops->begin(s->kv, SQL_KV_READ_ONLY, &txn, e);
    if (!rc) rc = s->ops->get(txn, k.data, k.len, &v, e);
    if (rc == MERR_NOTFOUND) {
        rc = 0;
    } else if (!rc && !(rc = user_decode(v.data, v.len, &u, e))) {
        *found = !u.role;
        if (*found) snprintf(verifier, cap, "%s", u.verifier);
        user_free(&u);
    }
    if (txn) s->ops->rollback(txn);
    mbuf_free(&k);
    mbuf_free(&v);
    return rc;
}
