/* Network addresses as operators write them: "127.0.0.1:26257", "[::1]:26257",
 * "localhost:26257". Parsing is strict (a port is required, 1..65535) so a
 * typo in a flag is an error at start, not a mystery later. */
#ifndef MERIDIAN_COMMON_ADDR_H
#define MERIDIAN_COMMON_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common/err.h"

#define MADDR_STR_MAX 64 /* enough for "[v6]:port" */

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port. Returns 0 or MERR_INVALID. */
int maddr_split(const char *s, char *host, size_t host_cap, int *port, merr *e);
/* Resolves numeric hosts and "localhost" only (no DNS on the hot path, and
 * this project's tests only use loopback). Returns 0 or MERR_INVALID. */
int maddr_parse(const char *s, struct sockaddr_storage *out, merr *e);
/* As maddr_parse, but port 0 ("pick a free port") is allowed: for listeners. */
int maddr_parse_listen(const char *s, struct sockaddr_storage *out, merr *e);
/* Formats back to "127.0.0.1:26257" / "[::1]:26257". */
void maddr_format(const struct sockaddr *sa, char *buf, size_t cap);
/* Parses a comma-separated list ("h1:p1,h2:p2"), at most max entries.
 * Returns the number parsed or a negative MERR code. */
int maddr_parse_list(const char *s, struct sockaddr_storage *out, int max, merr *e);

#endif
