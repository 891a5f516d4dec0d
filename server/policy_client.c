/* pd.Policy from a blocking caller (policy_client.h). */
#include "server/policy_client.h"

#include <stdio.h>
#include <string.h>

#include "server/kv_cli.h"

#define MAX_REGIONS 16 /* more than the PD takes: it says so */

static Meridian__Kv__Error *err_policy(ProtobufCMessage *m)
{
    return ((Meridian__Pd__PolicyResponse *)m)->error;
}

int policy_client_call(const char *hosts, const char *certs_dir, int64_t timeout_ns, const char *op,
                       const sql_cluster_policy *p, const char *name,
                       Meridian__Pd__PolicyResponse **out, merr *e)
{
    Meridian__Pd__PolicyRequest q = MERIDIAN__PD__POLICY_REQUEST__INIT;
    Meridian__Pd__Policy pol = MERIDIAN__PD__POLICY__INIT;
    char region_buf[512], *region_v[MAX_REGIONS];
    *out = NULL;
    q.op = (char *)op;
    q.name = (char *)(name ? name : "");
    if (p) {
        const char *regions = p->regions ? p->regions : "";
        if (strlen(regions) >= sizeof(region_buf))
            return merr_set(e, MERR_INVALID, "regions: too long");
        pol.name = (char *)p->name;
        pol.start = (ProtobufCBinaryData){p->start_len, (uint8_t *)p->start};
        pol.end = (ProtobufCBinaryData){p->end_len, (uint8_t *)p->end};
        /* Out-of-range counts still reach the PD, whose refusal says why. */
        pol.replicas = p->replicas < 0 || p->replicas > 100 ? 100 : (uint32_t)p->replicas;
        /* Split only: the PD checks the names with the rest. */
        snprintf(region_buf, sizeof(region_buf), "%s", regions);
        for (char *s = region_buf, *tok; *regions && (tok = strsep(&s, ","));) {
            if (pol.n_regions == MAX_REGIONS) break;
            region_v[pol.n_regions++] = tok;
        }
        pol.regions = region_v;
        pol.lead_region = (char *)(p->lead_region ? p->lead_region : "");
        pol.survive = (char *)(p->survive ? p->survive : "zone");
        q.policy = &pol;
    }
    kv_client c;
    ProtobufCMessage *m = NULL;
    int rc = kv_client_open(&c, hosts, certs_dir, timeout_ns, e);
    if (!rc)
        rc = kv_client_call(&c, "pd.Policy", &q.base, &meridian__pd__policy_response__descriptor,
                            err_policy, &m, e);
    kv_client_close(&c);
    if (!rc) *out = (Meridian__Pd__PolicyResponse *)m;
    return rc;
}
