/* A replica's load and age for the placement driver's heartbeats
 * (server/node_pd.c): reads and writes served here as leaseholder, turned
 * into rates per second between two heartbeats, and how long ago its span
 * last changed (split or merge; a restart counts as a change, so the PD
 * never merges a range straight after a restart lost that age). */
#include "server/replica.h"
#include "server/replica_int.h"

void replica_note_read(replica *r)
{
    r->nreads++;
}

void replica_load(replica *r, int64_t now_ns, double *reads_per_s, double *writes_per_s)
{
    *reads_per_s = *writes_per_s = 0;
    if (r->load_ns && now_ns > r->load_ns) {
        double s = (double)(now_ns - r->load_ns) / 1e9;
        *reads_per_s = (double)(r->nreads - r->load_reads) / s;
        *writes_per_s = (double)(r->nwrites - r->load_writes) / s;
    }
    r->load_ns = now_ns;
    r->load_reads = r->nreads;
    r->load_writes = r->nwrites;
}

int64_t replica_span_age_ns(replica *r, int64_t now_ns)
{
    return now_ns > r->span_ns ? now_ns - r->span_ns : 0;
}
