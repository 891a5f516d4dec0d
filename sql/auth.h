/* Users, roles and privileges (docs/security.md): the statements that manage
 * them, their storage in the replicated catalog, and the per-session
 * privilege cache the SQLite authorizer consults.
 *
 * Catalog keys (table id 0, beside the schema descriptors, so they replicate
 * and version with the schema; every change bumps the schema version, which
 * is what invalidates every session's cached privileges):
 *   (0, 4, lower(name))           -> user/role record: kind, SCRAM verifier, roles
 *   (0, 5, lower(grantee), object) -> privilege bits; object "*" = database
 * `root` is built in: it always exists, is ADMIN, and has a record only once
 * it gets a password. */
#ifndef MERIDIAN_SQL_AUTH_H
#define MERIDIAN_SQL_AUTH_H

#include "sql/sql_int.h"

enum {
    SQL_PRIV_SELECT = 1,
    SQL_PRIV_INSERT = 2,
    SQL_PRIV_UPDATE = 4,
    SQL_PRIV_DELETE = 8,
    SQL_PRIV_CREATE = 16,
    SQL_PRIV_ADMIN = 32,
    SQL_PRIV_ALL = 31, /* ALL: everything but ADMIN */
};

#define SQL_ROOT_USER   "root"
#define SQL_NAME_MAX    64
#define SQL_AUTH_OBJ_DB "*"

typedef enum sql_auth_kind {
    SQL_AUTH_CREATE_USER = 1,
    SQL_AUTH_ALTER_USER,
    SQL_AUTH_DROP_USER,
    SQL_AUTH_CREATE_ROLE,
    SQL_AUTH_DROP_ROLE,
    SQL_AUTH_GRANT_ROLE,
    SQL_AUTH_REVOKE_ROLE,
    SQL_AUTH_GRANT,
    SQL_AUTH_REVOKE,
    SQL_AUTH_SHOW_GRANTS,
    SQL_AUTH_SHOW_USERS,
} sql_auth_kind;

typedef struct sql_auth_stmt {
    sql_auth_kind kind;
    char name[SQL_NAME_MAX]; /* the user or role acted on; grantee of GRANT/REVOKE */
    char role[SQL_NAME_MAX]; /* GRANT role TO name */
    int set_password;        /* WITH PASSWORD given (CREATE/ALTER USER) */
    char *password;          /* NULL: PASSWORD NULL (no password login) */
    unsigned privs;
    char object[SQL_NAME_MAX]; /* table name, or "*" for DATABASE / * */
} sql_auth_stmt;

/* 1 when sql starts like a statement of this module (CREATE USER, GRANT,
 * SHOW GRANTS, ...), 0 otherwise. */
int sql_auth_is(const char *sql);
/* Parses one statement; *end = bytes consumed (through the ';'). Errors say
 * what was expected where. */
int sql_auth_parse(const char *sql, sql_auth_stmt *out, size_t *end, merr *e);
/* Wipes the password. */
void sql_auth_stmt_free(sql_auth_stmt *a);

/* The statement text with its password literal replaced by '***', for logs. */
char *sql_auth_redact(const char *sql);

/* ---- the session side (auth.c) ---- */
/* Loads users and grants in the session's transaction (check_schema). */
int sql_auth_load(sql_session *s, merr *e);
void sql_auth_cache_free(sql_session *s);
/* 1 when privileges are enforced and the session user does not exist (or
 * is a role): a certificate for a name the catalog does not know, or a user
 * dropped while its session was open. */
int sql_auth_user_missing(sql_session *s);
/* 1 when the session may see and do everything: an insecure node, root,
 * or a user with ADMIN. */
int sql_auth_is_admin(sql_session *s);
/* 1 when the session user holds every privilege of need on table;
 * otherwise 0 with the denial in s->auth_msg. For checks SQLite's
 * authorizer cannot make (the DELETE of a REPLACE). */
int sql_auth_may(sql_session *s, const char *table, unsigned need);
/* Installs the authorizers on the session's connections. */
void sql_auth_install(sql_session *s);
/* ADMIN needed by a statement of this module (and more checks), then runs it. */
int sql_auth_exec(sql_session *s, const sql_auth_stmt *a, merr *e);
/* SHOW ...: the SELECT over a VALUES list that answers it. */
int sql_auth_show_sql(sql_session *s, const sql_auth_stmt *a, char **out, merr *e);
/* Turns the DDL authorizer on the scratch connection on (while it runs a
 * DDL statement) or off. */
void sql_auth_ddl(sql_session *s, int on);
/* After a DDL statement: a non-admin creator owns the new object (ALL);
 * grants on a dropped table go with it. */
int sql_auth_after_ddl(sql_session *s, merr *e);
/* Reads one user's SCRAM verifier in a transaction of its own. *found = 0
 * for unknown users and roles (which cannot log in). */
int sql_auth_lookup(sql_session *s, const char *user, char *verifier, size_t cap, int *found,
                    merr *e);

#endif
