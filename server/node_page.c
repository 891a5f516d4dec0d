/* The node's admin page (GET / on --http-listen): who this node is, its
 * clock, its peers and every range replica it holds, as one HTML page that
 * refreshes itself. For people; /metrics is for machines. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/mtime.h"
#include "common/version.h"
#include "server/node_int.h"
#include "server/replica.h"

static void esc(mbuf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': mbuf_append_str(b, "&lt;"); break;
        case '>': mbuf_append_str(b, "&gt;"); break;
        case '&': mbuf_append_str(b, "&amp;"); break;
        case '"': mbuf_append_str(b, "&quot;"); break;
        default: mbuf_append(b, s, 1);
        }
    }
}

static void key_html(mbuf *b, const uint8_t *k, size_t n, const char *empty)
{
    if (n == 0) {
        mbuf_append_str(b, empty);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '<' && k[i] != '>' && k[i] != '&')
            mbuf_append(b, &k[i], 1);
        else
            mbuf_printf(b, "\\x%02x", k[i]);
    }
}

void node_page_render(node *n, mbuf *b)
{
    double up = (double)(mtime_mono_ns() - n->started_mono_ns) / 1e9;
    mbuf_printf(b,
                "<!doctype html><html><head><meta charset=\"utf-8\">"
                "<meta http-equiv=\"refresh\" content=\"2\"><title>meridian node %" PRIu64
                "</title><style>body{font-family:sans-serif;margin:2em}"
                "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;"
                "text-align:left}th{background:#f4f4f4}.ok{color:#080}.bad{color:#b00}"
                "</style></head><body>",
                n->store.node_id);
    mbuf_printf(b, "<h1>meridian node %" PRIu64 "</h1><p>", n->store.node_id);
    mbuf_printf(b, "state <b class=\"%s\">%s</b> &middot; cluster ",
                n->state == NODE_SERVING ? "ok" : "bad", node_state_name(n->state));
    esc(b, n->store.has_identity ? n->store.cluster_id : "(not initialised)");
    mbuf_printf(b, " &middot; rpc ");
    esc(b, n->rpc_addr);
    mbuf_printf(b, " &middot; locality %s/%s &middot; up %.0fs &middot; version %s (%s)</p>",
                n->cfg.loc.region, n->cfg.loc.zone, up, MERIDIAN_VERSION, meridian_git_revision());
    if (!n->host_open) {
        mbuf_printf(b, "</body></html>");
        return;
    }
    tt_interval tt;
    tt_read(&n->host.clock, &tt, NULL);
    mbuf_printf(b,
                "<h2>Clock</h2><p>status <b class=\"%s\">%s</b> &middot; uncertainty "
                "&plusmn;%.3f ms</p>",
                tt.status == TT_UNKNOWN ? "bad" : "ok", tt_status_name(tt.status),
                (double)tt.epsilon_ns / 1e6);
    mbuf_printf(b, "<h2>Peers</h2><table><tr><th>node</th><th>address</th><th>connected</th></tr>");
    for (size_t i = 0; i < n->host.npeers; i++) {
        uint64_t id = n->host.peers[i].id;
        int self = id == n->host.node_id;
        int up_ = self || rpc_node_peer_is_up(n->rpc, id);
        mbuf_printf(b, "<tr><td>%" PRIu64 "%s</td><td>", id, self ? " (this node)" : "");
        esc(b, n->host.peers[i].addr);
        mbuf_printf(b, "</td><td class=\"%s\">%s</td></tr>", up_ ? "ok" : "bad",
                    up_ ? "yes" : "no");
    }
    mbuf_printf(b, "</table><h2>Range replicas</h2><table><tr><th>range</th><th>start</th>"
                   "<th>end</th><th>role</th><th>lease</th><th>voters</th><th>learners</th>"
                   "<th>applied</th><th>chosen</th><th>keys</th><th>bytes</th></tr>");
    for (size_t i = 0; i < n->host.nreps; i++) {
        replica *r = n->host.reps[i];
        paxos_group *g = replica_group(r);
        paxos_members committed, latest;
        paxos_get_members(g, &committed, &latest);
        range_meta m;
        memset(&m, 0, sizeof(m));
        range_get_meta(replica_store(r), &m);
        int lease = replica_is_leaseholder(r);
        mbuf_printf(b, "<tr><td>%" PRIu64 "</td><td>", replica_id(r));
        key_html(b, m.start, m.start_len, "-&infin;");
        mbuf_printf(b, "</td><td>");
        key_html(b, m.end, m.end_len, "+&infin;");
        mbuf_printf(b, "</td><td>%s</td><td class=\"%s\">%s</td><td>",
                    paxos_role_name(paxos_get_role(g)), lease ? "ok" : "", lease ? "held" : "-");
        for (uint32_t v = 0; v < latest.nvoters; v++)
            mbuf_printf(b, "%s%u", v ? "," : "", latest.voters[v]);
        mbuf_printf(b, "</td><td>");
        for (uint32_t l = 0; l < latest.nlearners; l++)
            mbuf_printf(b, "%s%u", l ? "," : "", latest.learners[l]);
        mbuf_printf(b,
                    "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRId64 "</td><td>%" PRId64
                    "</td></tr>",
                    paxos_get_applied(g), paxos_get_chosen(g), m.stats.live_keys,
                    m.stats.live_bytes);
    }
    mbuf_printf(b, "</table>");
    node_pd_page_render(n, b);
    mbuf_printf(b, "<p><a href=\"/metrics\">/metrics</a> &middot; "
                   "<a href=\"/health\">/health</a> &middot; <a href=\"/ready\">/ready</a></p>"
                   "</body></html>\n");
}
