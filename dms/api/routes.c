/* routes.c - the dmsd API: droid CRUD, lifecycle, status, events, releases, builds (logs: logs.c; git:
 * gitroute.c). Every handler runs behind the bearer check of http.c; a droid of another user is 404 like a
 * missing one. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../build/builder.h"
#include "../build/buildopts.h"
#include "../build/git.h"
#include "../common.h"
#include "../confine/quota.h"
#include "../follow/follow.h"
#include "../run/runner.h"
#include "../snooze/snooze.h"
#include "handlers.h"
#include "history.h"
#include "page.h"

static void reply_droid(app *a, api_req *r, unsigned status, const droid *d)
{
    json_t *j = core_droid_json(a->core, d);
    if (!j) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    api_reply_json(r, status, j);
}

static bool need_runner(app *a, api_req *r)
{
    if (a->runner)
        return true;
    api_reply_errorf(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "no executor: %s", a->ex_error);
    return false;
}

/* ---- POST /droids ---- */

static void create(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    (void)id;
    _cleanup_json_ json_t *body = api_body_json(r, &err);
    if (!body) {
        api_reply_error(r, &err);
        return;
    }
    follow_opts fo;
    build_opts bo;
    if (follow_take_opts(body, &fo, &err) < 0 ||
        build_opts_take(body, a->cfg.build_timeout_max_s, &bo, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    droid *d = droid_new();
    droid *out = NULL;
    if (!d || !(d->user_id = strdup(api_user(r)))) {
        droid_free(d);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    d->build_timeout_s = bo.timeout_s; /* in the same transaction as its first build: that build has it */
    /* Bad input is a 400 first; then the policy and the quotas, 403 (the droid count is core_create's, under
     * its lock). */
    if (droid_parse_create(body, d, &err) < 0 ||
        confine_check_resources(&a->cfg.confine, &d->resources, &err) < 0 ||
        gitx_check_access(d->repo, "repo", &err) < 0 || quota_check_disk(a, d->user_id, &err) < 0 ||
        core_create(a->core, d, &out, &err) < 0) {
        droid_free(d);
        api_reply_error(r, &err);
        return;
    }
    droid_free(d);
    char made[HOOK_SECRET_BUF];
    if (follow_apply(a, out->id, &fo, made, &err) < 0) {
        droid_free(out);
        api_reply_error(r, &err);
        return;
    }
    json_t *j = core_droid_json(a->core, out);
    droid_free(out);
    if (j) {
        follow_add_json(a, j);
        if (made[0]) /* shown this once: only its hash is kept */
            json_object_set_new(j, "hook_secret", json_string(made));
    }
    api_reply_json(r, MHD_HTTP_CREATED, j);
}

/* ---- reads ---- */

static void list(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    dmsd_page pg;
    (void)id;
    if (api_page_parse(r, a->cfg.page_limit, API_CURSOR_TIME_ID, &pg, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    json_t *list = core_list_json(a->core, api_user(r), &pg);
    for (size_t i = 0; i < json_array_size(list); i++)
        follow_add_json(a, json_array_get(list, i));
    api_page_reply(r, &pg, API_CURSOR_TIME_ID, list);
}

static void available(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    (void)id;
    const char *name = api_query(r, "name");
    if (droid_validate_name(name, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    api_reply_json(r, MHD_HTTP_OK,
                   json_pack("{s:s, s:b}", "name", name, "available", core_name_available(a->core, name)));
}

static void get(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    json_t *j = NULL;
    if (core_get_json(a->core, api_user(r), id, &j, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    follow_add_json(a, j);
    api_reply_json(r, MHD_HTTP_OK, j);
}

static void status(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    char *body = NULL;
    size_t len = 0;
    if (core_status_body(a->core, api_user(r), id, &body, &len, &err) < 0)
        api_reply_error(r, &err);
    else
        api_reply_buf(r, MHD_HTTP_OK, "application/json", body, len, NULL, NULL);
}

static void events(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    dmsd_page pg;
    json_t *j = NULL;
    if (core_check_owner(a->core, api_user(r), id, &err) < 0 ||
        api_page_parse(r, a->cfg.page_limit, API_CURSOR_NUMBER, &pg, &err) < 0 ||
        history_events_json(a->st, id, pg.after.n, pg.limit + 1, &j, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    api_page_trim(&pg, j, "id");
    api_page_reply(r, &pg, API_CURSOR_NUMBER, j);
}

static void releases(void *ap, api_req *r, const char *id)
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

static void builds(void *ap, api_req *r, const char *id)
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

/* ---- PATCH /droids/:id ---- */

static int apply_patch(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    const droid_patch *p = ud;
    int r;
    if (p->name && strcmp(p->name, d->name) != 0) {
        if (dmsd_set_str(&d->name, p->name) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    if (p->name)
        core_tx_kick_runner(tx); /* its route's host name follows */
    bool config = false;
    if (p->has_port && p->port != d->port) {
        d->port = p->port;
        config = true;
    }
    if (p->env_json && strcmp(p->env_json, d->env_json ? d->env_json : "{}") != 0) {
        if (dmsd_set_str(&d->env_json, p->env_json) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        config = true;
    }
    if (p->has_build_timeout)
        d->build_timeout_s = p->build_timeout_s; /* builds that start from now on */
    bool resources = p->has_resources && memcmp(&p->resources, &d->resources, sizeof(d->resources)) != 0;
    if (resources) {
        d->resources = p->resources;
        config = true;
    }
    bool code = false;
    /* Naming the branch, even the same one, asks for its head again: that is how a new push is deployed. */
    if (p->has_branch) {
        if (dmsd_set_str(&d->branch, p->branch) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        code = true;
    }
    if (p->has_commit &&
        !(p->commit == d->commit || (p->commit && d->commit && strcmp(p->commit, d->commit) == 0))) {
        if (dmsd_set_str(&d->commit, p->commit) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        code = true;
    }
    if (config) {
        d->config_gen++;
        char why[96];
        snprintf(why, sizeof(why), "configuration changed (%s%s%s%s%s)", p->has_port ? "port" : "",
                 p->has_port && p->env_json ? ", " : "", p->env_json ? "env" : "",
                 resources && (p->has_port || p->env_json) ? ", " : "", resources ? "resources" : "");
        if ((r = core_tx_note(tx, d, why, err)) < 0)
            return r;
        if (d->want_release && d->want_running && !code) {
            d->crash_count = d->start_failures = 0;
            d->retry_at_ns = 0;
            if (!droid_state_is_active(d->state) && d->state != DROID_BUILDING && d->state != DROID_PENDING &&
                (r = core_tx_set_state(tx, d, DROID_STARTING, "restarting with the new configuration", err)) <
                    0)
                return r;
        }
        core_tx_kick_runner(tx);
    }
    if (code) {
        store *st = core_tx_store(tx);
        if ((r = store_builds_supersede(st, d->id, err)) < 0 ||
            (r = store_build_insert(st, d->id, d->branch, d->commit, NULL, err)) < 0)
            return r;
        char why[320];
        snprintf(why, sizeof(why), "rebuild queued (branch %s%s%.40s)", d->branch ? d->branch : "(default)",
                 d->commit ? ", commit " : "", d->commit ? d->commit : "");
        if (d->state == DROID_RUNNING || d->state == DROID_STARTING || d->state == DROID_BUILDING ||
            d->state == DROID_SNOOZED)
            r = core_tx_note(tx, d, why,
                             err); /* the old container keeps serving (or sleeping) until the new one runs */
        else
            r = core_tx_set_state(tx, d, DROID_PENDING, why, err);
        if (r < 0)
            return r;
        core_tx_kick_builder(tx);
    }
    return 0;
}

static void patch(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    _cleanup_json_ json_t *body = api_body_json(r, &err);
    droid *cur = NULL, *out = NULL;
    droid_patch p = {0};
    follow_opts fo = {0};
    build_opts bo = {0};
    char made[HOOK_SECRET_BUF] = "";
    if (body && (follow_take_opts(body, &fo, &err) < 0 ||
                 build_opts_take(body, a->cfg.build_timeout_max_s, &bo, &err) < 0)) {
        api_reply_error(r, &err);
        return;
    }
    p.has_build_timeout = bo.has_timeout;
    p.build_timeout_s = bo.timeout_s;
    if (body && (fo.has_follow || fo.has_secret || bo.has_timeout) && json_object_size(body) == 0) {
        /* Only follow/hook_secret/build_timeout_s: nothing that restarts or rebuilds the droid changes. */
        json_t *j = NULL;
        if (core_check_owner(a->core, api_user(r), id, &err) < 0 ||
            (bo.has_timeout && core_mutate(a->core, api_user(r), id, apply_patch, &p, NULL, &err) < 0) ||
            follow_apply(a, id, &fo, made, &err) < 0 ||
            core_get_json(a->core, api_user(r), id, &j, &err) < 0) {
            api_reply_error(r, &err);
            return;
        }
        follow_add_json(a, j);
        if (made[0])
            json_object_set_new(j, "hook_secret", json_string(made));
        api_reply_json(r, MHD_HTTP_OK, j);
        return;
    }
    /* The build that runs before the change, if any: the change supersedes it (below). */
    int64_t old_build = a->builder ? builder_running(a->builder, id) : 0;
    bool ok = body && core_check_owner(a->core, api_user(r), id, &err) == 0 &&
              (cur = core_get_copy(a->core, id)) && droid_parse_patch(body, cur, &p, &err) == 0 &&
              (!p.has_resources || confine_check_resources(&a->cfg.confine, &p.resources, &err) == 0) &&
              (!(p.has_branch || p.has_commit) || (gitx_check_access(cur->repo, "repo", &err) == 0 &&
                                                  quota_check_disk(a, api_user(r), &err) == 0));
    if (ok) {
        p.has_build_timeout = bo.has_timeout; /* taken from the body above: the parser did not see it */
        p.build_timeout_s = bo.timeout_s;
        ok = core_mutate(a->core, api_user(r), id, apply_patch, &p, &out, &err) == 0;
    }
    if (!ok) {
        if (!err.code)
            dms_error_set(&err, DMS_E_NOT_FOUND, "id", "droid %s not found", id);
        droid_free(cur);
        droid_patch_clear(&p);
        api_reply_error(r, &err);
        return;
    }
    /* A running build of the old code is no longer wanted (not the new one, which may have started already).
     */
    if ((p.has_branch || p.has_commit) && a->builder)
        builder_supersede(a->builder, id, old_build);
    droid_free(cur);
    droid_patch_clear(&p);
    if (follow_apply(a, id, &fo, made, &err) < 0) {
        droid_free(out);
        api_reply_error(r, &err);
        return;
    }
    json_t *j = core_droid_json(a->core, out);
    droid_free(out);
    if (j) {
        follow_add_json(a, j);
        if (made[0])
            json_object_set_new(j, "hook_secret", json_string(made));
    }
    api_reply_json(r, MHD_HTTP_OK, j);
}

/* ---- POST /droids/:id/hooks/push: a git host's push hook (no JWT: the droid's hook secret) ---- */

static void hook_push(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    const char *secret = api_header(r, HOOK_SECRET_HEADER);
    if (!secret)
        secret = api_header(r, HOOK_SECRET_HEADER_GITLAB);
    const char *signature = api_header(r, HOOK_SIGNATURE_HEADER);
    if (!signature)
        signature = api_header(r, HOOK_SIGNATURE_HEADER_GITEA);
    if (!secret && !signature) {
        api_reply_errorf(
            r, MHD_HTTP_UNAUTHORIZED, HOOK_SECRET_HEADER,
            "a push hook needs the droid's hook secret in the %s header (or %s), or the body signed "
            "with it in %s (GitHub, Gitea)",
            HOOK_SECRET_HEADER, HOOK_SECRET_HEADER_GITLAB, HOOK_SIGNATURE_HEADER);
        return;
    }
    /* A wrong secret or signature and a droid without a secret (or none at all) get the same answer. */
    size_t len = 0;
    const char *raw = api_body(r, &len);
    int vr = secret ? follow_verify_secret(a, id, secret, &err)
                    : follow_verify_signature(a, id, signature, raw, len, &err);
    if (vr < 0) {
        const char *field = secret ? HOOK_SECRET_HEADER : HOOK_SIGNATURE_HEADER;
        if (err.code == DMS_E_NOT_FOUND || err.code == DMS_E_INVALID)
            api_reply_errorf(r, MHD_HTTP_FORBIDDEN, field, "wrong hook %s, or no such hook",
                             secret ? "secret" : "signature");
        else
            api_reply_error(r, &err);
        return;
    }
    if (!a->follower) {
        api_reply_errorf(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "no executor: %s", a->ex_error);
        return;
    }
    /* A push payload (GitHub, GitLab, Gitea) names the ref; a push to another branch changes nothing. */
    _cleanup_json_ json_t *payload = len ? json_loadb(raw, len, 0, NULL) : NULL;
    const char *ref = json_string_value(json_object_get(payload, "ref"));
    droid *d = core_get_copy(a->core, id);
    if (ref && d && d->branch && strncmp(ref, "refs/heads/", 11) == 0 && strcmp(ref + 11, d->branch) != 0) {
        api_reply_json(
            r, MHD_HTTP_ACCEPTED,
            json_pack("{s:s, s:b, s:s}", "id", id, "accepted", 0, "reason", "a push to another branch"));
        droid_free(d);
        return;
    }
    droid_free(d);
    follower_check_now(a->follower, id);
    api_reply_json(r, MHD_HTTP_ACCEPTED, json_pack("{s:s, s:b}", "id", id, "accepted", 1));
}

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
    d->woken_ns = dmsd_now_ns();
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
    d->woken_ns = dmsd_now_ns();
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
    if (!need_runner(a, r))
        return;
    if (core_mutate(a->core, api_user(r), id, fn, ud, &out, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (!wait) {
        reply_droid(a, r, MHD_HTTP_ACCEPTED, out);
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

static void start(void *ap, api_req *r, const char *id)
{
    lifecycle(ap, r, id, do_start, NULL, false);
}

static void stop(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    if (a->builder)
        builder_cancel(a->builder, id, "cancelled: the droid was stopped", NULL, NULL);
    lifecycle(ap, r, id, do_stop, NULL, true);
}

static void restart(void *ap, api_req *r, const char *id)
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

static void delete_(void *ap, api_req *r, const char *id)
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

/* ---- builds and releases ---- */

static void cancel_build(void *ap, api_req *r, const char *id)
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

static void rollback(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    rollback_args ra = {0};
    droid *out = NULL;
    _cleanup_json_ json_t *body = api_body_json(r, &err);
    if (!need_runner(a, r))
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
                         (long long)ra.rel.seq, a->cfg.keep_releases);
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
    reply_droid(a, r, MHD_HTTP_ACCEPTED, out);
    droid_free(out);
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

static void snooze_get(void *ap, api_req *r, const char *id)
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

static void snooze_put(void *ap, api_req *r, const char *id)
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
    reply_droid(a, r, MHD_HTTP_OK, out);
    droid_free(out);
}

static void snooze_delete(void *ap, api_req *r, const char *id)
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
    reply_droid(a, r, MHD_HTTP_OK, out);
    droid_free(out);
}

/* ---- the table ----
 * Each route with an :id says what it names: the dispatcher has route_check_owner (owner.c) confirm the
 * caller owns it before the handler runs, and http_start refuses a route with an :id that does not say. */

static const char *const q_none[] = {NULL};
static const char *const q_name[] = {"name", NULL};
static const char *const q_page[] = {"after", "limit", NULL}; /* every list: api/page.h */
static const char *const q_force[] = {"force", NULL};
static const char *const q_delete[] = {"keep_volumes", NULL};
static const char *const q_logs[] = {"tail",      "follow", "from",   "limit",      "build.out",
                                     "build.err", "run",    "format", "timestamps", NULL};
static const char *const q_git[] = {"repo", "branch", NULL};
static const char *const q_follow[] = {"follow", NULL};

const api_route dmsd_routes[] = {
    {"POST", "/droids", create, q_none, API_ID_NONE},
    {"GET", "/droids", list, q_page, API_ID_NONE},
    {"GET", "/droids/available", available, q_name, API_ID_NONE},
    {"GET", "/git/check", route_git_check, q_git, API_ID_NONE},
    {"GET", "/droids/:id", get, q_none, API_ID_DROID},
    {"PATCH", "/droids/:id", patch, q_none, API_ID_DROID},
    {"DELETE", "/droids/:id", delete_, q_delete, API_ID_DROID},
    {"POST", "/droids/:id/start", start, q_none, API_ID_DROID},
    {"POST", "/droids/:id/stop", stop, q_none, API_ID_DROID},
    {"POST", "/droids/:id/restart", restart, q_force, API_ID_DROID},
    {"GET", "/droids/:id/status", status, q_none, API_ID_DROID},
    {"GET", "/droids/:id/events", events, q_page, API_ID_DROID},
    {"GET", "/droids/:id/logs", route_logs, q_logs, API_ID_DROID},
    {"GET", "/droids/:id/releases", releases, q_page, API_ID_DROID},
    {"GET", "/droids/:id/builds", builds, q_page, API_ID_DROID},
    {"POST", "/droids/:id/rollback", rollback, q_none, API_ID_DROID},
    {"POST", "/droids/:id/build/cancel", cancel_build, q_none, API_ID_DROID},
    {"GET", "/droids/:id/snooze", snooze_get, q_none, API_ID_DROID},
    {"PUT", "/droids/:id/snooze", snooze_put, q_none, API_ID_DROID},
    {"DELETE", "/droids/:id/snooze", snooze_delete, q_none, API_ID_DROID},
    /* build jobs (api/jobroutes.c) */
    {"POST", "/job/create", route_job_create, q_none, API_ID_NONE},
    {"GET", "/jobs", route_jobs_list, q_page, API_ID_NONE},
    {"GET", "/job/:id", route_job_get, q_none, API_ID_JOB},
    {"GET", "/job/:id/status", route_job_status, q_none, API_ID_JOB},
    {"GET", "/job/:id/log", route_job_log, q_follow, API_ID_JOB},
    {"PATCH", "/job/:id/cancel", route_job_cancel, q_none, API_ID_JOB},
    {"GET", "/job/:id/artifact", route_job_artifact, q_none, API_ID_JOB},
    {"DELETE", "/projects/:id/cache", route_project_cache_delete, q_none, API_ID_PROJECT},
    {NULL, NULL, NULL, NULL, API_ID_NONE},
};

/* Served without a bearer token: each handler authenticates what it serves. */
const api_route dmsd_open_routes[] = {
    {"POST", "/droids/:id/hooks/push", hook_push, q_none, API_ID_HOOK},
    {NULL, NULL, NULL, NULL, API_ID_NONE},
};
