/* storage/range_db.c: a range replica's SQLite database — schema, settings,
 * open/create/close, the prepared-statement cache, metadata and error mapping.
 * The MVCC reads and writes are in range_mvcc.c. */
#include "storage/range_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RANGE_FORMAT 1 /* PRAGMA user_version of a range database */

/* Schema. `versions` is WITHOUT ROWID so rows live in the primary-key b-tree
 * itself: a read "newest version of k at or below t" is one seek to (k, t) in
 * an index ordered (key ASC, ts DESC), and the first row found is the answer.
 * ts DESC also makes a forward scan meet each key's newest version first.
 * A tombstone is a NULL val; an empty value is a zero-length blob. */
static const char *const schema_sql =
    "BEGIN;" /* one transaction: creating a range is one commit, not six */
    "CREATE TABLE meta(id INTEGER PRIMARY KEY CHECK (id = 1),"
    " range_id INTEGER NOT NULL, generation INTEGER NOT NULL,"
    " start_key BLOB NOT NULL, end_key BLOB NOT NULL,"
    " applied INTEGER NOT NULL, gc_horizon INTEGER NOT NULL,"
    " live_keys INTEGER NOT NULL, live_bytes INTEGER NOT NULL,"
    " total_bytes INTEGER NOT NULL, versions INTEGER NOT NULL,"
    " syncs INTEGER NOT NULL DEFAULT 0);" /* bumped by range_sync */
    "CREATE TABLE versions(key BLOB NOT NULL, ts INTEGER NOT NULL, val BLOB,"
    " PRIMARY KEY (key, ts DESC)) WITHOUT ROWID;"
    "CREATE TABLE intents(txn BLOB PRIMARY KEY, prepare_ts INTEGER NOT NULL,"
    " coord BLOB NOT NULL) WITHOUT ROWID;"
    /* kind 0 put (val = value), 1 delete, 2 span lock (val = span end) */
    "CREATE TABLE intent_items(txn BLOB NOT NULL, seq INTEGER NOT NULL,"
    " kind INTEGER NOT NULL, key BLOB NOT NULL, val BLOB,"
    " PRIMARY KEY (txn, seq)) WITHOUT ROWID;"
    /* An in-flight split or merge (range_split.c); at most one row. */
    "CREATE TABLE pending(id INTEGER PRIMARY KEY CHECK (id = 1), op TEXT NOT NULL,"
    " key BLOB, new_id INTEGER, path TEXT NOT NULL, slot INTEGER NOT NULL);"
    "PRAGMA user_version = 1;"
    "COMMIT;";

static const char *const stmt_sql[RS__COUNT] = {
    [RS_GET] = "SELECT ts, val FROM versions WHERE key = ?1 AND ts <= ?2 ORDER BY ts DESC LIMIT 1",
    [RS_LATEST] = "SELECT ts, length(val), val IS NULL FROM versions WHERE key = ?1"
                  " ORDER BY ts DESC LIMIT 1",
    [RS_EXACT] = "SELECT length(val), val IS NULL FROM versions WHERE key = ?1 AND ts = ?2",
    [RS_PUT] = "INSERT OR REPLACE INTO versions(key, ts, val) VALUES (?1, ?2, ?3)",
    /* For a version known to be new (the common case): no conflict handling. */
    [RS_PUT_NEW] = "INSERT INTO versions(key, ts, val) VALUES (?1, ?2, ?3)",
    [RS_DEL_VERSION] = "DELETE FROM versions WHERE key = ?1 AND ts = ?2",
    [RS_META_SAVE] = "UPDATE meta SET range_id = ?1, generation = ?2, start_key = ?3,"
                     " end_key = ?4, applied = ?5, gc_horizon = ?6, live_keys = ?7,"
                     " live_bytes = ?8, total_bytes = ?9, versions = ?10 WHERE id = 1",
    /* Scans walk (key, ts) order without a ts filter, so range_scan.c sees
     * how many versions it passes and can re-seek past a long history. The
     * _OPEN variants have no end bound (kept apart so both bounds stay index
     * range limits). Reverse walks the index backwards: keys descending,
     * each key's versions oldest first. */
    [RS_SCAN_FWD] = "SELECT key, ts, val FROM versions WHERE key >= ?1 AND key < ?2"
                    " ORDER BY key ASC, ts DESC",
    [RS_SCAN_REV] = "SELECT key, ts, val FROM versions WHERE key >= ?1 AND key < ?2"
                    " ORDER BY key DESC, ts ASC",
    [RS_SCAN_FWD_OPEN] = "SELECT key, ts, val FROM versions WHERE key >= ?1"
                         " ORDER BY key ASC, ts DESC",
    [RS_SCAN_REV_OPEN] = "SELECT key, ts, val FROM versions WHERE key >= ?1"
                         " ORDER BY key DESC, ts ASC",
    [RS_INTENT_PUT] = "INSERT INTO intents(txn, prepare_ts, coord) VALUES (?1, ?2, ?3)",
    [RS_INTENT_ITEM_PUT] = "INSERT INTO intent_items(txn, seq, kind, key, val)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)",
    [RS_INTENT_GET] = "SELECT prepare_ts FROM intents WHERE txn = ?1",
    [RS_INTENT_ITEMS] = "SELECT kind, key, val FROM intent_items WHERE txn = ?1 ORDER BY seq",
    [RS_INTENT_DEL] = "DELETE FROM intents WHERE txn = ?1",
    [RS_INTENT_ITEMS_DEL] = "DELETE FROM intent_items WHERE txn = ?1",
    [RS_BEGIN] = "BEGIN IMMEDIATE",
    [RS_COMMIT] = "COMMIT",
    [RS_ROLLBACK] = "ROLLBACK",
};

int range_in_span(const range *r, const uint8_t *key, size_t klen)
{
    /* A range-local key belongs where its anchor does (common/localkey.h). */
    if (mlocal_is(key, klen))
        return mlocal_in_span(key, klen, r->start.data, r->start.len, r->end.data, r->end.len);
    if (mbytes_cmp(key, klen, r->start.data, r->start.len) < 0) return 0;
    if (r->end.len && mbytes_cmp(key, klen, r->end.data, r->end.len) >= 0) return 0;
    return 1;
}

int range_check_ts(range *r, uint64_t ts, const char *what)
{
    if (ts == 0 || ts == RANGE_TS_MAX)
        return merr_set(&r->err, MERR_INVALID, "%s timestamp %llu is reserved (0 or latest)", what,
                        (unsigned long long)ts);
    return 0;
}

int range_mark_corrupt(const char *path)
{
    char m[4096];
    snprintf(m, sizeof(m), "%s.corrupt", path);
    int fd = open(m, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return merr_from_errno(errno);
    fsync(fd);
    close(fd);
    range_fsync_dir(path, NULL);
    return 0;
}

int range_marked_corrupt(const char *path)
{
    char m[4096];
    snprintf(m, sizeof(m), "%s.corrupt", path);
    return access(m, F_OK) == 0;
}

int range_sqlerr(range *r, int rc, const char *ctx)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return 0;
    case SQLITE_FULL: code = MERR_NOSPACE; break;
    case SQLITE_IOERR: code = rc == SQLITE_IOERR_NOMEM ? MERR_NOMEM : MERR_IO; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = MERR_CORRUPT; break;
    case SQLITE_NOMEM: code = MERR_NOMEM; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = MERR_BUSY; break;
    case SQLITE_CANTOPEN: code = MERR_IO; break;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE: code = MERR_INVALID; break;
    default: code = MERR_INTERNAL; break;
    }
    const char *msg = r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc);
    if (code == MERR_CORRUPT && !r->corrupt) {
        /* Never serve a damaged replica again, even after a restart: only a
         * snapshot install (which replaces the file) clears the marker. */
        r->corrupt = 1;
        range_mark_corrupt(r->path);
    }
    return merr_set(&r->err, code, "range %llu %s: %s: sqlite: %s (%d)",
                    (unsigned long long)r->range_id, r->path, ctx, msg, rc);
}

sqlite3_stmt *range_stmt(range *r, int id)
{
    sqlite3_stmt *s = r->stmts[id];
    if (!s) {
        int rc = sqlite3_prepare_v3(r->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &r->stmts[id], NULL);
        if (rc != SQLITE_OK) {
            range_sqlerr(r, rc, "prepare");
            return NULL;
        }
        return r->stmts[id];
    }
    /* Callers bind every parameter, so bindings need no clearing. */
    sqlite3_reset(s);
    return s;
}

static int run_simple(range *r, int id, const char *ctx)
{
    sqlite3_stmt *s = range_stmt(r, id);
    if (!s) return r->err.code;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return range_sqlerr(r, rc, ctx);
    return 0;
}

int range_begin(range *r)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    return run_simple(r, RS_BEGIN, "begin");
}

int range_commit(range *r)
{
    return run_simple(r, RS_COMMIT, "commit");
}

void range_rollback(range *r)
{
    /* SQLite may already have rolled back (e.g. after SQLITE_FULL). */
    if (sqlite3_get_autocommit(r->db)) return;
    sqlite3_stmt *s = range_stmt(r, RS_ROLLBACK);
    if (s) {
        sqlite3_step(s);
        sqlite3_reset(s);
    }
}

int range_bind_bytes(sqlite3_stmt *s, int i, const void *p, size_t n)
{
    if (!n) return sqlite3_bind_zeroblob(s, i, 0);
    return sqlite3_bind_blob(s, i, p, (int)n, SQLITE_STATIC);
}

int range_meta_save(range *r)
{
    sqlite3_stmt *s = range_stmt(r, RS_META_SAVE);
    if (!s) return r->err.code;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)r->range_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)r->generation);
    range_bind_bytes(s, 3, r->start.data, r->start.len);
    range_bind_bytes(s, 4, r->end.data, r->end.len);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)r->applied);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)r->gc_horizon);
    sqlite3_bind_int64(s, 7, r->stats.live_keys);
    sqlite3_bind_int64(s, 8, r->stats.live_bytes);
    sqlite3_bind_int64(s, 9, r->stats.total_bytes);
    sqlite3_bind_int64(s, 10, r->stats.versions);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return range_sqlerr(r, rc, "save meta");
    return 0;
}

int range_meta_load(range *r)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(r->db,
                                "SELECT range_id, generation, start_key, end_key, applied,"
                                " gc_horizon, live_keys, live_bytes, total_bytes, versions"
                                " FROM meta WHERE id = 1",
                                -1, &s, NULL);
    if (rc != SQLITE_OK) return range_sqlerr(r, rc, "load meta");
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        int code = rc == SQLITE_DONE
                       ? merr_set(&r->err, MERR_CORRUPT, "range %s: meta row missing", r->path)
                       : range_sqlerr(r, rc, "load meta");
        sqlite3_finalize(s);
        return code;
    }
    r->range_id = (uint64_t)sqlite3_column_int64(s, 0);
    r->generation = (uint64_t)sqlite3_column_int64(s, 1);
    mbuf_reset(&r->start);
    mbuf_reset(&r->end);
    int ok = mbuf_append(&r->start, sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2));
    ok |= mbuf_append(&r->end, sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3));
    r->applied = (uint64_t)sqlite3_column_int64(s, 4);
    r->gc_horizon = (uint64_t)sqlite3_column_int64(s, 5);
    r->stats.live_keys = sqlite3_column_int64(s, 6);
    r->stats.live_bytes = sqlite3_column_int64(s, 7);
    r->stats.total_bytes = sqlite3_column_int64(s, 8);
    r->stats.versions = sqlite3_column_int64(s, 9);
    sqlite3_finalize(s);
    return ok ? merr_set(&r->err, MERR_NOMEM, "load meta") : 0;
}

/* SQLite settings, chosen on purpose:
 *  - journal_mode=WAL: readers (snapshots, reads) never block the writer and a
 *    commit is one sequential append. (synchronous=OFF just around the switch:
 *    on a new, empty file it would otherwise cost several fsyncs; range_create
 *    syncs once at the end.)
 *  - synchronous=NORMAL: the WAL is fsynced only at checkpoints, not at every
 *    commit. The Paxos log is the durable record, so losing the last commits
 *    on power loss is allowed — but the applied slot must never claim effects
 *    that are not in the database. It cannot: the slot is written in the same
 *    transaction as its effects, and a WAL transaction is atomic (its commit
 *    frame is checksummed; a torn tail is discarded on recovery), so after a
 *    crash the database is exactly "all slots <= applied" for some earlier
 *    applied. Replication replays the rest from its log. The one extra rule:
 *    the log may be truncated only up to a slot made durable by range_sync()
 *    (a commit with synchronous=FULL = fsync of the WAL), never to the
 *    in-memory applied slot. A process
 *    crash (no power loss) loses nothing: committed WAL frames are in the OS.
 *  - cache_size bounded per handle (default 1 MiB), and few handles open at a
 *    time (range_cache), so 10,000 ranges do not hold 10,000 page caches.
 *  - mmap_size=0: no memory map, so an I/O error is an error code, not SIGBUS,
 *    and thousands of ranges do not eat address space.
 *  - No checkpoint on close (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, set at open):
 *    the handle cache closes idle ranges often, and a checkpoint + fsync per
 *    close made reopening ~5x slower. The WAL stays; autocheckpoint drains it.
 *  - temp_store=MEMORY (sorts are small), journal_size_limit keeps an idle
 *    range's WAL small after checkpoints, busy_timeout covers checkpoints that
 *    race a snapshot reader. */
int range_configure(sqlite3 *db, const range_opts *o, merr *e)
{
    char sql[512];
    int kib = o && o->cache_kib > 0 ? o->cache_kib : 1024;
    snprintf(sql, sizeof(sql),
             "PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
             " PRAGMA cache_size=-%d;"
             " PRAGMA mmap_size=0; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=1000;"
             " PRAGMA journal_size_limit=4194304;",
             kib);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT ? MERR_CORRUPT
                   : (rc & 0xff) == SQLITE_FULL                                  ? MERR_NOSPACE
                                                                                 : MERR_IO;
        merr_set(e, code, "configure sqlite: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

int range_schema_create(sqlite3 *db, merr *e)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, schema_sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = (rc & 0xff) == SQLITE_FULL ? MERR_NOSPACE : MERR_IO;
        merr_set(e, code, "create schema: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

int range_fsync_dir(const char *path, merr *e)
{
    char *copy = strdup(path);
    if (!copy) return merr_set(e, MERR_NOMEM, "fsync dir");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0)
        rc = merr_set(e, merr_from_errno(errno), "fsync dir of %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    free(copy);
    return rc;
}

static int open_handle(const char *path, const range_opts *o, int flags, range **out, merr *e)
{
    range *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return merr_set(e, MERR_NOMEM, "open range %s", path);
    }
    if (o) r->opts = *o;
    r->opts.vfs = NULL; /* not owned; kept only for this call */
    int rc = sqlite3_open_v2(path, &r->db, flags | SQLITE_OPEN_NOMUTEX, o ? o->vfs : NULL);
    if (rc != SQLITE_OK) {
        int code =
            rc == SQLITE_CANTOPEN && (flags & SQLITE_OPEN_CREATE) == 0 ? MERR_NOTFOUND : MERR_IO;
        merr_set(e, code, "open range %s: %s", path,
                 r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
        goto err;
    }
    sqlite3_extended_result_codes(r->db, 1);
    /* Closing must be cheap: the handle cache closes and reopens idle ranges
     * all the time. Without this, every close checkpoints and fsyncs; the
     * WAL simply stays and is checkpointed by later use (autocheckpoint). */
    sqlite3_db_config(r->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    if ((rc = range_configure(r->db, o, e)) != 0) {
        merr_wrap(e, "open range %s", path);
        goto err;
    }
    *out = r;
    return 0;
err:
    rc = e ? e->code : MERR_IO;
    range_close(r);
    return rc ? rc : MERR_IO;
}

int range_create(const char *path, const range_desc *d, const range_opts *o, range **out, merr *e)
{
    if (!d || d->range_id == 0 || d->start_len > RANGE_KEY_MAX || d->end_len > RANGE_KEY_MAX ||
        (d->end_len && mbytes_cmp(d->start, d->start_len, d->end, d->end_len) >= 0))
        return merr_set(e, MERR_INVALID, "create range %s: bad descriptor", path);
    if (access(path, F_OK) == 0)
        return merr_set(e, MERR_EXISTS, "create range %s: file exists", path);
    range *r = NULL;
    int rc = open_handle(path, o, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &r, e);
    if (rc) return rc;
    if ((rc = range_schema_create(r->db, e)) != 0) goto err;
    r->range_id = d->range_id;
    r->generation = d->generation;
    if (mbuf_append(&r->start, d->start, d->start_len) ||
        mbuf_append(&r->end, d->end, d->end_len)) {
        rc = merr_set(e, MERR_NOMEM, "create range");
        goto err;
    }
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(
        r->db, "INSERT INTO meta VALUES (1, ?1, ?2, ?3, ?4, 0, 0, 0, 0, 0, 0, 0)", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)d->range_id);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)d->generation);
        range_bind_bytes(s, 3, d->start, d->start_len);
        range_bind_bytes(s, 4, d->end, d->end_len);
        rc = sqlite3_step(s);
        sqlite3_finalize(s);
    }
    if (rc != SQLITE_DONE) {
        rc = range_sqlerr(r, rc, "create meta");
        merr_set(e, rc, "%s", r->err.msg);
        goto err;
    }
    /* Durable once created: the WAL (schema, meta) and the directory entries. */
    if ((rc = range_sync(r, NULL)) != 0) {
        merr_set(e, rc, "%s", r->err.msg);
        goto err;
    }
    if ((rc = range_fsync_dir(path, e)) != 0) goto err;
    *out = r;
    return 0;
err:
    range_close(r);
    range_destroy(path, NULL);
    return rc;
}

int range_open(const char *path, const range_opts *o, range **out, merr *e)
{
    if (range_marked_corrupt(path))
        return merr_set(e, MERR_CORRUPT,
                        "open range %s: replica marked corrupt; rebuild it from a snapshot", path);
    if (access(path, F_OK) != 0)
        return merr_set(e, MERR_NOTFOUND, "open range %s: no such file", path);
    range *r = NULL;
    int rc = open_handle(path, o, SQLITE_OPEN_READWRITE, &r, e);
    if (rc) {
        if (rc == MERR_CORRUPT) range_mark_corrupt(path);
        return rc;
    }
    sqlite3_stmt *s = NULL;
    int ver = -1;
    rc = sqlite3_prepare_v2(r->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) ver = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (ver < 0) {
        rc = range_sqlerr(r, rc, "read format");
        goto err;
    }
    if (ver != RANGE_FORMAT) {
        rc = merr_set(&r->err, MERR_CORRUPT, "%s is not a range database (format %d)", path, ver);
        goto err;
    }
    if ((rc = range_meta_load(r)) != 0) goto err;
    if ((rc = range_recover(r)) != 0) goto err;
    *out = r;
    return 0;
err:
    merr_set(e, rc, "open range: %s", r->err.msg);
    range_close(r);
    return rc;
}

void range_close(range *r)
{
    if (!r) return;
    for (int i = 0; i < RS__COUNT; i++) sqlite3_finalize(r->stmts[i]);
    if (r->db) sqlite3_close_v2(r->db);
    mbuf_free(&r->start);
    mbuf_free(&r->end);
    mbuf_free(&r->gc_cursor);
    free(r->path);
    free(r);
}

int range_destroy(const char *path, merr *e)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal", ".corrupt", ".tmp"};
    char p[4096];
    int rc = 0;
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        if (unlink(p) != 0 && errno != ENOENT && !rc)
            rc = merr_set(e, merr_from_errno(errno), "remove %s: %s", p, strerror(errno));
    }
    range_fsync_dir(path, NULL);
    return rc;
}

const char *range_path(const range *r)
{
    return r->path;
}

const merr *range_err(const range *r)
{
    return &r->err;
}

int range_is_corrupt(const range *r)
{
    return r->corrupt;
}

int range_get_meta(range *r, range_meta *m)
{
    m->range_id = r->range_id;
    m->generation = r->generation;
    m->applied = r->applied;
    m->gc_horizon = r->gc_horizon;
    m->start = r->start.data;
    m->start_len = r->start.len;
    m->end = r->end.data;
    m->end_len = r->end.len;
    m->stats = r->stats;
    return 0;
}

int range_sync(range *r, uint64_t *durable)
{
    if (r->corrupt) return merr_set(&r->err, MERR_CORRUPT, "range %s is marked corrupt", r->path);
    /* One tiny commit under synchronous=FULL fsyncs the WAL, and with it
     * every frame committed before. Unlike a FULL checkpoint it does not wait
     * for snapshot readers to move on. */
    int rc = sqlite3_exec(r->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return range_sqlerr(r, rc, "sync");
    /* The row must really change: SQLite skips writing identical content,
     * and a commit without frames syncs nothing. */
    if ((rc = range_begin(r)) == 0) {
        rc = sqlite3_exec(r->db, "UPDATE meta SET syncs = syncs + 1", NULL, NULL, NULL);
        rc = rc == SQLITE_OK ? range_commit(r) : range_sqlerr(r, rc, "sync");
    }
    if (rc) range_rollback(r);
    sqlite3_exec(r->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (!rc && durable) *durable = r->applied;
    return rc;
}
