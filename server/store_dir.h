/* A node's store directory: its identity and its exclusive lock.
 *
 *   DIR/LOCK       flock()ed while a node runs; holds the owner's pid
 *   DIR/IDENTITY   format, cluster id and node id, replaced atomically
 *   DIR/logs/      the node's log files
 *   DIR/...        subfolders of the layers (log store, ranges)
 *
 * Two processes can never run on one store (the second gets MERR_BUSY naming
 * the first's pid), and a store initialised for one cluster refuses to join
 * another: mixing two clusters' data is unrecoverable, a refusal is not. */
#ifndef MERIDIAN_SERVER_STORE_DIR_H
#define MERIDIAN_SERVER_STORE_DIR_H

#include <limits.h>
#include <stdint.h>

#include "common/err.h"

#define STORE_CLUSTER_ID_MAX 64
#define STORE_FORMAT_VERSION 1

typedef struct store_dir {
    char path[PATH_MAX];
    int lock_fd;
    int has_identity;
    char cluster_id[STORE_CLUSTER_ID_MAX];
    uint64_t node_id;
} store_dir;

/* Creates the directory if needed, takes the lock, reads IDENTITY if present. */
int store_dir_open(const char *path, store_dir *sd, merr *e);
void store_dir_close(store_dir *sd);
/* Records the identity durably. Refuses to change an existing cluster id. */
int store_dir_set_identity(store_dir *sd, const char *cluster_id, uint64_t node_id, merr *e);
/* 0 if the store is uninitialised or belongs to cluster_id; MERR_INVALID otherwise. */
int store_dir_check_cluster(const store_dir *sd, const char *cluster_id, merr *e);
/* DIR/name, created if absent. */
int store_dir_subdir(const store_dir *sd, const char *name, char *out, size_t cap, merr *e);
/* A fresh random cluster id: 32 lowercase hex digits. */
int store_new_cluster_id(char out[STORE_CLUSTER_ID_MAX], merr *e);

#endif
