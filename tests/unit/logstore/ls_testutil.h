/* Helpers shared by the log store unit tests: temporary store folders, a
 * fault-injecting logstore_io table that also counts calls, and a notifier
 * that records completions and lets a test wait for them. */
#ifndef MERIDIAN_TESTS_LS_TESTUTIL_H
#define MERIDIAN_TESTS_LS_TESTUTIL_H

#include "replication/logstore.h"

#include <pthread.h>
#include <stdint.h>

/* Makes a fresh folder under $TMPDIR (or /tmp); returns a malloc'd path. */
char *lt_tmpdir(const char *tag);
/* Removes a folder and its files (one level deep: stores have no subfolders). */
void lt_rmdir(char *dir);

/* A logstore_io that forwards to the real syscalls unless told to fail. */
typedef struct lt_io {
    logstore_io io;
    pthread_mutex_t mu;
    int pwrites, fdatasyncs, dirsyncs, ftruncates;
    int fail_pwrite_errno;    /* errno for the next pwrites (0: none) */
    int fail_pwrite_count;    /* how many pwrites fail (-1: all) */
    size_t short_write_bytes; /* the next pwrite writes only this many bytes, then fails */
    int fail_fdatasync_errno; /* errno for every later fdatasync (0: none) */
    int fail_dirsync_errno;   /* errno for every later directory fsync (0: none) */
    /* A gate: while armed, fdatasync blocks until opened, so a test can hold
     * the I/O thread inside a round and queue more batches behind it. */
    pthread_cond_t cv;
    int gate_armed, in_gate;
} lt_io;
void lt_gate_arm(lt_io *t);
/* Waits until the I/O thread sits in the gate (30 s guard); returns 1 if it does. */
int lt_gate_wait_entered(lt_io *t);
void lt_gate_open(lt_io *t);
void lt_io_init(lt_io *t);
void lt_io_set(lt_io *t, int pwrite_errno, int pwrite_count, size_t short_bytes, int sync_errno);
int lt_io_fdatasyncs(lt_io *t);

/* Collects completions delivered to the notifier. */
typedef struct lt_notes {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t *ids;
    int *status;
    size_t n, cap;
    size_t calls; /* notifier invocations */
} lt_notes;
void lt_notes_init(lt_notes *n);
void lt_notes_free(lt_notes *n);
void lt_notify(void *arg, const logstore_done *done, size_t n);
/* Waits (30 s guard) until at least `want` completions arrived; returns the count. */
size_t lt_notes_wait(lt_notes *n, size_t want);

/* Opens a store or fails the test with the error message. */
logstore *lt_open(const char *dir, const logstore_opts *opts);
/* Writes one entry synchronously; returns the status. */
int lt_put(logstore *ls, uint64_t group, uint64_t slot, uint64_t ballot, const char *val);
/* Returns once everything submitted before it, and the segment deletions that
 * followed, are done: empty rounds go through the I/O thread, which works
 * strictly in order, until one of them compacts nothing. */
void lt_barrier(logstore *ls);
/* Asserts entry (group, slot) is (ballot, val). */
void lt_expect(logstore *ls, uint64_t group, uint64_t slot, uint64_t ballot, const char *val);
void lt_expect_missing(logstore *ls, uint64_t group, uint64_t slot);

#endif
