/* The netns-partition nemesis's precondition check (see jh_run.h).
 *
 * Partitions by network namespaces and a packet filter need root, `ip`
 * (iproute2) and `iptables` or `nft`, and a kernel that lets this process
 * create namespaces. The rpc fault injection partitions (jh_nemesis.c) need
 * none of that; this nemesis would add cuts below the process (half-open
 * TCP connections, SYNs that vanish) on machines that allow it. Where they
 * are missing it says which and the run goes on without it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/jepsen/jh_run.h"

/* 1 if an executable named name is in one of PATH's directories. */
static int in_path(const char *path, const char *name)
{
    char dir[1024];
    for (const char *p = path; p && *p;) {
        size_t l = strcspn(p, ":");
        if (l > 0 && l < sizeof(dir) - 64) {
            snprintf(dir, sizeof(dir), "%.*s/%s", (int)l, p, name);
            if (access(dir, X_OK) == 0) return 1;
        }
        p += l;
        if (*p == ':') p++;
    }
    return 0;
}

int jh_netns_probe(const char *path, char *why, size_t cap)
{
    if (!path) path = "/usr/sbin:/usr/bin:/sbin:/bin";
    if (!in_path(path, "ip")) {
        snprintf(why, cap, "no `ip` (iproute2) binary in PATH");
        return -1;
    }
    if (!in_path(path, "iptables") && !in_path(path, "nft")) {
        snprintf(why, cap, "no `iptables` or `nft` binary in PATH (Debian: the iptables package)");
        return -1;
    }
    if (geteuid() != 0) {
        snprintf(why, cap, "not running as root (namespaces and packet filters need it)");
        return -1;
    }
    /* Everything it needs is here; the cuts themselves (each node in a
     * namespace of its own behind a bridge) are not written yet. */
    snprintf(why, cap,
             "this machine has root, ip and a packet filter, but the harness does not "
             "implement namespace partitions yet (docs/jepsen.md)");
    return -1;
}
