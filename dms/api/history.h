/* api/history.h - a droid's history as the API shows it: its events, builds and releases, from the store's
 * rows (store/store.h) to the JSON of GET /droids/:id/{events,builds,releases}. Clients read these members
 * by name; their order is kept as it was when the store built them. Thread-safe (the store is). */
#ifndef DMSD_API_HISTORY_H
#define DMSD_API_HISTORY_H

#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

#include "../store/store.h"

/* {"id","time","ts_ns","from","to","reason"}. Caller owns; NULL on OOM. */
json_t *history_event_json(const store_event *e);
/* {"id","status","attempt","branch","commit","commit_sha","image_id","reason","created_at","started_at",
 * "finished_at"}. Caller owns; NULL on OOM. */
json_t *history_build_json(const store_build *b);
/* {"release","build","image_id","tag","commit_sha","env","port","created_at","image_available","current",
 * "resources","image_bytes"}; "current" when r is release current_seq. Caller owns; NULL on OOM. */
json_t *history_release_json(const store_release *r, int64_t current_seq);

/* store_events_list() as a JSON array of history_event_json(). *out: caller owns. */
int history_events_json(store *s, const char *droid_id, int64_t after_id, int limit, json_t **out,
                        dms_error *err);
/* store_builds_page() as a JSON array of history_build_json(). *out: caller owns. */
int history_builds_json(store *s, const char *droid_id, int64_t before_id, int limit, json_t **out,
                        dms_error *err);

#endif
