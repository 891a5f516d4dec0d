/* The thread-safe history recorder (see jp_recorder.h). */
#include "tests/jepsen/jp_recorder.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsutil.h"

struct jp_recorder {
    int fd;
    pthread_mutex_t mu;
    char *path;
};

int jp_recorder_open(const char *path, jp_recorder **out, merr *e)
{
    *out = NULL;
    jp_recorder *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return merr_set(e, MERR_NOMEM, "recorder: out of memory");
    }
    r->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (r->fd < 0) {
        int rc = merr_set(e, merr_from_errno(errno), "open %s: %s", path, strerror(errno));
        free(r->path);
        free(r);
        return rc;
    }
    pthread_mutex_init(&r->mu, NULL);
    static const char hdr[] = "# meridian jepsen history: TIME PROCESS TYPE FUNCTION ARGS...\n";
    int rc = mfs_write_full(r->fd, hdr, sizeof(hdr) - 1, e);
    if (rc) {
        jp_recorder_close(r, NULL);
        return rc;
    }
    *out = r;
    return 0;
}

int jp_recorder_add(jp_recorder *r, const jp_op *op, merr *e)
{
    mbuf b = MBUF_INIT;
    int rc = jp_op_format(op, &b);
    if (!rc) rc = mbuf_append_u8(&b, '\n');
    if (rc) {
        mbuf_free(&b);
        return merr_set(e, rc, "recorder: out of memory");
    }
    pthread_mutex_lock(&r->mu);
    rc = mfs_write_full(r->fd, b.data, b.len, e);
    pthread_mutex_unlock(&r->mu);
    if (rc) merr_wrap(e, "record to %s", r->path);
    mbuf_free(&b);
    return rc;
}

int jp_recorder_comment(jp_recorder *r, const char *text, merr *e)
{
    mbuf b = MBUF_INIT;
    int rc = mbuf_append(&b, "# ", 2);
    if (!rc) rc = mbuf_append(&b, text, strlen(text));
    if (!rc) rc = mbuf_append_u8(&b, '\n');
    if (rc) {
        mbuf_free(&b);
        return merr_set(e, rc, "recorder: out of memory");
    }
    for (size_t i = 2; i + 1 < b.len; i++)
        if (b.data[i] == '\n' || b.data[i] == '\r') b.data[i] = ' ';
    pthread_mutex_lock(&r->mu);
    rc = mfs_write_full(r->fd, b.data, b.len, e);
    pthread_mutex_unlock(&r->mu);
    if (rc) merr_wrap(e, "record to %s", r->path);
    mbuf_free(&b);
    return rc;
}

int jp_recorder_close(jp_recorder *r, merr *e)
{
    if (!r) return 0;
    int rc = 0;
    if (fsync(r->fd) != 0)
        rc = merr_set(e, merr_from_errno(errno), "fsync %s: %s", r->path, strerror(errno));
    if (close(r->fd) != 0 && !rc)
        rc = merr_set(e, merr_from_errno(errno), "close %s: %s", r->path, strerror(errno));
    pthread_mutex_destroy(&r->mu);
    free(r->path);
    free(r);
    return rc;
}
