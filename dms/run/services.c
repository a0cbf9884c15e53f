/* services.c - a compose droid's services besides the routed one (see run_priv.h: services).
 *
 * The routed service is the droid's run, started, gated, swapped and supervised as any droid's container
 * (start.c). Every other service has an entry in d->services_json:
 *
 *   {"name": "worker", "exec": "<execution id>" | null, "release": 3, "hash": "<16 hex>",
 *    "restart": "no|always|on-failure|unless-stopped", "state": "running|exited|restarting|failed|stopped",
 *    "restarts": 0, "exit_code": null | N, "retry_at_ns": 0}
 *
 * and run_services_converge brings them to what the release wants, in start order: a service whose request
 * (image id, env, command, mounts, ...: its hash) did not change and that runs is left alone; any other is
 * started once what it depends on meets its condition, the new one before the old one goes, or the old one
 * first for a singleton (x-dms.singleton, or one that writes a named volume). Level-triggered like the rest
 * of the runner: every pass may call it again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../compose/release.h"
#include "execreq.h"
#include "run_priv.h"

/* ---- the entries ---- */

json_t *run_services_entries(const droid *d)
{
    json_t *a = d->services_json ? json_loads(d->services_json, 0, NULL) : NULL;
    if (json_is_array(a))
        return a;
    json_decref(a);
    return json_array();
}

/* The entry whose member key is value, or NULL. */
static json_t *entry_with(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *v = json_string_value(json_object_get(e, key));
        if (v && strcmp(v, value) == 0)
            return e;
    }
    return NULL;
}

static json_t *entry_named(json_t *arr, const char *name)
{
    return entry_with(arr, "name", name);
}

static json_t *entry_by_exec(json_t *arr, const char *exec_id)
{
    return entry_with(arr, "exec", exec_id);
}

static int entries_store(droid *d, json_t *arr, dms_error *err)
{
    char *s = json_dumps(arr, JSON_COMPACT);
    if (!s)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    free(d->services_json);
    d->services_json = s;
    return 0;
}

bool run_services_owns(const droid *d, const char *exec_id)
{
    json_t *arr = run_services_entries(d);
    bool found = entry_by_exec(arr, exec_id) != NULL;
    json_decref(arr);
    return found;
}

static const char *restart_name(compose_restart r)
{
    static const char *const names[] = {"no", "always", "on-failure", "unless-stopped"};
    return names[r];
}

/* ---- the release's plan ---- */

/* The droid's release rel, its file parsed with the droid's env of now. */
int run_services_load(runner *r, const droid *d, int64_t release, compose_release *cr, dms_error *err)
{
    store_release rel = {0};
    memset(cr, 0, sizeof(*cr));
    int rc = store_release_get(r->dep.st, d->id, release, &rel, err);
    if (rc == 0 && !rel.compose_json)
        rc = dms_error_set(err, DMS_E_INTERNAL, "release", "release %lld is not a compose release",
                           (long long)release);
    _cleanup_strv_ char **env = NULL;
    if (rc == 0)
        rc = droid_env_vector(d, &env, err);
    if (rc == 0)
        rc = compose_release_load(rel.compose_json, env, cr, err);
    store_release_clear(&rel);
    return rc;
}

/* FNV-1a of the request's JSON, without its execution id and its dms.release label: what decides whether a
 * service changed (a new release that leaves it as it was does not restart it). */
static void request_hash(dms_exec_request *req, const compose_service *s, int64_t restart_gen, char out[17])
{
    const char *exec_id = req->execution_id;
    char *const *labels = req->labels;
    const char *kept[COMPOSE_LIST_MAX + 4];
    size_t n = 0;
    for (size_t i = 0; labels && labels[i] && n + 1 < DMS_ARRAY_SIZE(kept); i++)
        if (strncmp(labels[i], "dms.release=", 12) != 0)
            kept[n++] = labels[i];
    kept[n] = NULL;
    req->execution_id = "x";
    req->labels = (char *const *)kept;
    char *j = dms_exec_request_to_json(req);
    req->execution_id = exec_id;
    req->labels = labels;
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = j ? j : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    /* What dmsd does with it counts too: a new restart policy is a new service, as for compose. */
    for (const char *p = restart_name(s->restart); *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    /* A restart of the droid restarts every service. */
    for (int i = 0; i < 8; i++)
        h = (h ^ (unsigned char)(restart_gen >> (8 * i))) * 1099511628211ULL;
    free(j);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* Builds the request of service s (exec_id may be a placeholder). */
static int service_request(runner *r, const droid *d, const compose_release *cr, int64_t release,
                           const compose_service *s, const char *exec_id, execreq *xr, dms_error *err)
{
    execreq_input in = {.d = d,
                        .exec_id = exec_id,
                        .release = release,
                        .image = compose_release_image(cr, s->name),
                        .confine = r->dep.confine,
                        .executor_id = dms_executor_id(r->dep.ex)};
    svcreq_input sin = {.svc = s,
                        .env_file = compose_release_env_file(cr, s->name),
                        .binds = compose_release_binds(cr, s->name)};
    if (s == &cr->f->services[compose_release_primary(cr)])
        sin.routed_port = compose_release_port(cr);
    return execreq_build_service(xr, &in, &sin, err);
}

bool run_services_routed_unchanged(runner *r, const droid *d, const compose_release *cr, int64_t release,
                                   char hash[17])
{
    execreq xr;
    const compose_service *s = &cr->f->services[compose_release_primary(cr)];
    bool same = false;
    hash[0] = '\0';
    if (service_request(r, d, cr, release, s, "x", &xr, NULL) == 0) {
        request_hash(&xr.req, s, d->restart_gen, hash);
        json_t *arr = run_services_entries(d);
        json_t *e = entry_named(arr, s->name);
        dms_exec_status st;
        same = e && d->run_id && strcmp(json_string_value(json_object_get(e, "hash")) ?: "", hash) == 0 &&
               dms_executor_status(r->dep.ex, d->run_id, &st, NULL) == 0 && st.state != DMS_STATE_FINISHED;
        json_decref(arr);
    }
    execreq_clear(&xr);
    return same;
}

int run_services_routed_request(runner *r, const droid *d, const compose_release *cr, int64_t release,
                                const char *exec_id, execreq *xr, dms_error *err)
{
    return service_request(r, d, cr, release, &cr->f->services[compose_release_primary(cr)], exec_id, xr,
                           err);
}

/* ---- dependencies ---- */

/* The current execution of service name: its entry's, or the droid's run for the routed service. */
static void current_exec(const droid *d, const compose_release *cr, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    if (strcmp(name, cr->f->services[compose_release_primary(cr)].name) == 0) {
        snprintf(out, size, "%s", d->run_id ? d->run_id : "");
        return;
    }
    json_t *arr = run_services_entries(d);
    json_t *e = entry_named(arr, name);
    snprintf(out, size, "%s", e ? json_string_value(json_object_get(e, "exec")) ?: "" : "");
    json_decref(arr);
}

/* What the dependency's status says of its condition: 0 met, -1 never will be (why set), 1 not yet. */
static int dependency_state(const dms_exec_status *st, const compose_service *s, const compose_dep *dep,
                            char *why, size_t size)
{
    bool finished = st->state == DMS_STATE_FINISHED;
    bool ok0 = finished && st->outcome == DMS_OUTCOME_EXITED && st->exit_code == 0;
    const char *broken = NULL;
    if (dep->condition == COMPOSE_COND_COMPLETED)
        return finished ? (ok0 ? 0 : (broken = "it exited with an error", -1)) : 1;
    if (dep->condition == COMPOSE_COND_STARTED && (!finished || ok0))
        return 0;
    if (dep->condition == COMPOSE_COND_HEALTHY && !finished &&
        (st->health == DMS_HEALTH_HEALTHY || st->health == DMS_HEALTH_NONE))
        return 0;
    /* As compose: an unhealthy dependency fails at once (its check will not come back by itself). */
    if (finished)
        broken = "it exited";
    else if (st->health == DMS_HEALTH_UNHEALTHY)
        broken = "it is unhealthy";
    if (!broken)
        return 1;
    snprintf(why, size, "service %s depends on %s being %s, which it is not (%s)", s->name, dep->service,
             dep->condition == COMPOSE_COND_HEALTHY ? "healthy" : "started", broken);
    return -1;
}

/* Waits a moment (RUN_DEP_SLICE_MS) for dependency dep of service s to meet its condition: 0 met, -1 never
 * will be, 1 not yet (the runner comes back later: a worker is never held for long; start.c bounds the whole
 * wait by RUN_DEP_TIMEOUT_MS). why says which. */
static int wait_dependency(runner *r, const droid *d, const compose_release *cr, const compose_service *s,
                           const compose_dep *dep, char *why, size_t size)
{
    char exec[DMS_ID_MAX + 1];
    current_exec(d, cr, dep->service, exec, sizeof(exec));
    int64_t until = dms_mono_ms() + RUN_DEP_SLICE_MS;
    int rc = -1;
    snprintf(why, size, "service %s depends on %s, which does not run", s->name, dep->service);
    while (exec[0] && !run_stopping(r)) {
        dms_exec_status st;
        if (dms_executor_status(r->dep.ex, exec, &st, NULL) < 0)
            break;
        rc = dependency_state(&st, s, dep, why, size);
        if (rc <= 0 || dms_mono_ms() > until)
            break;
        usleep(RUN_DEP_POLL_MS * 1000);
    }
    if (rc == 1)
        snprintf(why, size, "service %s waits for %s to be %s", s->name, dep->service,
                 dep->condition == COMPOSE_COND_HEALTHY ? "healthy" : "started");
    return rc;
}

/* ---- one service ---- */

typedef struct svc_start {
    const compose_service *s;
    int64_t release;
    const char *hash;
    char exec_id[DMS_ID_MAX + 1]; /* out (svc_prepare) */
    bool reset;                   /* a new config: the crash count starts over */
} svc_start;

/* A new execution id for the service, recorded before the start (a crash right after knows it). */
static int mut_svc_prepare(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    svc_start *ss = ud;
    d->run_seq++;
    snprintf(ss->exec_id, sizeof(ss->exec_id), "%s-%.32s-%lld", d->id, ss->s->name, (long long)d->run_seq);
    return store_run_insert_service(core_tx_store(tx), ss->exec_id, d->id, ss->s->name, ss->release,
                                    dms_now_ns(), err);
}

/* The service's entry now names the new execution. */
static int mut_svc_started(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    svc_start *ss = ud;
    json_t *arr = run_services_entries(d);
    json_t *e = entry_named(arr, ss->s->name);
    int64_t restarts = e && !ss->reset ? json_integer_value(json_object_get(e, "restarts")) : 0;
    if (!e) {
        e = json_object();
        json_array_append_new(arr, e);
    }
    json_object_set_new(e, "name", json_string(ss->s->name));
    json_object_set_new(e, "exec", json_string(ss->exec_id));
    json_object_set_new(e, "release", json_integer(ss->release));
    json_object_set_new(e, "hash", json_string(ss->hash));
    json_object_set_new(e, "restart", json_string(restart_name(ss->s->restart)));
    json_object_set_new(e, "state", json_string("running"));
    json_object_set_new(e, "restarts", json_integer(restarts));
    json_object_set_new(e, "exit_code", json_null());
    json_object_set_new(e, "retry_at_ns", json_integer(0));
    int rc = entries_store(d, arr, err);
    json_decref(arr);
    return rc;
}

/* Whether the service must not run twice at once: the file says so, or it writes a named volume. */
static bool singleton(const compose_service *s)
{
    for (size_t i = 0; i < s->n_volumes; i++)
        if (s->volumes[i].type == COMPOSE_MOUNT_VOLUME && !s->volumes[i].read_only)
            return true;
    return s->singleton;
}

/* Starts service s with request xr (its execution id filled in here); the old execution (old, may be "")
 * goes after (or before, for a singleton). */
static int start_service(runner *r, const droid *d, svc_start *ss, execreq *xr, const char *old, char *why,
                         size_t size)
{
    dms_error err = {0};
    if (old[0] && singleton(ss->s))
        run_stop(r, d->id, old);
    if (core_mutate(r->dep.core, NULL, d->id, mut_svc_prepare, ss, NULL, &err) < 0) {
        snprintf(why, size, "service %s: %s", ss->s->name, err.message);
        return -1;
    }
    xr->req.execution_id = ss->exec_id;
    if (dms_executor_start(r->dep.ex, &xr->req, &err) < 0) {
        store_run_end(r->dep.st, ss->exec_id, dms_now_ns(), "failed", -1, NULL);
        snprintf(why, size, "service %s would not start: %s", ss->s->name, err.message);
        return -1;
    }
    core_mutate(r->dep.core, NULL, d->id, mut_svc_started, ss, NULL, NULL);
    run_watch_add(r, ss->exec_id, d->id, dms_now_ns());
    if (old[0] && !singleton(ss->s))
        run_stop(r, d->id, old);
    log_info("droid=%s service=%s exec=%s op=start old=%s", d->id, ss->s->name, ss->exec_id,
             old[0] ? old : "-");
    return 0;
}

/* Whether the entry's execution is what the release wants and needs nothing: it runs, or it ended and its
 * restart policy leaves it so. A restart that is due starts a new execution of the same config. */
static bool settled(runner *r, const droid *d, json_t *e, const char *hash)
{
    if (!e || strcmp(json_string_value(json_object_get(e, "hash")) ?: "", hash) != 0)
        return false;
    const char *state = json_string_value(json_object_get(e, "state")) ?: "";
    if (strcmp(state, "exited") == 0 || strcmp(state, "failed") == 0)
        return true;
    if (strcmp(state, "restarting") == 0) {
        int64_t at = json_integer_value(json_object_get(e, "retry_at_ns"));
        if (at > dms_now_ns()) {
            run_set_timer(r, d->id, at);
            return true;
        }
        return false;
    }
    const char *exec = json_string_value(json_object_get(e, "exec"));
    dms_exec_status st;
    return exec && dms_executor_status(r->dep.ex, exec, &st, NULL) == 0 && st.state != DMS_STATE_FINISHED;
}

/* Service s of the release, converged: left alone if settled, else started after its dependencies. */
static int converge_one(runner *r, const droid *d, const compose_release *cr, int64_t release,
                        const compose_service *s, char *why, size_t size)
{
    dms_error err = {0};
    execreq xr;
    int rc = service_request(r, d, cr, release, s, "x", &xr, &err);
    char hash[17];
    if (rc == 0)
        request_hash(&xr.req, s, d->restart_gen, hash);
    json_t *arr = run_services_entries(d);
    json_t *e = entry_named(arr, s->name);
    char old[DMS_ID_MAX + 1];
    snprintf(old, sizeof(old), "%s", e ? json_string_value(json_object_get(e, "exec")) ?: "" : "");
    bool reset = !e || strcmp(json_string_value(json_object_get(e, "hash")) ?: "", rc == 0 ? hash : "") != 0;
    if (rc < 0)
        snprintf(why, size, "service %s: %s", s->name, err.message);
    else if (!settled(r, d, e, hash)) {
        for (size_t i = 0; rc == 0 && i < s->n_depends_on; i++)
            if (s->depends_on[i].required)
                rc = wait_dependency(r, d, cr, s, &s->depends_on[i], why, size);
        svc_start ss = {.s = s, .release = release, .hash = hash, .reset = reset};
        if (rc == 0)
            rc = start_service(r, d, &ss, &xr, old, why, size);
    }
    json_decref(arr);
    execreq_clear(&xr);
    return rc < 0 ? -1 : rc;
}

/* The routed service's dependencies meet their conditions (before it starts). */
static int wait_routed_dependencies(runner *r, const char *droid_id, const compose_release *cr, char *why,
                                    size_t size)
{
    const compose_service *s = &cr->f->services[compose_release_primary(cr)];
    droid *d = core_get_copy(r->dep.core, droid_id);
    int rc = 0;
    for (size_t i = 0; d && rc == 0 && i < s->n_depends_on; i++)
        if (s->depends_on[i].required)
            rc = wait_dependency(r, d, cr, s, &s->depends_on[i], why, size);
    droid_free(d);
    return rc;
}

int run_services_converge(runner *r, const char *droid_id, const compose_release *cr, int64_t release,
                          svc_phase phase, char *why, size_t size)
{
    int route = compose_release_primary(cr);
    for (size_t i = 0; i < cr->f->n_services; i++) {
        if ((int)i == route || (phase == SVC_BEFORE && (int)i > route) ||
            (phase == SVC_AFTER && (int)i < route))
            continue;
        /* Each service sees the droid as the services before it left it. */
        droid *d = core_get_copy(r->dep.core, droid_id);
        if (!d || d->deleting || !d->want_running) {
            droid_free(d);
            return 0;
        }
        int rc = converge_one(r, d, cr, release, &cr->f->services[i], why, size);
        droid_free(d);
        if (rc != 0)
            return rc;
    }
    return phase == SVC_BEFORE ? wait_routed_dependencies(r, droid_id, cr, why, size) : 0;
}

/* ---- stops, exits, adoption ---- */

typedef struct gone_args {
    const compose_release *cr; /* NULL: every entry is stopped */
    const char *state;
} gone_args;

/* Entries stopped: their execution forgotten (a service the release no longer has loses its entry). */
static int mut_svc_stopped(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    gone_args *ga = ud;
    json_t *arr = run_services_entries(d), *keep = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name")) ?: "";
        bool in_release = ga->cr && compose_find(ga->cr->f, name) &&
                          strcmp(name, ga->cr->f->services[compose_release_primary(ga->cr)].name) != 0;
        bool routed = ga->cr && json_is_true(json_object_get(e, "routed")) &&
                      strcmp(name, ga->cr->f->services[compose_release_primary(ga->cr)].name) == 0;
        if (ga->cr && (in_release || routed)) {
            json_array_append(keep, e);
            continue;
        }
        if (!ga->cr) {
            json_object_set_new(e, "exec", json_null());
            json_object_set_new(e, "state", json_string(ga->state));
            json_array_append(keep, e);
        }
    }
    int rc = entries_store(d, keep, err);
    json_decref(arr);
    json_decref(keep);
    return rc;
}

/* Stops the executions of the entries that go: every one (cr NULL), or those the release cr no longer has. */
static void stop_entries(runner *r, const droid *d, const compose_release *cr, const char *state)
{
    json_t *arr = run_services_entries(d);
    size_t i;
    json_t *e;
    bool any = false;
    json_array_foreach(arr, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name")) ?: "";
        const char *exec = json_string_value(json_object_get(e, "exec"));
        bool goes = !cr || !compose_find(cr->f, name) ||
                    strcmp(name, cr->f->services[compose_release_primary(cr)].name) == 0;
        if (goes && exec)
            run_stop(r, d->id, exec);
        any |= goes;
    }
    json_decref(arr);
    gone_args ga = {.cr = cr, .state = state};
    if (any)
        core_mutate(r->dep.core, NULL, d->id, mut_svc_stopped, &ga, NULL, NULL);
}

/* The routed service's entry (shown with the droid's state; its execution is the droid's run). */
typedef struct routed_args {
    const char *name;
    const char *hash;
    bool unrouted; /* the primary of a droid without a route (x-dms.route: false) */
} routed_args;

static int mut_svc_routed(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    const routed_args *ra = ud;
    const char *name = ra->name;
    json_t *arr = run_services_entries(d);
    json_t *e = entry_named(arr, name);
    if (!e) {
        e = json_object();
        json_array_append_new(arr, e);
    }
    json_object_set_new(e, "name", json_string(name));
    json_object_set_new(e, "routed", json_true());
    json_object_set_new(e, "unrouted", json_boolean(ra->unrouted));
    json_object_set_new(e, "hash", json_string(ra->hash));
    json_object_del(e, "exec");
    int rc = entries_store(d, arr, err);
    json_decref(arr);
    return rc;
}

void run_services_mark_routed(runner *r, const char *droid_id, const compose_release *cr, const char *hash)
{
    routed_args ra = {.name = cr->f->services[compose_release_primary(cr)].name,
                      .hash = hash,
                      .unrouted = cr->f->route_service < 0};
    core_mutate(r->dep.core, NULL, droid_id, mut_svc_routed, &ra, NULL, NULL);
}

void run_services_stop(runner *r, const droid *d, const char *state)
{
    if (d->services_json)
        stop_entries(r, d, NULL, state);
}

void run_services_prune(runner *r, const char *droid_id, const compose_release *cr)
{
    droid *d = core_get_copy(r->dep.core, droid_id);
    if (d)
        stop_entries(r, d, cr, NULL);
    droid_free(d);
}

void run_services_watch(runner *r, const droid *d)
{
    json_t *arr = run_services_entries(d);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *exec = json_string_value(json_object_get(e, "exec"));
        const char *state = json_string_value(json_object_get(e, "state")) ?: "";
        if (exec && strcmp(state, "running") == 0)
            run_watch_add(r, exec, d->id, 0);
    }
    json_decref(arr);
}

/* Whether the policy restarts a service that ended so. */
static bool restarts_after(const char *policy, const dms_exec_result *res)
{
    bool failed = res->outcome != DMS_OUTCOME_EXITED || res->exit_code != 0;
    return strcmp(policy, "always") == 0 || strcmp(policy, "unless-stopped") == 0 ||
           (strcmp(policy, "on-failure") == 0 && failed);
}

int run_services_exited(core_tx *tx, droid *d, const char *exec_id, const dms_exec_result *res, bool intended,
                        int64_t *retry_at_ns, dms_error *err)
{
    json_t *arr = run_services_entries(d);
    json_t *e = entry_by_exec(arr, exec_id);
    if (!e || intended || d->deleting || !d->want_running || d->asleep) {
        json_decref(arr);
        return e ? 1 : 0;
    }
    const char *name = json_string_value(json_object_get(e, "name")) ?: "?";
    int64_t restarts = json_integer_value(json_object_get(e, "restarts"));
    json_object_set_new(e, "exit_code", json_integer(res->exit_code));
    const char *state = "exited";
    char why[REASON_MAX];
    why[0] = '\0';
    if (restarts_after(json_string_value(json_object_get(e, "restart")) ?: "no", res)) {
        restarts++;
        json_object_set_new(e, "restarts", json_integer(restarts));
        if (restarts > RUN_MAX_CRASH_RESTARTS) {
            state = "failed";
            snprintf(why, sizeof(why), "service %s: crash loop (exit code %d, restarted %d times)", name,
                     res->exit_code, RUN_MAX_CRASH_RESTARTS);
        } else {
            state = "restarting";
            *retry_at_ns = dms_now_ns() + runner_backoff_ms((int)restarts) * NS_PER_MS;
            json_object_set_new(e, "retry_at_ns", json_integer(*retry_at_ns));
        }
    }
    json_object_set_new(e, "state", json_string(state));
    int rc = entries_store(d, arr, err);
    json_decref(arr);
    if (rc == 0 && why[0])
        rc = core_tx_note(tx, d, why, err);
    return rc < 0 ? rc : 1;
}
