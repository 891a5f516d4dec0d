/* libFuzzer target: building a replica from an arbitrary snapshot stream
 * (storage/range.h: range_install_begin/chunk/finish) in a private temp dir
 * (on /dev/shm when there is one, to keep it fast). The harness frames the
 * input so the fuzzer gets past the chunk checksums:
 *   byte 0  flags: 1 raw (pieces go in unframed), 2 append an end record
 *           whose stream checksum the harness computes, 4 take chunk flags
 *           from byte 2 instead of computing them
 *   byte 1  record count for the end record; byte 2: raw chunk flags
 *   then pieces, each u16be length + bytes (the last may be short).
 * Every failure must be a clean error leaving no file at the target path;
 * a finished install must open as a range. Seeds:
 * tests/fuzz/corpus/fuzz_range_install/. */
#include "common/buf.h"
#include "common/crc32c.h"
#include "storage/range.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PIECES 16

static char dir[256], path[300];

static void cleanup(void)
{
    char p[320];
    static const char *const sfx[] = {"",     "-wal",         "-shm",     "-journal",
                                      ".tmp", ".tmp-journal", ".tmp-wal", ".tmp-shm"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
}

static void at_exit(void)
{
    cleanup();
    rmdir(dir);
}

static void setup(void)
{
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/fuzz_range_install.XXXXXX", base);
    if (!mkdtemp(dir)) abort();
    snprintf(path, sizeof path, "%s/r.db", dir);
    atexit(at_exit);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) setup();
    if (size < 3) return 0;
    uint8_t flags = data[0], count = data[1], rawflags = data[2];
    const uint8_t *p = data + 3;
    size_t n = size - 3;

    const uint8_t *piece[MAX_PIECES];
    size_t plen[MAX_PIECES], npieces = 0;
    while (n && npieces < MAX_PIECES) {
        size_t l = n >= 2 ? ((size_t)p[0] << 8 | p[1]) : 0;
        size_t hdr = n >= 2 ? 2 : n;
        p += hdr;
        n -= hdr;
        if (l > n) l = n;
        piece[npieces] = p;
        plen[npieces++] = l;
        p += l;
        n -= l;
    }
    if (!npieces) return 0;

    range_install *in = NULL;
    merr e = {0};
    range_opts o = {0};
    if (range_install_begin(path, &o, &in, &e)) abort();
    uint32_t scrc = 0;
    int rc = 0;
    mbuf c = MBUF_INIT;
    for (size_t i = 0; i < npieces && !rc; i++) {
        mbuf_reset(&c);
        int last = i + 1 == npieces;
        if (flags & 1) {
            if (mbuf_append(&c, piece[i], plen[i])) abort();
        } else {
            uint8_t h[13];
            size_t extra = last && (flags & 2) ? 13 : 0;
            mbe32_put(h, 0x4D525331u);
            mbe32_put(h + 4, (uint32_t)i);
            h[8] = (flags & 4) ? rawflags : (uint8_t)((i == 0 ? 1 : 0) | (last ? 2 : 0));
            mbe32_put(h + 9, (uint32_t)(plen[i] + extra));
            if (mbuf_append(&c, h, sizeof h) || mbuf_append(&c, piece[i], plen[i])) abort();
            scrc = crc32c(scrc, piece[i], plen[i]);
            if (extra) {
                uint8_t end[13];
                end[0] = 'E';
                mbe64_put(end + 1, count);
                mbe32_put(end + 9, scrc);
                if (mbuf_append(&c, end, sizeof end)) abort();
            }
            uint8_t t[4];
            mbe32_put(t, crc32c(0, c.data, c.len));
            if (mbuf_append(&c, t, 4)) abort();
        }
        rc = range_install_chunk(in, c.data, c.len, &e);
        if (rc && !e.msg[0]) abort();
    }
    mbuf_free(&c);
    if (!rc) rc = range_install_finish(in, &e);
    if (rc) {
        if (rc != MERR_CORRUPT && rc != MERR_INVALID && rc != MERR_NOMEM && rc != MERR_TOOBIG)
            abort();
        range_install_abort(in);
        if (exists(path)) abort(); /* a failed install leaves no file behind */
    } else {
        range *r = NULL;
        if (range_open(path, &o, &r, &e)) abort(); /* verified, so it must open */
        range_meta m;
        if (range_get_meta(r, &m)) abort();
        range_close(r);
    }
    cleanup();
    return 0;
}
