/* Store directory: lock and identity (see store_dir.h). */
#include "server/store_dir.h"

#include "common/buf.h"
#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#define IDENTITY_MAX 4096

static int valid_cluster_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= STORE_CLUSTER_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
            return 0;
    return 1;
}

/* IDENTITY is "key=value" lines; unknown keys are an error so that a newer
 * format is never half-understood by an older binary. */
static int parse_identity(store_dir *sd, const char *path, char *text, merr *e)
{
    int line = 0, have_fmt = 0, have_cluster = 0, have_node = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char *eq = strchr(l, '=');
        if (!eq) return merr_set(e, MERR_CORRUPT, "%s: line %d: want key=value", path, line);
        *eq = '\0';
        const char *k = l, *v = eq + 1;
        char *end;
        if (strcmp(k, "format") == 0) {
            long f = strtol(v, &end, 10);
            if (*end || f != STORE_FORMAT_VERSION)
                return merr_set(e, MERR_CORRUPT, "%s: format '%s' is not %d (newer binary?)", path,
                                v, STORE_FORMAT_VERSION);
            have_fmt = 1;
        } else if (strcmp(k, "cluster_id") == 0) {
            if (!valid_cluster_id(v))
                return merr_set(e, MERR_CORRUPT, "%s: line %d: bad cluster id", path, line);
            snprintf(sd->cluster_id, sizeof(sd->cluster_id), "%s", v);
            have_cluster = 1;
        } else if (strcmp(k, "node_id") == 0) {
            errno = 0;
            unsigned long long id = strtoull(v, &end, 10);
            if (errno || *end || id == 0 || v[0] == '-')
                return merr_set(e, MERR_CORRUPT, "%s: line %d: bad node id", path, line);
            sd->node_id = id;
            have_node = 1;
        } else {
            return merr_set(e, MERR_CORRUPT, "%s: line %d: unknown key '%s'", path, line, k);
        }
    }
    if (!have_fmt || !have_cluster || !have_node)
        return merr_set(e, MERR_CORRUPT, "%s: incomplete (needs format, cluster_id, node_id)",
                        path);
    sd->has_identity = 1;
    return 0;
}

int store_dir_open(const char *path, store_dir *sd, merr *e)
{
    memset(sd, 0, sizeof(*sd));
    sd->lock_fd = -1;
    if (snprintf(sd->path, sizeof(sd->path), "%s", path) >= (int)sizeof(sd->path))
        return merr_set(e, MERR_TOOBIG, "store path too long");
    int rc = mfs_mkdirs(path, e);
    if (rc) return merr_wrap(e, "store");
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/LOCK", path);
    sd->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (sd->lock_fd < 0)
        return merr_set(e, merr_from_errno(errno), "store: open %s: %s", p, strerror(errno));
    if (flock(sd->lock_fd, LOCK_EX | LOCK_NB)) {
        char owner[32] = "?";
        ssize_t n = pread(sd->lock_fd, owner, sizeof(owner) - 1, 0);
        owner[n > 0 ? n : 0] = '\0';
        owner[strcspn(owner, "\n")] = '\0';
        close(sd->lock_fd);
        sd->lock_fd = -1;
        return merr_set(e, MERR_BUSY, "store %s is in use by another process (pid %s)", path,
                        owner);
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(sd->lock_fd, 0) == 0) {
        ssize_t w = pwrite(sd->lock_fd, pid, (size_t)n, 0);
        (void)w; /* the pid is advice for humans; the flock is the lock */
    }
    snprintf(p, sizeof(p), "%s/IDENTITY", path);
    mbuf b = MBUF_INIT;
    rc = mfs_read_all(p, IDENTITY_MAX, &b, e);
    if (rc == MERR_NOTFOUND) {
        merr_clear(e);
        rc = 0;
    } else if (rc == 0) {
        if (mbuf_append_u8(&b, 0))
            rc = merr_set(e, MERR_NOMEM, "out of memory");
        else
            rc = parse_identity(sd, p, (char *)b.data, e);
    }
    mbuf_free(&b);
    if (rc) store_dir_close(sd);
    return rc;
}

void store_dir_close(store_dir *sd)
{
    if (sd->lock_fd >= 0) close(sd->lock_fd); /* releases the flock */
    sd->lock_fd = -1;
}

int store_dir_set_identity(store_dir *sd, const char *cluster_id, uint64_t node_id, merr *e)
{
    if (!valid_cluster_id(cluster_id)) return merr_set(e, MERR_INVALID, "bad cluster id");
    if (node_id == 0) return merr_set(e, MERR_INVALID, "node id 0 is reserved");
    int rc = store_dir_check_cluster(sd, cluster_id, e);
    if (rc) return rc;
    char text[256];
    int n = snprintf(text, sizeof(text), "format=%d\ncluster_id=%s\nnode_id=%" PRIu64 "\n",
                     STORE_FORMAT_VERSION, cluster_id, node_id);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/IDENTITY", sd->path);
    rc = mfs_write_atomic(p, text, (size_t)n, e);
    if (rc) return merr_wrap(e, "store identity");
    snprintf(sd->cluster_id, sizeof(sd->cluster_id), "%s", cluster_id);
    sd->node_id = node_id;
    sd->has_identity = 1;
    return 0;
}

int store_dir_check_cluster(const store_dir *sd, const char *cluster_id, merr *e)
{
    if (!sd->has_identity || strcmp(sd->cluster_id, cluster_id) == 0) return 0;
    return merr_set(e, MERR_INVALID,
                    "store %s belongs to cluster %s, not %s: refusing to mix clusters' data "
                    "(use an empty --store for a new cluster)",
                    sd->path, sd->cluster_id, cluster_id);
}

int store_dir_subdir(const store_dir *sd, const char *name, char *out, size_t cap, merr *e)
{
    if (snprintf(out, cap, "%s/%s", sd->path, name) >= (int)cap)
        return merr_set(e, MERR_TOOBIG, "path too long");
    return mfs_mkdirs(out, e);
}

int store_new_cluster_id(char out[STORE_CLUSTER_ID_MAX], merr *e)
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return merr_set(e, MERR_IO, "getrandom: %s", strerror(errno));
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}
