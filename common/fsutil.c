/* File-system helpers (see fsutil.h). */
#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(merr *e, const char *what, const char *path)
{
    int err = errno;
    return merr_set(e, merr_from_errno(err), "%s %s: %s", what, path, strerror(err));
}

int mfs_mkdirs(const char *path, merr *e)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return merr_set(e, MERR_TOOBIG, "path too long: %s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST) return fail(e, "mkdir", tmp);
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return fail(e, "mkdir", tmp);
    struct stat st;
    if (stat(tmp, &st)) return fail(e, "stat", tmp);
    if (!S_ISDIR(st.st_mode)) return merr_set(e, MERR_INVALID, "%s is not a directory", tmp);
    return 0;
}

int mfs_fsync_dir(const char *dir, merr *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(e, "open dir", dir);
    int rc = 0;
    if (fsync(fd)) rc = fail(e, "fsync dir", dir);
    close(fd);
    return rc;
}

int mfs_write_full(int fd, const void *buf, size_t len, merr *e)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            return merr_set(e, merr_from_errno(err), "write: %s", strerror(err));
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int mfs_write_atomic(const char *path, const void *data, size_t len, merr *e)
{
    return mfs_write_atomic_mode(path, data, len, 0644, e);
}

int mfs_write_atomic_mode(const char *path, const void *data, size_t len, unsigned mode, merr *e)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return merr_set(e, MERR_TOOBIG, "path too long: %s", path);
    snprintf(dir, sizeof(dir), "%s", path);
    unlink(tmp); /* a leftover tmp keeps its old mode: start afresh */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) return fail(e, "create", tmp);
    int rc = mfs_write_full(fd, data, len, e);
    if (rc) {
        merr_wrap(e, "%s", tmp);
        goto err;
    }
    if (fsync(fd)) {
        rc = fail(e, "fsync", tmp);
        goto err;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path)) {
        rc = fail(e, "rename to", path);
        goto err;
    }
    return mfs_fsync_dir(dirname(dir), e);
err:
    if (fd >= 0) close(fd);
    unlink(tmp);
    return rc;
}

int mfs_read_all(const char *path, size_t max, mbuf *out, merr *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(e, "open", path);
    size_t total = 0;
    int rc = 0;
    for (;;) {
        if ((rc = mbuf_reserve(out, 4096))) {
            merr_set(e, rc, "read %s: out of memory", path);
            break;
        }
        ssize_t r = read(fd, out->data + out->len, out->cap - out->len);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = fail(e, "read", path);
            break;
        }
        if (r == 0) break;
        total += (size_t)r;
        out->len += (size_t)r;
        if (total > max) {
            rc = merr_set(e, MERR_TOOBIG, "%s is larger than %zu bytes", path, max);
            break;
        }
    }
    close(fd);
    return rc;
}

int mfs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Empties the directory open at dfd (closed here); `path` is for errors. */
static int remove_below(int dfd, const char *path, merr *e)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return fail(e, "opendir", path);
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (errno = 0, de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
        if (!unlinkat(dirfd(d), n, 0)) continue;
        if (errno != EISDIR && errno != EPERM) {
            rc = fail(e, "unlink in", path);
            break;
        }
        /* A directory: empty it, then remove it. */
        int sub = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            rc = fail(e, "open dir in", path);
            break;
        }
        rc = remove_below(sub, path, e);
        if (!rc && unlinkat(dirfd(d), n, AT_REMOVEDIR)) rc = fail(e, "rmdir in", path);
    }
    if (!rc && errno) rc = fail(e, "readdir", path);
    closedir(d);
    return rc;
}

int mfs_remove_tree(const char *path, merr *e)
{
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : fail(e, "stat", path);
    if (!S_ISDIR(st.st_mode)) return unlink(path) ? fail(e, "unlink", path) : 0;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return fail(e, "open dir", path);
    int rc = remove_below(dfd, path, e);
    if (rc) return rc;
    return rmdir(path) ? fail(e, "rmdir", path) : 0;
}
