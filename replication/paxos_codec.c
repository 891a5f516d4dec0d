/* Paxos wire codec: paxos_msg <-> proto/paxos.proto, with validation on the way
 * in (types, flags, counts, sizes, node ids) so the core only sees sane input. */
#include "replication/paxos_codec.h"

#include "paxos.pb-c.h"

#include <stdlib.h>
#include <string.h>

int paxos_msg_encode(const paxos_msg *m, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (m->nentries > PAXOS_CODEC_MAX_ENTRIES || m->members.nvoters > PAXOS_MAX_NODES ||
        m->members.nlearners > PAXOS_MAX_NODES)
        return MERR_INVALID;
    Meridian__Paxos__Msg pm = MERIDIAN__PAXOS__MSG__INIT;
    Meridian__Paxos__Ballot pb = MERIDIAN__PAXOS__BALLOT__INIT;
    Meridian__Paxos__Members mm = MERIDIAN__PAXOS__MEMBERS__INIT;
    Meridian__Paxos__Entry *ents = NULL, **eptr = NULL;
    Meridian__Paxos__Ballot *eb = NULL;
    int rc = MERR_NOMEM;
    pm.type = m->type;
    pm.flags = m->flags;
    pm.group = m->group;
    pm.from = m->from;
    pm.to = m->to;
    pb.round = m->ballot.round;
    pb.node = m->ballot.node;
    pm.ballot = &pb;
    pm.slot = m->slot;
    pm.commit = m->commit;
    pm.lease_start = m->lease_start;
    pm.lease_epoch = m->lease_epoch;
    pm.aux = m->aux;
    pm.offset = m->offset;
    pm.total = m->total;
    if (m->members.nvoters || m->members.nlearners) {
        mm.n_voters = m->members.nvoters;
        mm.voters = (uint32_t *)m->members.voters;
        mm.n_learners = m->members.nlearners;
        mm.learners = (uint32_t *)m->members.learners;
        pm.members = &mm;
    }
    if (m->nentries) {
        ents = calloc(m->nentries, sizeof(*ents));
        eptr = calloc(m->nentries, sizeof(*eptr));
        eb = calloc(m->nentries, sizeof(*eb));
        if (!ents || !eptr || !eb) goto out;
        for (uint32_t i = 0; i < m->nentries; i++) {
            const paxos_entry *e = &m->entries[i];
            meridian__paxos__entry__init(&ents[i]);
            meridian__paxos__ballot__init(&eb[i]);
            eb[i].round = e->ballot.round;
            eb[i].node = e->ballot.node;
            ents[i].slot = e->slot;
            ents[i].ballot = &eb[i];
            ents[i].type = e->type;
            ents[i].data.data = e->data;
            ents[i].data.len = e->len;
            eptr[i] = &ents[i];
        }
        pm.n_entries = m->nentries;
        pm.entries = eptr;
    }
    pm.data.data = m->data;
    pm.data.len = m->len;
    size_t n = meridian__paxos__msg__get_packed_size(&pm);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) goto out;
    meridian__paxos__msg__pack(&pm, buf);
    *out = buf;
    *len = n;
    rc = 0;
out:
    free(ents);
    free(eptr);
    free(eb);
    return rc;
}

static int bad(merr *e, paxos_msg *m, const char *what)
{
    paxos_msg_free(m);
    return merr_set(e, MERR_CORRUPT, "paxos message: %s", what);
}

static int copy_ids(paxos_node_id *dst, uint32_t *n, const uint32_t *src, size_t cnt)
{
    if (cnt > PAXOS_MAX_NODES) return -1;
    for (size_t i = 0; i < cnt; i++) {
        if (src[i] == 0) return -1;
        dst[i] = src[i];
    }
    *n = (uint32_t)cnt;
    return 0;
}

int paxos_msg_decode(const uint8_t *p, size_t len, paxos_msg *m, merr *e)
{
    memset(m, 0, sizeof(*m));
    if (len > PAXOS_CODEC_MAX_BYTES + 4096) return bad(e, m, "too big");
    Meridian__Paxos__Msg *pm = meridian__paxos__msg__unpack(NULL, len, p);
    if (!pm) return bad(e, m, "not a valid protobuf Msg");
    const char *why = NULL;
    if (pm->type == 0 || pm->type > PAXOS_MSG_TYPE_MAX)
        why = "unknown type";
    else if (pm->flags & ~PAXOS_F_ALL)
        why = "unknown flags";
    else if (pm->from == 0 || pm->to == 0)
        why = "missing sender or receiver";
    else if (pm->n_entries > PAXOS_CODEC_MAX_ENTRIES)
        why = "too many entries";
    else if (pm->data.len > PAXOS_CODEC_MAX_BYTES)
        why = "data too big";
    if (why) {
        meridian__paxos__msg__free_unpacked(pm, NULL);
        return bad(e, m, why);
    }
    m->type = (uint8_t)pm->type;
    m->flags = pm->flags;
    m->group = pm->group;
    m->from = pm->from;
    m->to = pm->to;
    if (pm->ballot) {
        m->ballot.round = pm->ballot->round;
        m->ballot.node = pm->ballot->node;
    }
    m->slot = pm->slot;
    m->commit = pm->commit;
    m->lease_start = pm->lease_start;
    m->lease_epoch = pm->lease_epoch;
    m->aux = pm->aux;
    m->offset = pm->offset;
    m->total = pm->total;
    if (pm->members && (copy_ids(m->members.voters, &m->members.nvoters, pm->members->voters,
                                 pm->members->n_voters) ||
                        copy_ids(m->members.learners, &m->members.nlearners, pm->members->learners,
                                 pm->members->n_learners)))
        why = "bad members";
    if (!why && pm->n_entries) {
        m->entries = calloc(pm->n_entries, sizeof(*m->entries));
        if (!m->entries) {
            meridian__paxos__msg__free_unpacked(pm, NULL);
            paxos_msg_free(m);
            return merr_set(e, MERR_NOMEM, "paxos message: out of memory");
        }
        for (size_t i = 0; i < pm->n_entries && !why; i++) {
            const Meridian__Paxos__Entry *pe = pm->entries[i];
            paxos_entry *d = &m->entries[i];
            if (pe->type < PAXOS_ENTRY_NOOP || pe->type > PAXOS_ENTRY_CONFIG) {
                why = "bad entry type";
                break;
            }
            if (pe->slot == 0 || pe->data.len > PAXOS_CODEC_MAX_BYTES) {
                why = "bad entry";
                break;
            }
            d->slot = pe->slot;
            d->type = (uint8_t)pe->type;
            if (pe->ballot) {
                d->ballot.round = pe->ballot->round;
                d->ballot.node = pe->ballot->node;
            }
            if (pe->data.len) {
                d->data = malloc(pe->data.len);
                if (!d->data) {
                    why = "out of memory";
                    break;
                }
                memcpy(d->data, pe->data.data, pe->data.len);
                d->len = (uint32_t)pe->data.len;
            }
            m->nentries++;
        }
    }
    if (!why && pm->data.len) {
        m->data = malloc(pm->data.len);
        if (!m->data)
            why = "out of memory";
        else {
            memcpy(m->data, pm->data.data, pm->data.len);
            m->len = (uint32_t)pm->data.len;
        }
    }
    meridian__paxos__msg__free_unpacked(pm, NULL);
    if (why) return bad(e, m, why);
    return 0;
}
