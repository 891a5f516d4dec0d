/* Hybrid logical clock: timestamps, their encoding and text form, the clock
 * rules, and the fsynced high-water-mark file (see hlc.h). */
#include "timesvc/hlc.h"

#include "common/buf.h"
#include "common/crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void hlc_encode(hlc_ts t, uint8_t out[HLC_ENCODED_LEN])
{
    mbe64_put(out, t);
}

hlc_ts hlc_decode(const uint8_t in[HLC_ENCODED_LEN])
{
    return mbe64_get(in);
}

int hlc_decode_buf(const void *p, size_t n, hlc_ts *out, merr *e)
{
    if (n != HLC_ENCODED_LEN)
        return merr_set(e, MERR_CORRUPT, "hlc timestamp: %zu bytes, want %d", n, HLC_ENCODED_LEN);
    *out = hlc_decode(p);
    return 0;
}

int hlc_format(hlc_ts t, char *buf, size_t cap)
{
    uint64_t us = hlc_physical_us(t);
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) return MERR_INVALID;
    int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ+%u", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(us % 1000000), hlc_logical(t));
    if (n < 0 || (size_t)n >= cap) return MERR_TOOBIG;
    return n;
}

/* Reads exactly `n` digits. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        x = x * 10 + (c - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c) return -1;
    (*p)++;
    return 0;
}

int hlc_parse(const char *s, hlc_ts *out, merr *e)
{
    const char *p = s;
    int Y, M, D, h, m, sec, frac = 0;
    if (!s) return merr_set(e, MERR_INVALID, "hlc timestamp: empty");
    if (digits(&p, 4, &Y) || expect(&p, '-') || digits(&p, 2, &M) || expect(&p, '-') ||
        digits(&p, 2, &D) || expect(&p, 'T') || digits(&p, 2, &h) || expect(&p, ':') ||
        digits(&p, 2, &m) || expect(&p, ':') || digits(&p, 2, &sec))
        goto bad;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (p[nd] >= '0' && p[nd] <= '9') nd++;
        if (nd < 1 || nd > 6 || digits(&p, nd, &frac)) goto bad;
        for (int i = nd; i < 6; i++) frac *= 10;
    }
    if (expect(&p, 'Z')) goto bad;
    uint64_t logical = 0;
    if (*p == '+') {
        p++;
        if (*p < '0' || *p > '9') goto bad;
        while (*p >= '0' && *p <= '9') {
            logical = logical * 10 + (uint64_t)(*p - '0');
            if (logical > HLC_LOGICAL_MAX)
                return merr_set(e, MERR_INVALID, "hlc timestamp '%s': logical part above %u", s,
                                HLC_LOGICAL_MAX);
            p++;
        }
    }
    if (*p) goto bad;
    if (Y < 1970) return merr_set(e, MERR_INVALID, "hlc timestamp '%s': before 1970", s);
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    struct tm back;
    /* timegm normalises 2026-02-31 into March: a round trip catches it. */
    if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_year != Y - 1900 ||
        back.tm_mon != M - 1 || back.tm_mday != D || back.tm_hour != h || back.tm_min != m ||
        back.tm_sec != sec)
        return merr_set(e, MERR_INVALID, "hlc timestamp '%s': no such date or time", s);
    uint64_t us = (uint64_t)t * 1000000 + (uint64_t)frac;
    if (us > HLC_PHYS_MAX_US)
        return merr_set(e, MERR_INVALID, "hlc timestamp '%s': beyond the year 2112", s);
    *out = hlc_make(us, (uint32_t)logical);
    return 0;
bad:
    return merr_set(e, MERR_INVALID,
                    "hlc timestamp '%s': want YYYY-MM-DDTHH:MM:SS[.ffffff]Z[+LOGICAL]", s);
}

/* ---- the clock ---- */

void hlc_config_default(hlc_config *cfg)
{
    cfg->max_offset_ns = HLC_DEFAULT_MAX_OFFSET_NS;
    cfg->window_ns = HLC_DEFAULT_WINDOW_NS;
}

int hlc_init(hlc *h, const hlc_config *cfg, const hlc_store_ops *store, merr *e)
{
    memset(h, 0, sizeof(*h));
    if (cfg->max_offset_ns < 0 || cfg->window_ns <= 0)
        return merr_set(e, MERR_INVALID, "hlc: max offset must be >= 0 and window > 0");
    h->cfg = *cfg;
    if (store) h->store = *store;
    if (!h->store.load) return 0;
    hlc_ts hw = 0;
    int rc = h->store.load(h->store.ctx, &hw, e);
    if (rc == MERR_NOTFOUND) {
        merr_clear(e);
        return 0;
    }
    if (rc) return merr_wrap(e, "hlc: load high-water mark");
    /* Everything the previous run handed out is below hw. */
    h->restored_hw = hw;
    h->durable_hw = hw;
    h->last = hw ? hw - 1 : 0;
    return 0;
}

static int phys_us_of(int64_t ns, uint64_t *us, merr *e)
{
    if (ns < 0 || (uint64_t)(ns / 1000) > HLC_PHYS_MAX_US)
        return merr_set(e, MERR_CLOCK, "hlc: wall clock reading %" PRId64 "ns out of range", ns);
    *us = (uint64_t)(ns / 1000);
    return 0;
}

/* Makes sure `ts` is below the durable mark, storing a new one if needed. */
static int cover(hlc *h, hlc_ts ts, merr *e)
{
    if (ts < h->durable_hw || !h->store.save) return 0;
    uint64_t window_us = (uint64_t)(h->cfg.window_ns / 1000);
    if (window_us == 0) window_us = 1;
    uint64_t phys = hlc_physical_us(ts) + window_us;
    if (phys > HLC_PHYS_MAX_US) phys = HLC_PHYS_MAX_US;
    hlc_ts hw = hlc_make(phys, 0);
    if (hw <= ts) return merr_set(e, MERR_CLOCK, "hlc: clock exhausted");
    int rc = h->store.save(h->store.ctx, hw, e);
    if (rc) return merr_wrap(e, "hlc: store high-water mark");
    h->durable_hw = hw;
    h->sync_saves++;
    return 0;
}

hlc_ts hlc_renew_target(const hlc *h, int64_t phys_ns)
{
    if (!h->store.save || phys_ns < 0) return 0;
    uint64_t us = (uint64_t)(phys_ns / 1000);
    if (us > HLC_PHYS_MAX_US) return 0;
    uint64_t top = hlc_physical_us(h->last) > us ? hlc_physical_us(h->last) : us;
    uint64_t window_us = (uint64_t)(h->cfg.window_ns / 1000);
    if (window_us == 0) window_us = 1;
    if (top + window_us / 2 < hlc_physical_us(h->durable_hw)) return 0;
    uint64_t phys = top + window_us;
    if (phys > HLC_PHYS_MAX_US) phys = HLC_PHYS_MAX_US;
    hlc_ts hw = hlc_make(phys, 0);
    return hw > h->durable_hw ? hw : 0;
}

void hlc_renewed(hlc *h, hlc_ts hw)
{
    if (hw > h->durable_hw) h->durable_hw = hw;
}

int hlc_now(hlc *h, int64_t phys_ns, hlc_ts *out, merr *e)
{
    uint64_t us = 0;
    int rc = phys_us_of(phys_ns, &us, e);
    if (rc) return rc;
    if (h->last == UINT64_MAX) return merr_set(e, MERR_CLOCK, "hlc: clock exhausted");
    /* last + 1 carries a full logical counter into the physical part. */
    hlc_ts ts = h->last + 1;
    hlc_ts wall = hlc_make(us, 0);
    if (wall > ts) ts = wall;
    rc = cover(h, ts, e);
    if (rc) return rc;
    h->last = ts;
    *out = ts;
    return 0;
}

int hlc_update(hlc *h, hlc_ts received, int64_t latest_ns, hlc_ts *out, merr *e)
{
    uint64_t us = 0;
    int rc = phys_us_of(latest_ns, &us, e);
    if (rc) return rc;
    uint64_t limit = us + (uint64_t)(h->cfg.max_offset_ns / 1000);
    if (hlc_physical_us(received) > limit) {
        char a[HLC_FORMAT_MAX], b[HLC_FORMAT_MAX];
        hlc_format(received, a, sizeof(a));
        hlc_format(hlc_make(us, 0), b, sizeof(b));
        return merr_set(e, MERR_CLOCK,
                        "hlc: received timestamp %s is %.3fms past our clock's latest %s "
                        "(max offset %.3fms); rejected",
                        a, (double)(hlc_physical_us(received) - us) / 1e3, b,
                        (double)h->cfg.max_offset_ns / 1e6);
    }
    if (received > h->last) {
        rc = cover(h, received, e);
        if (rc) return rc;
        h->last = received;
    }
    if (out) *out = h->last;
    return 0;
}

int hlc_observe(hlc *h, hlc_ts applied, merr *e)
{
    if (applied <= h->last) return 0;
    /* Adopted even if the mark cannot be stored: hlc_now then fails (its own
     * cover() retries the save) rather than stamp below what we applied. */
    h->last = applied;
    return cover(h, applied, e);
}

int64_t hlc_restart_wait_ns(const hlc *h, int64_t phys_ns)
{
    int64_t hw_ns = hlc_physical_ns(h->restored_hw);
    return hw_ns > phys_ns ? hw_ns - phys_ns : 0;
}

/* ---- the high-water-mark file ---- */

#define HLC_FILE_MAGIC "MHLC"
#define HLC_FILE_LEN   16

static int file_load(void *ctx, hlc_ts *hw, merr *e)
{
    hlc_file_store *fs = ctx;
    uint8_t b[HLC_FILE_LEN + 1];
    int fd = open(fs->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return merr_set(e, merr_from_errno(err), "open %s: %s", fs->path, strerror(err));
    }
    ssize_t n;
    do n = read(fd, b, sizeof(b));
    while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0) return merr_set(e, MERR_IO, "read %s: %s", fs->path, strerror(err));
    if (n != HLC_FILE_LEN || memcmp(b, HLC_FILE_MAGIC, 4) != 0 ||
        crc32c(0, b, 12) != mbe32_get(b + 12))
        return merr_set(e, MERR_CORRUPT,
                        "%s: not a valid high-water-mark file (%zd bytes, bad magic or "
                        "checksum); refusing to guess where the clock stood",
                        fs->path, n);
    *hw = mbe64_get(b + 4);
    pthread_mutex_lock(&fs->mu);
    if (*hw > fs->stored) fs->stored = *hw;
    pthread_mutex_unlock(&fs->mu);
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int file_save_locked(hlc_file_store *fs, hlc_ts hw, merr *e);

static int file_save(void *ctx, hlc_ts hw, merr *e)
{
    hlc_file_store *fs = ctx;
    pthread_mutex_lock(&fs->mu);
    int rc = 0;
    /* Never replace a higher mark with a lower one that lost a race. */
    if (hw > fs->stored) {
        rc = file_save_locked(fs, hw, e);
        if (rc == 0) {
            fs->stored = hw;
            fs->saves++;
        }
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

static int file_save_locked(hlc_file_store *fs, hlc_ts hw, merr *e)
{
    char tmp[sizeof(fs->path) + 8], dir[sizeof(fs->path)];
    uint8_t b[HLC_FILE_LEN];
    int fd = -1, dfd = -1, rc, err;
    memcpy(b, HLC_FILE_MAGIC, 4);
    mbe64_put(b + 4, hw);
    mbe32_put(b + 12, crc32c(0, b, 12));
    snprintf(tmp, sizeof(tmp), "%s.tmp", fs->path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) goto err_errno;
    if (write_all(fd, b, sizeof(b)) || fsync(fd)) goto err_errno;
    if (close(fd)) {
        fd = -1;
        goto err_errno;
    }
    fd = -1;
    if (rename(tmp, fs->path)) goto err_errno;
    snprintf(dir, sizeof(dir), "%s", fs->path);
    dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd)) goto err_errno;
    close(dfd);
    return 0;
err_errno:
    err = errno;
    rc = merr_set(e, merr_from_errno(err), "save %s: %s", fs->path, strerror(err));
    if (fd >= 0) close(fd);
    if (dfd >= 0) close(dfd);
    return rc;
}

int hlc_file_store_init(hlc_file_store *fs, const char *path, hlc_store_ops *ops, merr *e)
{
    if (!path || !*path || strlen(path) >= sizeof(fs->path) - 8)
        return merr_set(e, MERR_INVALID, "hlc: bad high-water-mark path");
    snprintf(fs->path, sizeof(fs->path), "%s", path);
    pthread_mutex_init(&fs->mu, NULL);
    fs->stored = 0;
    fs->saves = 0;
    ops->load = file_load;
    ops->save = file_save;
    ops->ctx = fs;
    return 0;
}

void hlc_file_store_destroy(hlc_file_store *fs)
{
    pthread_mutex_destroy(&fs->mu);
}
