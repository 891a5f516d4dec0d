/* File-system helpers with the durability rules spelled out once:
 * a file is durable after fsync(file) AND fsync(its directory) when it was
 * created or renamed; an atomic replace is write tmp → fsync → rename →
 * fsync dir. Every error carries the path and errno's text. */
#ifndef MERIDIAN_COMMON_FSUTIL_H
#define MERIDIAN_COMMON_FSUTIL_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/* mkdir -p with mode 0755; an existing directory is fine. */
int mfs_mkdirs(const char *path, merr *e);
/* fsyncs a directory (after creating, renaming or deleting entries in it). */
int mfs_fsync_dir(const char *dir, merr *e);
/* Atomically replaces `path` with `data` (mode 0644): readers see the old or
 * the new content, never a mix, even across a crash. */
int mfs_write_atomic(const char *path, const void *data, size_t len, merr *e);
/* The same with the file created with `mode` (0600 for private keys: the
 * file is never readable by others, not even for a moment). */
int mfs_write_atomic_mode(const char *path, const void *data, size_t len, unsigned mode, merr *e);
/* Reads a whole file of at most `max` bytes into out (appending).
 * MERR_NOTFOUND if absent, MERR_TOOBIG if larger than max. */
int mfs_read_all(const char *path, size_t max, mbuf *out, merr *e);
/* 1 if path exists (any type), 0 if not. */
int mfs_exists(const char *path);
/* rm -rf: removes path and everything below it without following links.
 * A missing path is fine. Reentrant (no nftw callback state). */
int mfs_remove_tree(const char *path, merr *e);
/* Writes all of buf to fd, retrying short writes and EINTR. */
int mfs_write_full(int fd, const void *buf, size_t len, merr *e);

#endif
