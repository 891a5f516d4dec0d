/* A replica's load and age for the placement driver's heartbeats
 * (server/node_pd.c): reads and writes served here as leaseholder, turned
 * into rates per second between two heartbeats, the load-median key of a
 * hot range (placement/pd_loadkey.h), and how long ago its span last
 * changed (split or merge; a restart counts as a change, so the PD never
 * merges a range straight after a restart lost that age). */
#include "placement/pd_loadkey.h"
#include "server/replica.h"
#include "server/replica_int.h"

/* System keys (0x00...) stay in range 1 and are never a split key: their
 * requests count in the rates but are not sampled. */
static void sample(replica *r, const uint8_t *key, size_t klen)
{
    if (r->lk && klen && key[0] != 0x00) pd_loadkey_add(r->lk, key, klen);
}

void replica_note_read(replica *r, const uint8_t *key, size_t klen)
{
    r->nreads++;
    sample(r, key, klen);
}

void replica_note_write(replica *r, const range_write *w, size_t n)
{
    if (!n) return; /* an empty write (keep-alive, nudge) is no load */
    r->nwrites++;
    /* One request, one sample: its first user key (a transaction's record
     * key comes last). */
    for (size_t i = 0; i < n; i++)
        if (w[i].klen && w[i].key[0] != 0x00) {
            sample(r, w[i].key, w[i].klen);
            break;
        }
}

void replica_load(replica *r, int64_t now_ns, double sample_qps, double *reads_per_s,
                  double *writes_per_s, uint8_t *key, size_t *klen)
{
    *klen = 0;
    replica_load_peek(r, now_ns, reads_per_s, writes_per_s);
    r->load_ns = now_ns;
    r->load_reads = r->nreads;
    r->load_writes = r->nwrites;
    /* Only ranges near range.split_qps keep a sampler (about 17 KiB): a
     * node with 10k cold ranges holds none. */
    *klen = pd_loadkey_window(&r->lk, *reads_per_s + *writes_per_s, sample_qps, r->range_id,
                              r->start, r->start_len, r->end, r->end_len, key);
}

void replica_load_peek(replica *r, int64_t now_ns, double *reads_per_s, double *writes_per_s)
{
    *reads_per_s = *writes_per_s = 0;
    if (r->load_ns && now_ns > r->load_ns) {
        double s = (double)(now_ns - r->load_ns) / 1e9;
        *reads_per_s = (double)(r->nreads - r->load_reads) / s;
        *writes_per_s = (double)(r->nwrites - r->load_writes) / s;
    }
}

int64_t replica_span_age_ns(replica *r, int64_t now_ns)
{
    return now_ns > r->span_ns ? now_ns - r->span_ns : 0;
}
