/* `meridian debug settings list|get NAME|set NAME VALUE --host H`: the
 * cluster settings the placement driver runs on (server/node_pd.c). Read and
 * written at range 1's leaseholder (NOT_LEADER hints are followed); a set is
 * validated as a whole and replicated before it answers. */
#include <stdio.h>
#include <string.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/pd.pb-c.h"
#include "server/commands.h"
#include "server/kv_cli.h"

static Meridian__Kv__Error *err_settings(ProtobufCMessage *m)
{
    return ((Meridian__Pd__SettingsResponse *)m)->error;
}

int cmd_debug_settings(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL;
    int64_t timeout = 30 * MTIME_S;
    int insecure = 0, verbose = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]",
         "nodes of the cluster, tried in turn (required)"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "give up after this long (default 30s)"},
        {"verbose", CLI_BOOL, &verbose, NULL, "list: also say what each setting does"},
        {0},
    };
    const char *usage = "list | get NAME | set NAME VALUE --host HOST:PORT";
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], usage, flags, argc, argv, &npos, &done);
    if (done) return rc;
    const char *op = npos >= 1 ? argv[1] : "";
    int want = strcmp(op, "list") == 0  ? 1
               : strcmp(op, "get") == 0 ? 2
               : strcmp(op, "set") == 0 ? 3
                                        : 0;
    if (!want || npos != want || !host || !certs_dir == !insecure) {
        fprintf(stderr, "%s: usage: %s %s (and --certs-dir DIR or --insecure)\n", argv[0], argv[0],
                usage);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    kv_client c;
    ProtobufCMessage *out = NULL;
    rc = kv_client_open(&c, host, certs_dir, timeout, &e);
    if (!rc) {
        Meridian__Pd__SettingsRequest q = MERIDIAN__PD__SETTINGS_REQUEST__INIT;
        q.op = (char *)op;
        q.name = want >= 2 ? argv[2] : "";
        q.value = want == 3 ? argv[3] : "";
        rc = kv_client_call(&c, "pd.Settings", &q.base,
                            &meridian__pd__settings_response__descriptor, err_settings, &out, &e);
    }
    if (!rc) {
        Meridian__Pd__SettingsResponse *r = (Meridian__Pd__SettingsResponse *)out;
        for (size_t i = 0; i < r->n_settings; i++) {
            if (want == 1)
                printf(verbose ? "%-26s %-12s %s\n" : "%-26s %s\n", r->settings[i]->name,
                       r->settings[i]->value, r->settings[i]->help);
            else
                printf("%s\n", r->settings[i]->value);
        }
        protobuf_c_message_free_unpacked(out, NULL);
    } else {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg[0] ? e.msg : merr_str(rc));
    }
    kv_client_close(&c);
    return rc ? 1 : 0;
}
