/* liferoutes.c - a droid's lifecycle: start, stop, restart, delete (each a change of the droid's desired
 * state in one transaction; the runner does the work), and its snooze schedule. Stop and delete answer once
 * the runner has settled the droid. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../build/builder.h"
#include "../common.h"
#include "../run/runner.h"
#include "../snooze/snooze.h"
#include "handlers.h"

/* ---- lifecycle ---- */

typedef struct settled_ctx {
    api_pending *p;
    core *core;
} settled_ctx;

static void settled_reply(void *ud, const droid *d)
{
    settled_ctx *sc = ud;
    if (!d)
        api_pending_complete(sc->p, MHD_HTTP_OK, json_pack("{s:b}", "deleted", 1));
    else
        api_pending_complete(sc->p, MHD_HTTP_OK, core_droid_json(sc->core, d));
    free(sc);
}

/* A start or restart of a droid that sleeps wakes it (the schedule may put it back to sleep once idle). */
static int wake_for_request(core_tx *tx, droid *d, const char *why, dms_error *err)
{
    if (!d->asleep)
        return 0;
    d->asleep = false;
    d->woken_ns = dms_now_ns();
    core_tx_kick_runner(tx);
    if (d->state == DROID_SNOOZED)
        return core_tx_set_state(tx, d, DROID_STARTING, why, err);
    return 0;
}

static int do_start(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    int r;
    d->want_running = true;
    d->crash_count = d->start_failures = 0;
    d->retry_at_ns = 0;
    if ((r = wake_for_request(tx, d, "woken: start requested", err)) < 0)
        return r;
    if (d->want_release) {
        if (d->state == DROID_STOPPED || d->state == DROID_FAILED)
            if ((r = core_tx_set_state(tx, d, DROID_STARTING, "start requested", err)) < 0)
                return r;
    } else if (d->state == DROID_STOPPED || d->state == DROID_FAILED) {
        /* Nothing was ever built: building is how it starts. */
        store_build b = {0};
        int found = store_build_active(core_tx_store(tx), d->id, &b, err);
        store_build_clear(&b);
        if (found < 0)
            return found;
        if (!found && (r = store_build_insert(core_tx_store(tx), d->id, d->branch, d->commit, NULL, err)) < 0)
            return r;
        if ((r = core_tx_set_state(tx, d, DROID_PENDING, "start requested; build queued", err)) < 0)
            return r;
        core_tx_kick_builder(tx);
    }
    core_tx_kick_runner(tx);
    return 0;
}

static int do_stop(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    d->want_running = false;
    d->asleep = false;
    d->retry_at_ns = 0;
    core_tx_kick_runner(tx);
    /* With nothing running, stopped is already true; otherwise the runner says so once the container is gone.
     */
    if (!d->run_id && d->state != DROID_STOPPED)
        return core_tx_set_state(tx, d, DROID_STOPPED, "stopped on request", err);
    return 0;
}

typedef struct restart_args {
    bool force;
} restart_args;

static int do_restart(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    const restart_args *ra = ud;
    if (!d->want_release)
        return dms_error_set(err, DMS_E_CONFLICT, "status", "droid %s has no release to restart yet", d->id);
    d->want_running = true;
    d->asleep = false;
    d->woken_ns = dms_now_ns();
    d->restart_gen++;
    d->crash_count = d->start_failures = 0;
    d->retry_at_ns = 0;
    core_tx_kick_runner(tx);
    return core_tx_set_state(tx, d, DROID_STARTING,
                             ra->force ? "restart requested (force)" : "restart requested", err);
}

static void lifecycle(app *a, api_req *r, const char *id, core_mutator fn, void *ud, bool wait)
{
    dms_error err = {0};
    droid *out = NULL;
    if (!route_need_runner(a, r))
        return;
    if (core_mutate(a->core, api_user(r), id, fn, ud, &out, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (!wait) {
        route_reply_droid(a, r, MHD_HTTP_ACCEPTED, out);
        droid_free(out);
        return;
    }
    droid_free(out);
    settled_ctx *sc = calloc(1, sizeof(*sc));
    if (!sc) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    sc->core = a->core;
    if (!(sc->p = api_defer(r))) {
        free(sc);
        return;
    }
    runner_when_settled(a->runner, id, settled_reply, sc);
}

void route_droid_start(void *ap, api_req *r, const char *id)
{
    lifecycle(ap, r, id, do_start, NULL, false);
}

void route_droid_stop(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    if (a->builder)
        builder_cancel(a->builder, id, "cancelled: the droid was stopped", NULL, NULL);
    lifecycle(ap, r, id, do_stop, NULL, true);
}

void route_droid_restart(void *ap, api_req *r, const char *id)
{
    dms_error err = {0};
    restart_args ra;
    if (api_query_bool(r, "force", &ra.force, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    app *a = ap;
    if (ra.force && a->runner && core_check_owner(a->core, api_user(r), id, &err) == 0)
        runner_force_restart(a->runner, id);
    lifecycle(ap, r, id, do_restart, &ra, false);
}

typedef struct delete_args {
    bool keep_volumes;
} delete_args;

static int do_delete(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    const delete_args *da = ud;
    d->deleting = true;
    d->keep_volumes = da->keep_volumes;
    d->want_running = false;
    core_tx_kick_runner(tx);
    return core_tx_note(tx, d, da->keep_volumes ? "delete requested (volumes kept)" : "delete requested",
                        err);
}

void route_droid_delete(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    delete_args da;
    if (api_query_bool(r, "keep_volumes", &da.keep_volumes, &err) < 0 ||
        core_check_owner(a->core, api_user(r), id, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (a->builder)
        builder_cancel(a->builder, id, "cancelled: the droid is being deleted", NULL, NULL);
    lifecycle(ap, r, id, do_delete, &da, true);
}

/* ---- snooze ---- */

static bool need_snooze(app *a, api_req *r)
{
    if (a->snooze)
        return true;
    api_reply_errorf(
        r, MHD_HTTP_CONFLICT, NULL,
        "snooze needs routing, which is off in this dmsd (DMS_PROXY_LISTEN=off, or no executor)");
    return false;
}

void route_snooze_get(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    json_t *j = NULL;
    if (core_get_json(a->core, api_user(r), id, &j, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    json_t *sn = json_object_get(j, "snooze");
    /* The droid's "snooze" member as it is: an object, or null without a schedule. */
    char *body = json_dumps(sn ? sn : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (!body) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    api_reply_buf(r, MHD_HTTP_OK, "application/json", body, strlen(body), NULL, NULL);
}

void route_snooze_put(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    droid *out = NULL;
    if (!need_snooze(a, r))
        return;
    /* An empty body clears the schedule, like DELETE. */
    size_t len = 0;
    const char *raw = api_body(r, &len);
    bool empty = true;
    for (size_t i = 0; i < len && empty; i++)
        empty = raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n';
    json_t *body = empty ? json_null() : api_body_json(r, &err);
    if (!body || snooze_set(a->snooze, api_user(r), id, body, &out, &err) < 0) {
        json_decref(body);
        api_reply_error(r, &err);
        return;
    }
    json_decref(body);
    route_reply_droid(a, r, MHD_HTTP_OK, out);
    droid_free(out);
}

void route_snooze_delete(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    droid *out = NULL;
    if (!need_snooze(a, r))
        return;
    if (snooze_set(a->snooze, api_user(r), id, NULL, &out, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    route_reply_droid(a, r, MHD_HTTP_OK, out);
    droid_free(out);
}
