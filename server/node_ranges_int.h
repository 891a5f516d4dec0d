/* Internals shared by node_ranges.c (splits, id allocation, lifecycle) and
 * node_dir.c (the range directory): loop thread only. */
#ifndef MERIDIAN_SERVER_NODE_RANGES_INT_H
#define MERIDIAN_SERVER_NODE_RANGES_INT_H

#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/mtime.h"
#include "server/node_int.h"

#define DIR_TICK_MS 2000
#define DIR_WRITES  64 /* descriptors per directory write */

/* Directory keys: "\x00sys/range/" + the range id (u64 big-endian). */
#define DIR_PREFIX_LEN 11
#define DIR_KEY_LEN    (DIR_PREFIX_LEN + 8)
/* How long a split, an id allocation or a directory write may take. */
#define SPLIT_WAIT (10 * MTIME_S)

struct node_ranges {
    node *n;
    uv_timer_t timer;
    int timer_on, stopped, refs;
    int allocating;   /* range 1's leaseholder: an allocation is being written */
    int dir_inflight; /* a directory write is out */
    int nudge; /* a peer came (back) up: dir ticks left that wake the quiet groups led here */
    uint64_t splits, dir_writes;
    /* Ranges merged away whose directory entries are still to delete. */
    uint64_t forget[DIR_WRITES];
    size_t nforget;
};

host *nr_host(node_ranges *nr);
void nr_unref(node_ranges *nr); /* frees a stopped nr with its last reference */
/* Where range 1's leader is (0: unknown or this node). */
uint64_t nr_range1_leader(node_ranges *nr);

/* node_dir.c: dir.Scan, dir.Lookup, and the periodic directory refresh. */
void nr_on_dir_scan(void *arg, rpc_req *req);
void nr_on_dir_lookup(void *arg, rpc_req *req);
void nr_dir_refresh(node_ranges *nr);

#endif
