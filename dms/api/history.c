/* history.c - events, builds and releases as the API shows them (see history.h). */
#include "history.h"

#include "../common.h"

static json_t *time_or_null(int64_t ns)
{
    if (!ns)
        return json_null();
    char when[32];
    dmsd_format_time(ns, when, sizeof(when));
    return json_string(when);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *history_event_json(const store_event *e)
{
    char when[32];
    dmsd_format_time(e->ts_ns, when, sizeof(when));
    return json_pack("{s:I, s:s, s:I, s:o, s:o, s:o}", "id", (json_int_t)e->id, "time", when, "ts_ns",
                     (json_int_t)e->ts_ns, "from", str_or_null(e->from), "to", str_or_null(e->to), "reason",
                     str_or_null(e->reason));
}

json_t *history_build_json(const store_build *b)
{
    return json_pack("{s:I, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)b->id,
                     "status", build_status_name(b->status), "attempt", b->attempt, "branch",
                     str_or_null(b->branch), "commit", str_or_null(b->commit_pin), "commit_sha",
                     str_or_null(b->commit_sha), "image_id", str_or_null(b->image_id), "reason",
                     str_or_null(b->reason), "created_at", time_or_null(b->created_ns), "started_at",
                     time_or_null(b->started_ns), "finished_at", time_or_null(b->finished_ns));
}

json_t *history_release_json(const store_release *r, int64_t current_seq)
{
    json_t *env = json_loads(r->env_json ? r->env_json : "{}", 0, NULL);
    json_t *res = json_loads(r->resources_json ? r->resources_json : "{}", 0, NULL);
    return json_pack("{s:I, s:I, s:s, s:s, s:o, s:o, s:i, s:o, s:b, s:b, s:o, s:I}", "release",
                     (json_int_t)r->seq, "build", (json_int_t)r->build_id, "image_id",
                     r->image_id ? r->image_id : "", "tag", r->tag ? r->tag : "", "commit_sha",
                     str_or_null(r->commit_sha), "env", env ? env : json_object(), "port", r->port,
                     "created_at", time_or_null(r->created_ns), "image_available", !r->image_removed,
                     "current", r->seq == current_seq, "resources", res ? res : json_object(), "image_bytes",
                     (json_int_t)r->image_bytes);
}

int history_events_json(store *s, const char *droid_id, int64_t after_id, int limit, json_t **out,
                        dms_error *err)
{
    store_event *v = NULL;
    size_t n = 0;
    int r = store_events_list(s, droid_id, after_id, limit, &v, &n, err);
    if (r < 0)
        return r;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, history_event_json(&v[i]));
    store_events_free(v, n);
    *out = a;
    return 0;
}

int history_builds_json(store *s, const char *droid_id, int64_t before_id, int limit, json_t **out,
                        dms_error *err)
{
    store_build *v = NULL;
    size_t n = 0;
    int r = store_builds_page(s, droid_id, before_id, limit, &v, &n, err);
    if (r < 0)
        return r;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, history_build_json(&v[i]));
    store_builds_free(v, n);
    *out = a;
    return 0;
}
