/* Named placement policies as operators and the replicated store see them:
 * checks, a canonical text form, and the rules for a set of them. Pure: the
 * PD edge (server/node_pd_policy.c) stores the text under
 * "\x00sys/policy/" + name in range 1 and adds every stored policy to each
 * run's snapshot (pd_model.h: a range takes the policy holding its start
 * key; policy boundaries become split points).
 *
 * Text form, one line, fields in this order (regions and lead_region only
 * when set):
 *   replicas=3 start=0x7401 end=0x7402 regions=us,eu lead_region=us survive=zone
 * Keys are hex; an empty end means "to the end of the key space". */
#ifndef MERIDIAN_PLACEMENT_PD_POLICY_TEXT_H
#define MERIDIAN_PLACEMENT_PD_POLICY_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "placement/pd_model.h"

#define PD_POLICY_NAME_MAX 64   /* with the NUL */
#define PD_POLICY_TEXT_MAX 1024 /* the text form of any valid policy fits */
#define PD_POLICY_MAX      256  /* policies per cluster */

/* The lowest key a policy may cover: system keys (0x00...) live in range 1,
 * which has its own policy and never splits below 0x01. */
#define PD_POLICY_USER_START 0x01

typedef struct pd_named_policy {
    char name[PD_POLICY_NAME_MAX];
    pd_policy p;
} pd_named_policy;

/* Names: 1-63 characters of [A-Za-z0-9_.-]. */
int pd_policy_name_check(const char *name, merr *e);
/* One policy on its own: factor 1/3/5, a known survival goal, region names
 * like localities ([a-z0-9-], distinct), a lead region among the allowed
 * ones (when any are given), start >= 0x01 and start < end (or end empty). */
int pd_policy_check(const pd_policy *p, merr *e);
/* Whether two policies' spans share a key. */
bool pd_policy_overlaps(const pd_policy *a, const pd_policy *b);
/* Whether p, named name, may join v[0..n) (an entry with the same name is
 * the one being replaced): pd_policy_check, then no overlap with the others
 * (the error names the policy in the way), then at most PD_POLICY_MAX. */
int pd_policy_check_with(const pd_named_policy *v, size_t n, const char *name, const pd_policy *p,
                         merr *e);

/* Adds v[0..n) to c in order, leaving out (and counting in *left_out) each
 * one that overlaps a policy added before it: checked when set, stored
 * policies do not overlap, but two sets racing through a lease change
 * could both pass, and an overlap would make every scheduler refuse the
 * snapshot. 0 or MERR_NOMEM. */
int pd_policy_add_all(pd_cluster *c, const pd_named_policy *v, size_t n, size_t *left_out);

/* "us,eu" into p's allowed regions ("" clears them); checks names only. */
int pd_policy_parse_regions(const char *csv, pd_policy *p, merr *e);
/* "zone" or "region". */
int pd_policy_parse_survival(const char *s, pd_survival *out, merr *e);
const char *pd_survival_name(pd_survival s);
/* "us,eu" (empty when any region is allowed). */
void pd_policy_regions_text(const pd_policy *p, char *buf, size_t cap);

/* The canonical text of p (which must pass pd_policy_check); the length,
 * truncated to cap - 1 like snprintf. */
size_t pd_policy_format(const pd_policy *p, char *buf, size_t cap);
/* Parses the text form (len bytes, no NUL needed) into *out, whose keys are
 * malloc'd (pd_policy_free), and checks it with pd_policy_check. On error
 * *out is zeroed and e says why. */
int pd_policy_parse(const char *text, size_t len, pd_policy *out, merr *e);
void pd_policy_free(pd_policy *p);

#endif
