/* droidroutes.c - the droid itself: create, the reads (list, name check, one droid, status, events) and
 * PATCH, and the two helpers the other droid routes share (see handlers.h). Every handler runs behind the
 * bearer check of http.c; a droid of another user is 404 like a missing one. */
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
#include "../fdlimit.h"
#include "../follow/follow.h"
#include "handlers.h"
#include "history.h"
#include "page.h"

void route_reply_droid(app *a, api_req *r, unsigned status, const droid *d)
{
    json_t *j = core_droid_json(a->core, d);
    if (!j) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    api_reply_json(r, status, j);
}

bool route_need_runner(app *a, api_req *r)
{
    if (a->runner)
        return true;
    api_reply_errorf(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "no executor: %s", a->ex_error);
    return false;
}

/* ---- POST /droids ---- */

void route_droid_create(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    quota_deps quota = app_quota_deps(a);
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
        build_opts_take(body, a->cfg.build.timeout_max_s, &bo, &err) < 0) {
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
     * its lock); then whether dmsd has the descriptors to run one more droid: a 503 that creates nothing,
     * rather than builds and starts that fail with "Too many open files" later (fdlimit.h). */
    if (droid_parse_create(body, d, &err) < 0 ||
        confine_check_resources(&a->cfg.confine, &d->resources, &err) < 0 ||
        gitx_check_access(d->repo, "repo", &err) < 0 || quota_check_disk(&quota, d->user_id, &err) < 0 ||
        fdlimit_check_now((long)core_count(a->core), FDLIMIT_PER_DROID, &err) < 0 ||
        core_create(a->core, d, &out, &err) < 0) {
        droid_free(d);
        api_reply_error(r, &err);
        return;
    }
    droid_free(d);
    char made[HOOK_SECRET_BUF];
    if (follow_apply(a->core, a->follower, out->id, &fo, made, &err) < 0) {
        droid_free(out);
        api_reply_error(r, &err);
        return;
    }
    json_t *j = core_droid_json(a->core, out);
    droid_free(out);
    if (j) {
        follow_add_json(a->st, j);
        if (made[0]) /* shown this once: only its hash is kept */
            json_object_set_new(j, "hook_secret", json_string(made));
    }
    api_reply_json(r, MHD_HTTP_CREATED, j);
}

/* ---- reads ---- */

void route_droids_list(void *ap, api_req *r, const char *id)
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
        follow_add_json(a->st, json_array_get(list, i));
    api_page_reply(r, &pg, API_CURSOR_TIME_ID, list);
}

void route_droid_available(void *ap, api_req *r, const char *id)
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

void route_droid_get(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    json_t *j = NULL;
    if (core_get_json(a->core, api_user(r), id, &j, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    follow_add_json(a->st, j);
    api_reply_json(r, MHD_HTTP_OK, j);
}

void route_droid_status(void *ap, api_req *r, const char *id)
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

void route_droid_events(void *ap, api_req *r, const char *id)
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

void route_droid_patch(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    quota_deps quota = app_quota_deps(a);
    dms_error err = {0};
    _cleanup_json_ json_t *body = api_body_json(r, &err);
    droid *cur = NULL, *out = NULL;
    droid_patch p = {0};
    follow_opts fo = {0};
    build_opts bo = {0};
    char made[HOOK_SECRET_BUF] = "";
    if (body && (follow_take_opts(body, &fo, &err) < 0 ||
                 build_opts_take(body, a->cfg.build.timeout_max_s, &bo, &err) < 0)) {
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
            follow_apply(a->core, a->follower, id, &fo, made, &err) < 0 ||
            core_get_json(a->core, api_user(r), id, &j, &err) < 0) {
            api_reply_error(r, &err);
            return;
        }
        follow_add_json(a->st, j);
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
                                                   quota_check_disk(&quota, api_user(r), &err) == 0));
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
    if (follow_apply(a->core, a->follower, id, &fo, made, &err) < 0) {
        droid_free(out);
        api_reply_error(r, &err);
        return;
    }
    json_t *j = core_droid_json(a->core, out);
    droid_free(out);
    if (j) {
        follow_add_json(a->st, j);
        if (made[0])
            json_object_set_new(j, "hook_secret", json_string(made));
    }
    api_reply_json(r, MHD_HTTP_OK, j);
}
