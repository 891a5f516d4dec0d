/* storage/range_faultvfs.c: a fault-injecting SQLite VFS for tests. It wraps
 * the default VFS and, once armed, makes writes fail with SQLITE_FULL or
 * SQLITE_IOERR_WRITE, or syncs fail with SQLITE_IOERR_FSYNC, after N more
 * operations — so disk-full and I/O-error paths run deterministically.
 *
 * It also simulates power loss: while tracking, every write/truncate keeps an
 * undo record (the bytes it overwrote) until the file's next successful
 * sync. range_faultvfs_power_cut() then rolls each file back to its last
 * sync plus a seeded random prefix of the later writes — what a disk that
 * persists writes in order may hold after losing power. */
#include "storage/range.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct undo_op {
    int64_t off;
    size_t old_len;  /* bytes of `old` (the overwritten part that existed) */
    int64_t new_end; /* file size implied by this op alone (write end, or truncate size) */
    int truncate;
    uint8_t *old;
    struct undo_op *prev; /* older op */
} undo_op;

typedef struct tracked {
    char *path;
    int has_base;
    int64_t base_size; /* size at the last sync */
    undo_op *ops;      /* newest first */
    struct tracked *next;
} tracked;

typedef struct ffile {
    sqlite3_file base;
    tracked *t;
    sqlite3_file *real; /* follows this struct in the same allocation */
} ffile;

static tracked *tracked_files;
static int tracking;

static void drop_ops(tracked *t)
{
    while (t->ops) {
        undo_op *o = t->ops;
        t->ops = o->prev;
        free(o->old);
        free(o);
    }
    t->has_base = 0;
}

void range_faultvfs_track(int on)
{
    for (tracked *t = tracked_files; t; t = t->next) drop_ops(t);
    tracking = on;
}

static tracked *track_path(const char *path)
{
    for (tracked *t = tracked_files; t; t = t->next)
        if (strcmp(t->path, path) == 0) return t;
    tracked *t = calloc(1, sizeof(*t));
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return NULL;
    }
    t->next = tracked_files;
    tracked_files = t;
    return t;
}

/* Records what [off, off+n) holds now (and the size) before it changes. */
static int record(sqlite3_file *real, tracked *t, int64_t off, int64_t n, int truncate)
{
    sqlite3_int64 size = 0;
    if (real->pMethods->xFileSize(real, &size) != SQLITE_OK) return SQLITE_IOERR;
    if (!t->has_base) {
        t->has_base = 1;
        t->base_size = size;
    }
    undo_op *o = calloc(1, sizeof(*o));
    if (!o) return SQLITE_NOMEM;
    o->off = off;
    o->truncate = truncate;
    o->new_end = truncate ? off : off + n;
    int64_t end = truncate ? size : off + n;
    if (end > size) end = size;
    if (end > off) {
        o->old_len = (size_t)(end - off);
        o->old = malloc(o->old_len);
        if (!o->old || real->pMethods->xRead(real, o->old, (int)o->old_len, off) != SQLITE_OK) {
            free(o->old);
            free(o);
            return SQLITE_IOERR;
        }
    }
    o->prev = t->ops;
    t->ops = o;
    return SQLITE_OK;
}

int range_faultvfs_power_cut(unsigned seed)
{
    int undone = 0;
    for (tracked *t = tracked_files; t; t = t->next) {
        if (!t->ops) continue;
        size_t n = 0;
        for (undo_op *o = t->ops; o; o = o->prev) n++;
        seed = seed * 1103515245u + 12345u;
        /* Half the time lose everything unsynced; else keep a random prefix. */
        size_t keep = (seed >> 16) % 2 ? 0 : (size_t)((seed >> 4) % (n + 1));
        int fd = open(t->path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            drop_ops(t);
            continue;
        }
        /* The size after the kept prefix: replay sizes oldest first. */
        int64_t *ends = calloc(n + 1, sizeof(*ends));
        int *truncs = calloc(n + 1, sizeof(*truncs));
        size_t i = n;
        for (undo_op *o = t->ops; o && ends && truncs; o = o->prev) {
            ends[--i] = o->new_end;
            truncs[i] = o->truncate;
        }
        int64_t size = t->base_size;
        for (i = 0; i < keep && ends && truncs; i++)
            size = truncs[i] ? ends[i] : (ends[i] > size ? ends[i] : size);
        /* Undo the newer ops, newest first. */
        i = n;
        for (undo_op *o = t->ops; o && i > keep; o = o->prev, i--) {
            if (o->old_len && pwrite(fd, o->old, o->old_len, o->off) != (ssize_t)o->old_len)
                undone = -1;
            if (undone >= 0) undone++;
        }
        if (ftruncate(fd, size) != 0) undone = -1;
        close(fd);
        free(ends);
        free(truncs);
        drop_ops(t);
    }
    return undone;
}

static sqlite3_vfs fault_vfs;
static sqlite3_vfs *real_vfs;
static range_fault_mode fault_mode;
static long fault_after, fault_failures;

void range_faultvfs_set(range_fault_mode mode, long after)
{
    fault_mode = mode;
    fault_after = after;
}

long range_faultvfs_failures(void)
{
    return fault_failures;
}

/* 1 if this operation (write or sync) must fail. */
static int trip(int is_sync)
{
    if (fault_mode == RANGE_FAULT_NONE) return 0;
    if ((fault_mode == RANGE_FAULT_SYNC_IOERR) != is_sync) return 0;
    if (fault_after > 0) {
        fault_after--;
        return 0;
    }
    fault_failures++;
    return 1;
}

#define REAL(f) (((ffile *)(f))->real)

static int f_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return rc;
}
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (trip(0)) return fault_mode == RANGE_FAULT_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    tracked *t = ((ffile *)f)->t;
    int rc = tracking && t ? record(REAL(f), t, off, n, 0) : SQLITE_OK;
    return rc == SQLITE_OK ? REAL(f)->pMethods->xWrite(REAL(f), p, n, off) : rc;
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    tracked *t = ((ffile *)f)->t;
    int rc = tracking && t ? record(REAL(f), t, size, 0, 1) : SQLITE_OK;
    return rc == SQLITE_OK ? REAL(f)->pMethods->xTruncate(REAL(f), size) : rc;
}
static int f_sync(sqlite3_file *f, int flags)
{
    if (trip(1)) return SQLITE_IOERR_FSYNC;
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    /* Synced: everything written so far survives a power cut. */
    if (rc == SQLITE_OK && ((ffile *)f)->t) drop_ops(((ffile *)f)->t);
    return rc;
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_check(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shmbarrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shmunmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    /* No memory-mapped reads: every read goes through xRead. */
    *pp = NULL;
    return SQLITE_OK;
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return SQLITE_OK;
}

static const sqlite3_io_methods fault_methods = {
    3,         f_close,      f_read,     f_write, f_truncate, f_sync,    f_size,
    f_lock,    f_unlock,     f_check,    f_fcntl, f_sector,   f_devchar, f_shmmap,
    f_shmlock, f_shmbarrier, f_shmunmap, f_fetch, f_unfetch,
};

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *oflags)
{
    ffile *ff = (ffile *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->t = name ? track_path(name) : NULL;
    memset(ff->real, 0, (size_t)real_vfs->szOsFile);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, oflags);
    /* SQLite calls xClose even after a failed open if pMethods is set. */
    f->pMethods = ff->real->pMethods ? &fault_methods : NULL;
    return rc;
}
static int v_delete(sqlite3_vfs *v, const char *name, int sync)
{
    return real_vfs->xDelete(real_vfs, name, sync);
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int v_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *p)
{
    return real_vfs->xDlOpen(real_vfs, p);
}
static void v_dlerror(sqlite3_vfs *v, int n, char *msg)
{
    real_vfs->xDlError(real_vfs, n, msg);
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void)
{
    return real_vfs->xDlSym(real_vfs, h, s);
}
static void v_dlclose(sqlite3_vfs *v, void *h)
{
    real_vfs->xDlClose(real_vfs, h);
}
static int v_random(sqlite3_vfs *v, int n, char *out)
{
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
    return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *v, double *t)
{
    return real_vfs->xCurrentTime(real_vfs, t);
}
static int v_lasterr(sqlite3_vfs *v, int n, char *s)
{
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, s) : 0;
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
    return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

int range_faultvfs_register(void)
{
    if (real_vfs) return 0;
    sqlite3_vfs *d = sqlite3_vfs_find(NULL);
    if (!d) return MERR_INTERNAL;
    real_vfs = d;
    fault_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(ffile) + d->szOsFile,
        .mxPathname = d->mxPathname,
        .zName = RANGE_FAULT_VFS,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_fullpath,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_lasterr,
        .xCurrentTimeInt64 = v_time64,
    };
    return sqlite3_vfs_register(&fault_vfs, 0) == SQLITE_OK ? 0 : MERR_INTERNAL;
}
