/* Cluster settings by name, as operators and the replicated store see them
 * ("range.max_bytes" = "64MiB"): parse, format, list. Pure: the PD edge
 * (server/node_pd.c) stores the text under "\x00sys/setting/" + name and
 * rebuilds a pd_settings from it on every run. */
#ifndef MERIDIAN_PLACEMENT_PD_SETTINGS_TEXT_H
#define MERIDIAN_PLACEMENT_PD_SETTINGS_TEXT_H

#include <stddef.h>

#include "placement/pd_model.h"

#define PD_SETTING_VALUE_MAX 64

/* The i-th setting's name and help (NULL past the last). */
const char *pd_setting_name(size_t i);
const char *pd_setting_help(size_t i);
/* Formats the value of `name` in s (MERR_INVALID for an unknown name). */
int pd_setting_get(const pd_settings *s, const char *name, char *buf, size_t cap, merr *e);
/* Parses value into `name` of s, then validates the whole of s. On any error
 * s is unchanged and e says why (MERR_INVALID: an unknown name, a bad
 * value or a combination the schedulers refuse, e.g. min > max/2). */
int pd_setting_set(pd_settings *s, const char *name, const char *value, merr *e);

#endif
