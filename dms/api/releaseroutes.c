/* releaseroutes.c - a droid's builds and releases: their lists, cancelling the running build, and the
 * rollback to an earlier release (the one route that asks the engine itself: see the api/ README). */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../build/builder.h"
#include "../common.h"
#include "handlers.h"
#include "history.h"
#include "page.h"

void route_droid_releases(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    store_release *rel = NULL;
    size_t n = 0;
    droid *d = NULL;
    dmsd_page pg;
    if (core_check_owner(a->core, api_user(r), id, &err) < 0 ||
        api_page_parse(r, a->cfg.page_limit, API_CURSOR_NUMBER, &pg, &err) < 0 ||
        !(d = core_get_copy(a->core, id)) ||
        store_releases_page(a->st, id, pg.after.n, pg.limit + 1, &rel, &n, &err) < 0) {
        if (!err.code)
            dms_error_set(&err, DMS_E_NOT_FOUND, "id", "droid %s not found", id);
        droid_free(d);
        api_reply_error(r, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              history_release_json(&rel[i], d->run_id ? d->run_release : d->want_release));
    store_releases_free(rel, n);
    droid_free(d);
    api_page_trim(&pg, arr, "release");
    api_page_reply(r, &pg, API_CURSOR_NUMBER, arr);
}

void route_droid_builds(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    json_t *j = NULL;
    dmsd_page pg;
    if (core_check_owner(a->core, api_user(r), id, &err) < 0 ||
        api_page_parse(r, a->cfg.page_limit, API_CURSOR_NUMBER, &pg, &err) < 0 ||
        history_builds_json(a->st, id, pg.after.n, pg.limit + 1, &j, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    api_page_trim(&pg, j, "id");
    api_page_reply(r, &pg, API_CURSOR_NUMBER, j);
}

/* ---- builds and releases ---- */

void route_build_cancel(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    bool found = false;
    if (core_check_owner(a->core, api_user(r), id, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (!a->builder) {
        api_reply_errorf(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "no builder: %s", a->ex_error);
        return;
    }
    if (builder_cancel(a->builder, id, "cancelled", &found, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (!found) {
        api_reply_errorf(r, MHD_HTTP_CONFLICT, NULL, "droid %s has no build queued or running", id);
        return;
    }
    api_reply_json(r, MHD_HTTP_OK, json_pack("{s:s, s:b}", "id", id, "cancelled", 1));
}

typedef struct rollback_args {
    store_release rel;
} rollback_args;

static int do_rollback(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    rollback_args *ra = ud;
    char why[128];
    int r;
    if (ra->rel.seq == d->want_release && d->run_id && d->run_release == ra->rel.seq)
        return dms_error_set(err, DMS_E_CONFLICT, "release", "release %lld is already the current one",
                             (long long)ra->rel.seq);
    d->want_release = ra->rel.seq;
    d->want_running = true;
    if (dmsd_set_str(&d->env_json, ra->rel.env_json) < 0 ||
        dmsd_set_str(&d->commit_sha, ra->rel.commit_sha) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    /* Its limits come back with its env (within today's ceilings: confine_droid_limits). */
    if ((r = droid_resources_from_json(ra->rel.resources_json, &d->resources, err)) < 0)
        return r;
    d->port = ra->rel.port;
    d->config_gen++;
    d->crash_count = d->start_failures = 0;
    d->retry_at_ns = 0;
    snprintf(why, sizeof(why), "rollback to release %lld", (long long)ra->rel.seq);
    if ((r = core_tx_set_state(tx, d, DROID_STARTING, why, err)) < 0)
        return r;
    core_tx_kick_runner(tx);
    return 0;
}

void route_droid_rollback(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    rollback_args ra = {0};
    droid *out = NULL;
    _cleanup_json_ json_t *body = api_body_json(r, &err);
    if (!route_need_runner(a, r))
        return;
    json_t *rel = body ? json_object_get(body, "release") : NULL;
    if (!body || core_check_owner(a->core, api_user(r), id, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (json_object_size(body) != 1 || !json_is_integer(rel) || json_integer_value(rel) < 1) {
        api_reply_errorf(r, MHD_HTTP_BAD_REQUEST, "release", "the body must be {\"release\": <number>}");
        return;
    }
    /* Check before touching anything: the release exists and its image was not pruned. */
    if (store_release_get(a->st, id, json_integer_value(rel), &ra.rel, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (ra.rel.image_removed) {
        api_reply_errorf(r, MHD_HTTP_CONFLICT, "release",
                         "the image of release %lld was removed (only the last %d are "
                         "kept)",
                         (long long)ra.rel.seq, a->cfg.build.keep_releases);
        store_release_clear(&ra.rel);
        return;
    }
    /* Our record says it is kept; the engine has the last word (an image removed behind our back). */
    dms_image_info info;
    if (!a->ex || dms_executor_image_info(a->ex, ra.rel.image_id, &info, &err) < 0) {
        /* Without the engine's answer nothing is rolled back: a rollback to an image that is gone would stop
         * nothing but fail later, after the droid's state said otherwise. */
        if (!a->ex)
            api_reply_errorf(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "no executor: %s", a->ex_error);
        else
            api_reply_error(r, &err);
        store_release_clear(&ra.rel);
        return;
    }
    if (!info.present) {
        api_reply_errorf(r, MHD_HTTP_CONFLICT, "release",
                         "the image of release %lld (%s) is no longer present", (long long)ra.rel.seq,
                         ra.rel.image_id);
        store_release_clear(&ra.rel);
        return;
    }
    int rc = core_mutate(a->core, api_user(r), id, do_rollback, &ra, &out, &err);
    store_release_clear(&ra.rel);
    if (rc < 0) {
        api_reply_error(r, &err);
        return;
    }
    route_reply_droid(a, r, MHD_HTTP_ACCEPTED, out);
    droid_free(out);
}
