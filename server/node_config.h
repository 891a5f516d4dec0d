/* A node's configuration: what `meridian start` flags say, validated in one
 * place so a bad value stops the node at start with a clear message instead
 * of misbehaving later. */
#ifndef MERIDIAN_SERVER_NODE_CONFIG_H
#define MERIDIAN_SERVER_NODE_CONFIG_H

#include <stdint.h>

#include "common/addr.h"
#include "common/err.h"

#define NODE_MAX_JOIN     16
#define NODE_LOCALITY_MAX 64

typedef struct node_locality {
    char region[NODE_LOCALITY_MAX];
    char zone[NODE_LOCALITY_MAX];
} node_locality;

typedef struct node_config {
    const char *store;       /* --store DIR (required) */
    const char *listen;      /* --listen HOST:PORT (required) */
    const char *advertise;   /* --advertise HOST:PORT (default: listen) */
    const char *join;        /* --join HOST:PORT[,...] (optional: absent = wait for init) */
    const char *http_listen; /* --http-listen HOST:PORT (optional) */
    const char *locality;    /* --locality region=R,zone=Z */
    const char *clock_source;
    int64_t max_clock_uncertainty_ns;
    int64_t static_uncertainty_ns; /* --static-uncertainty, for --clock-source static */
    const char *log_level;
    int insecure;
    int testing_fault_admin; /* serve rpc.faults: partitions and delays for tests */
    int testing_sql_memory;  /* SQL over a private in-memory KV: tests only */
    const char *certs_dir;   /* --certs-dir: ca.crt, node.crt, node.key */
    /* Where chronyd answers for --clock-source chrony: its unix command
     * socket (root only), else 127.0.0.1:chrony_port. Several chronyds on one
     * machine (one per emulated region) need these. */
    const char *chrony_socket;
    int64_t chrony_port;
    /* --testing-clock-skew [-]DURATION: added to every clock reading without
     * widening epsilon (tt_config.skew_ns), so tests can put this node's
     * clock inside or beyond its own bound. Tests only. */
    const char *testing_clock_skew;
    /* --testing-disk-faults: while STORE/TESTING_DISK_FULL exists, log store
     * writes fail with ENOSPC, as on a full disk. Tests only. */
    int testing_disk_faults;
    int64_t max_connections;    /* --max-connections: inbound rpc connections (1024) */
    int64_t max_session_memory; /* --max-session-memory: a session's buffered writes (64 MiB) */
    int64_t max_result_buffer;  /* --max-result-buffer: rows queued per connection (4 MiB) */

    /* Derived by node_config_validate(). */
    struct sockaddr_storage listen_addr;
    struct sockaddr_storage join_addrs[NODE_MAX_JOIN];
    int njoin;
    node_locality loc;
    int64_t clock_skew_ns; /* parsed --testing-clock-skew */
} node_config;

/* Fills defaults. */
void node_config_init(node_config *c);
/* Parses "region=us-east,zone=a" (both keys required, [a-z0-9-] values). */
int node_locality_parse(const char *s, node_locality *out, merr *e);
/* Checks every field and fills the derived ones. */
int node_config_validate(node_config *c, merr *e);
/* Secure by default: exactly one of --certs-dir and --insecure. The error
 * says how to create certificates. */
int node_config_check_security(const node_config *c, merr *e);

#endif
