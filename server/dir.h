/* The range directory as this node's replica of range 1 holds it
 * (server/node_dir.c; docs/ranges.md): for code that must place a key in a
 * range this node holds no replica of. */
#ifndef MERIDIAN_SERVER_DIR_H
#define MERIDIAN_SERVER_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "server/host.h"

/* The id of the range holding key, and its leader hint in *leader (0 if
 * unknown); 0 when this node has no replica of range 1 or the directory has
 * no entry yet (it is written every few seconds, so it may lag a split).
 * Reads the whole directory from the store: for rare paths only. Loop
 * thread. */
uint64_t dir_range_of(host *h, const uint8_t *key, size_t klen, uint64_t *leader);

#endif
