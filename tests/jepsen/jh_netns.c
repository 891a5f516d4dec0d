/* The netns-partition nemesis (see jh_run.h).
 *
 * The rpc fault injection partitions (jh_nemesis.c) drop messages inside the
 * process; this one cuts below it. tests/jepsen/run starts the cluster with
 * each node in a network namespace of its own behind a bridge
 * (deploy/netns.sh), and the cut is iptables DROP rules inside the cut-off
 * nodes' namespaces: TCP connections then stall, SYNs vanish and the kernel
 * retransmits, which no in-process fault shows. It needs root, `ip`
 * (iproute2) and `iptables`; where they are missing it says which and the run
 * goes on without it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/jepsen/jh_run.h"

#define SYS_PATH "/usr/sbin:/usr/bin:/sbin:/bin"

/* Writes the full path of an executable named name found in one of path's
 * directories into out; 1 if found. */
static int find_in_path(const char *path, const char *name, char *out, size_t cap)
{
    for (const char *p = path; p && *p;) {
        size_t l = strcspn(p, ":");
        if (l > 0 && l + strlen(name) + 2 <= cap) {
            snprintf(out, cap, "%.*s/%s", (int)l, p, name);
            if (access(out, X_OK) == 0) return 1;
        }
        p += l;
        if (*p == ':') p++;
    }
    return 0;
}

int jh_netns_probe(const char *path, char *why, size_t cap)
{
    char full[1024];
    if (!path) path = SYS_PATH;
    if (!find_in_path(path, "ip", full, sizeof(full))) {
        snprintf(why, cap, "no `ip` (iproute2) binary in PATH");
        return -1;
    }
    if (!find_in_path(path, "iptables", full, sizeof(full))) {
        snprintf(why, cap,
                 "no `iptables` binary in PATH (Debian: the iptables package; "
                 "`iptables` or `nft` were looked for)");
        return -1;
    }
    if (geteuid() != 0) {
        snprintf(why, cap, "not running as root (namespaces and packet filters need it)");
        return -1;
    }
    why[0] = '\0';
    return 0;
}

int jh_netns_rules(const jh_cluster *c, const int side[], const char *how, jh_netns_rule *out,
                   int cap)
{
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        if (!side[i]) continue; /* only the cut-off side filters */
        for (int j = 0; j < c->n; j++) {
            if (side[j]) continue;
            const char *colon = strrchr(c->nodes[j].rpc, ':');
            size_t alen = colon ? (size_t)(colon - c->nodes[j].rpc) : 0;
            if (!alen || alen >= sizeof(out[0].addr)) return -1;
            /* "in": it hears nothing from them; "out": its sends are lost;
             * "both": the two. */
            const char *chains[2] = {NULL, NULL};
            if (!strcmp(how, "in") || !strcmp(how, "both")) chains[0] = "INPUT";
            if (!strcmp(how, "out") || !strcmp(how, "both")) chains[1] = "OUTPUT";
            for (int k = 0; k < 2; k++) {
                if (!chains[k]) continue;
                if (n == cap) return -1;
                out[n].node = i;
                out[n].chain = chains[k];
                memcpy(out[n].addr, c->nodes[j].rpc, alen);
                out[n].addr[alen] = '\0';
                n++;
            }
        }
    }
    return n;
}

/* `ip netns exec <ns of node i> iptables -w ARGS...`; its exit status. */
static int in_ns_iptables(jh_cluster *c, int i, const char *ip, const char *ipt, char *args[],
                          int nargs)
{
    char ns[64];
    snprintf(ns, sizeof(ns), "%sn%d", c->netns_prefix, c->nodes[i].idx);
    char *argv[16] = {(char *)ip, "netns", "exec", ns, (char *)ipt, "-w"};
    int k = 6;
    for (int a = 0; a < nargs && k < 15; a++) argv[k++] = args[a];
    argv[k] = NULL;
    return jh_tool(c, argv, NULL, 0);
}

void jh_netns_fault(jh_cluster *c, int64_t hold_ns, rpc_rng *g, jp_recorder *rec,
                    volatile sig_atomic_t *stop, jh_nemesis_stats *st)
{
    char ip[1024], ipt[1024];
    if (!find_in_path(SYS_PATH, "ip", ip, sizeof(ip)) ||
        !find_in_path(SYS_PATH, "iptables", ipt, sizeof(ipt))) {
        jh_note(c, rec, "error: netns-partition: ip or iptables went missing");
        st->errors++;
        return;
    }
    /* The same variants as the rpc partitions, in the same proportions. */
    static const jh_fault variants[] = {JH_F_ISOLATE, JH_F_LEADER, JH_F_ONEWAY, JH_F_HALVES};
    jh_fault f = variants[rpc_rng_next(g) % 4];
    int side[JH_MAX_NODES];
    const char *how;
    char what[256];
    if (jh_partition_cut(c, f, g, side, &how, what, sizeof(what))) return;
    jh_netns_rule rules[JH_MAX_NODES * JH_MAX_NODES * 2];
    int nr = jh_netns_rules(c, side, how, rules, (int)(sizeof(rules) / sizeof(rules[0])));
    if (nr < 0) {
        jh_note(c, rec, "error: netns-partition: cannot read the nodes' addresses");
        st->errors++;
        return;
    }
    jh_note(c, rec, "start netns-partition %s (%d iptables rules)", what, nr);
    for (int r = 0; r < nr; r++) {
        char *args[] = {"-A",
                        (char *)rules[r].chain,
                        !strcmp(rules[r].chain, "INPUT") ? "-s" : "-d",
                        rules[r].addr,
                        "-j",
                        "DROP"};
        if (in_ns_iptables(c, rules[r].node, ip, ipt, args, 6) != 0) st->errors++;
    }
    jh_nap(hold_ns, stop);
    /* Heal every namespace, not only the ones cut: nothing else adds rules
     * there, and a rule left by an interrupted earlier step goes too. */
    for (int i = 0; i < c->n; i++) {
        char *in[] = {"-F", "INPUT"}, *out[] = {"-F", "OUTPUT"};
        if (in_ns_iptables(c, i, ip, ipt, in, 2) != 0) st->errors++;
        if (in_ns_iptables(c, i, ip, ipt, out, 2) != 0) st->errors++;
    }
    jh_note(c, rec, "end netns-partition: healed");
}
