/* core.c - the droid registry: cache + store, mutations in transactions (see core.h). */
#include "core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"

#define CACHE_MIN_SLOTS 64

struct core {
    store *st;
    pthread_rwlock_t cache_lock; /* readers: the routes; writer: the commit step of a mutation */
    pthread_mutex_t write_lock;  /* one mutation at a time */
    droid **slots;               /* open addressing by id; NULL = empty, TOMBSTONE = deleted */
    size_t n_slots;
    size_t n_used;   /* live entries */
    size_t n_filled; /* live + tombstones */
    core_hooks hooks;
    core_view view;
    int user_max_droids; /* 0: no quota; set once before the API serves */
};

static droid tombstone_;
#define TOMBSTONE (&tombstone_)

/* ---- the hash table ---- */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static droid **find_slot(core *c, const char *id)
{
    size_t mask = c->n_slots - 1;
    for (size_t i = hash_id(id) & mask, probes = 0; probes < c->n_slots; i = (i + 1) & mask, probes++) {
        droid *d = c->slots[i];
        if (!d)
            return NULL;
        if (d != TOMBSTONE && strcmp(d->id, id) == 0)
            return &c->slots[i];
    }
    return NULL;
}

static droid *lookup(core *c, const char *id)
{
    droid **s = find_slot(c, id);
    return s ? *s : NULL;
}

static int rehash(core *c, size_t n_slots)
{
    droid **ns = calloc(n_slots, sizeof(*ns)); // NOLINT(bugprone-sizeof-expression): an array of pointers
    if (!ns)
        return -DMS_E_NOMEM;
    for (size_t i = 0; i < c->n_slots; i++) {
        droid *d = c->slots[i];
        if (!d || d == TOMBSTONE)
            continue;
        size_t j = hash_id(d->id) & (n_slots - 1);
        while (ns[j])
            j = (j + 1) & (n_slots - 1);
        ns[j] = d;
    }
    free(c->slots);
    c->slots = ns;
    c->n_slots = n_slots;
    c->n_filled = c->n_used;
    return 0;
}

/* Inserts or replaces (the old one is freed). Takes ownership of d. */
static int cache_put(core *c, droid *d)
{
    droid **s = find_slot(c, d->id);
    if (s) {
        droid_free(*s);
        *s = d;
        return 0;
    }
    if ((c->n_filled + 1) * 4 >= c->n_slots * 3) {
        size_t want = c->n_slots;
        while ((c->n_used + 1) * 2 >= want)
            want *= 2;
        int r = rehash(c, want);
        if (r < 0)
            return r;
    }
    size_t i = hash_id(d->id) & (c->n_slots - 1);
    while (c->slots[i] && c->slots[i] != TOMBSTONE)
        i = (i + 1) & (c->n_slots - 1);
    if (!c->slots[i])
        c->n_filled++;
    c->slots[i] = d;
    c->n_used++;
    return 0;
}

static void cache_remove(core *c, const char *id)
{
    droid **s = find_slot(c, id);
    if (!s)
        return;
    droid_free(*s);
    *s = TOMBSTONE;
    c->n_used--;
}

/* ---- open/close ---- */

int core_open(core **out, store *st, dms_error *err)
{
    core *c = calloc(1, sizeof(*c));
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    if (!c || !(c->slots = calloc(CACHE_MIN_SLOTS, sizeof(*c->slots)))) {
        free(c);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    c->n_slots = CACHE_MIN_SLOTS;
    c->st = st;
    pthread_rwlock_init(&c->cache_lock, NULL);
    pthread_mutex_init(&c->write_lock, NULL);
    droid **all = NULL;
    size_t n = 0;
    int r = store_droid_load_all(st, &all, &n, err);
    if (r < 0) {
        core_close(c);
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        if (r == 0 && (r = cache_put(c, all[i])) < 0)
            dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        if (r < 0)
            droid_free(all[i]);
    }
    free(all);
    if (r < 0) {
        core_close(c);
        return r;
    }
    *out = c;
    return 0;
}

void core_close(core *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_slots; i++)
        if (c->slots[i] && c->slots[i] != TOMBSTONE)
            droid_free(c->slots[i]);
    free(c->slots);
    pthread_rwlock_destroy(&c->cache_lock);
    pthread_mutex_destroy(&c->write_lock);
    free(c);
}

void core_set_hooks(core *c, const core_hooks *hooks)
{
    pthread_mutex_lock(&c->write_lock);
    c->hooks = *hooks;
    pthread_mutex_unlock(&c->write_lock);
}

store *core_store(core *c)
{
    return c->st;
}

void core_set_view(core *c, const core_view *view)
{
    c->view = view ? *view : (core_view){0};
}

json_t *core_droid_json(core *c, const droid *d)
{
    json_t *j = droid_to_json(d);
    if (j && c->view.droid_json)
        c->view.droid_json(c->view.ud, d, j);
    return j;
}

/* ---- reads ---- */

static const droid *visible(core *c, const char *user, const char *id)
{
    const droid *d = id ? lookup(c, id) : NULL;
    if (!d || d->deleting || (user && strcmp(d->user_id, user) != 0))
        return NULL;
    return d;
}

static int not_found(dms_error *err, const char *id)
{
    return dms_error_set(err, DMS_E_NOT_FOUND, "id", "droid %.32s not found", id ? id : "");
}

int core_check_owner(core *c, const char *user, const char *id, dms_error *err)
{
    pthread_rwlock_rdlock(&c->cache_lock);
    bool ok = visible(c, user, id) != NULL;
    pthread_rwlock_unlock(&c->cache_lock);
    return ok ? 0 : not_found(err, id);
}

int core_get_json(core *c, const char *user, const char *id, json_t **out, dms_error *err)
{
    pthread_rwlock_rdlock(&c->cache_lock);
    const droid *d = visible(c, user, id);
    json_t *j = d ? core_droid_json(c, d) : NULL;
    pthread_rwlock_unlock(&c->cache_lock);
    if (!d)
        return not_found(err, id);
    if (!j)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    *out = j;
    return 0;
}

json_t *core_url_json(const droid *d)
{
    if (d->host_port <= 0 || !d->run_id)
        return json_null();
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d", d->host_port);
    return json_string(u);
}

/* A JSON string of s; text that is not UTF-8 (a reason quoting a tool) is made so rather than lost. */
static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = 0;
    char *clean = dmsu_utf8_sanitize(s, strlen(s), &n);
    j = clean ? json_stringn(clean, n) : NULL;
    free(clean);
    return j;
}

/* The polling route's body, members in the order clients have always seen. Called under the read lock. */
static json_t *status_json(core *c, const droid *d)
{
    char updated[32];
    dmsd_format_time(d->updated_ns, updated, sizeof(updated));
    json_t *o = json_pack("{s:s, s:o, s:s, s:o, s:o}", "id", d->id, "name", text_json(d->name ? d->name : ""),
                          "status", droid_state_name(d->state), "reason",
                          d->reason ? text_json(d->reason) : json_null(), "release",
                          d->want_release ? json_integer(d->want_release) : json_null());
    if (!o)
        return NULL;
    if (c->view.status_json)
        c->view.status_json(c->view.ud, d, o);
    else
        json_object_set_new(o, "url", core_url_json(d));
    json_object_set_new(o, "updated_at", json_string(updated));
    return o;
}

int core_status_body(core *c, const char *user, const char *id, char **out, size_t *len, dms_error *err)
{
    pthread_rwlock_rdlock(&c->cache_lock);
    const droid *d = visible(c, user, id);
    json_t *j = d ? status_json(c, d) : NULL;
    pthread_rwlock_unlock(&c->cache_lock);
    if (!d)
        return not_found(err, id);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    *out = body;
    *len = strlen(body);
    return 0;
}

static int by_created(const void *a, const void *b)
{
    const droid *x = *(const droid *const *)a, *y = *(const droid *const *)b;
    if (x->created_ns != y->created_ns)
        return x->created_ns < y->created_ns ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* True if d comes after the position c in the list's order (created_ns, id). */
static bool after_cursor(const droid *d, const dmsd_cursor *c)
{
    return d->created_ns > c->n || (d->created_ns == c->n && strcmp(d->id, c->id) > 0);
}

json_t *core_list_json(core *c, const char *user, dmsd_page *pg)
{
    json_t *a = json_array();
    pthread_rwlock_rdlock(&c->cache_lock);
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    const droid **mine = calloc(c->n_used + 1, sizeof(*mine));
    size_t n = 0;
    for (size_t i = 0; mine && i < c->n_slots; i++) {
        const droid *d = c->slots[i];
        if (d && d != TOMBSTONE && !d->deleting && strcmp(d->user_id, user) == 0 &&
            (!pg || !pg->has_after || after_cursor(d, &pg->after)))
            mine[n++] = d;
    }
    if (mine)
        qsort(mine, n, sizeof(*mine), by_created); // NOLINT(bugprone-sizeof-expression): an array of pointers
    size_t take = pg && (size_t)pg->limit < n ? (size_t)pg->limit : n;
    for (size_t i = 0; a && i < take; i++)
        json_array_append_new(a, core_droid_json(c, mine[i]));
    if (pg && (pg->more = take < n && take > 0)) {
        pg->next.n = mine[take - 1]->created_ns;
        snprintf(pg->next.id, sizeof(pg->next.id), "%s", mine[take - 1]->id);
    }
    pthread_rwlock_unlock(&c->cache_lock);
    free(mine);
    return a;
}

bool core_name_available(core *c, const char *name)
{
    bool free_ = true;
    pthread_rwlock_rdlock(&c->cache_lock);
    for (size_t i = 0; free_ && i < c->n_slots; i++) {
        const droid *d = c->slots[i];
        if (d && d != TOMBSTONE && strcmp(d->name, name) == 0)
            free_ = false;
    }
    pthread_rwlock_unlock(&c->cache_lock);
    return free_;
}

droid *core_get_copy(core *c, const char *id)
{
    pthread_rwlock_rdlock(&c->cache_lock);
    const droid *d = lookup(c, id);
    droid *copy = d ? droid_copy(d) : NULL;
    pthread_rwlock_unlock(&c->cache_lock);
    return copy;
}

char **core_ids(core *c)
{
    pthread_rwlock_rdlock(&c->cache_lock);
    char **v = calloc(c->n_used + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; v && i < c->n_slots; i++) {
        const droid *d = c->slots[i];
        if (d && d != TOMBSTONE && !(v[n++] = strdup(d->id))) {
            dmsu_strv_free(v);
            v = NULL;
        }
    }
    pthread_rwlock_unlock(&c->cache_lock);
    return v;
}

size_t core_count_user(core *c, const char *user)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&c->cache_lock);
    for (size_t i = 0; i < c->n_slots; i++) {
        const droid *d = c->slots[i];
        if (d && d != TOMBSTONE && !d->deleting && strcmp(d->user_id, user) == 0)
            n++;
    }
    pthread_rwlock_unlock(&c->cache_lock);
    return n;
}

void core_set_user_max_droids(core *c, int max)
{
    c->user_max_droids = max;
}

size_t core_count(core *c)
{
    pthread_rwlock_rdlock(&c->cache_lock);
    size_t n = c->n_used;
    pthread_rwlock_unlock(&c->cache_lock);
    return n;
}

/* ---- writes ---- */

struct core_tx {
    core *c;
    bool kick_builder;
    bool kick_runner;
    bool purge;
};

store *core_tx_store(core_tx *tx)
{
    return tx->c->st;
}

void core_tx_kick_builder(core_tx *tx)
{
    tx->kick_builder = true;
}

void core_tx_kick_runner(core_tx *tx)
{
    tx->kick_runner = true;
}

void core_tx_purge(core_tx *tx)
{
    tx->purge = true;
}

int core_tx_set_state(core_tx *tx, droid *d, droid_state to, const char *reason, dms_error *err)
{
    if (d->state == to && !droid_transition_allowed(to, to)) {
        /* Already there: keep the newer reason, but a non-change is not an event. */
        if (reason && dmsd_set_str(&d->reason, reason) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        return 0;
    }
    int r = droid_transition_check(d->state, to, reason, err);
    if (r < 0)
        return r;
    int64_t now = dms_now_ns();
    if ((r = store_event_add(tx->c->st, d->id, now, droid_state_name(d->state), droid_state_name(to), reason,
                             err)) < 0)
        return r;
    log_info("droid=%s op=state from=%s to=%s reason=\"%s\"", d->id, droid_state_name(d->state),
             droid_state_name(to), reason);
    d->state = to;
    if (dmsd_set_str(&d->reason, reason) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    d->updated_ns = now;
    return 0;
}

int core_tx_note(core_tx *tx, droid *d, const char *reason, dms_error *err)
{
    const char *s = droid_state_name(d->state);
    log_info("droid=%s op=note state=%s reason=\"%s\"", d->id, s, reason);
    return store_event_add(tx->c->st, d->id, dms_now_ns(), s, s, reason, err);
}

static void run_hooks(core *c, const core_tx *tx, const char *id)
{
    core_hooks h;
    pthread_mutex_lock(&c->write_lock);
    h = c->hooks;
    pthread_mutex_unlock(&c->write_lock);
    if (tx->kick_builder && h.build_queued)
        h.build_queued(h.ud);
    if (tx->kick_runner && h.droid_changed)
        h.droid_changed(h.ud, id);
}

int core_mutate(core *c, const char *user, const char *id, core_mutator fn, void *ud, droid **out,
                dms_error *err)
{
    pthread_mutex_lock(&c->write_lock);
    /* Only this thread changes the cache while write_lock is held, so reading it without cache_lock is safe.
     */
    const droid *cur = user ? visible(c, user, id) : lookup(c, id);
    if (!cur) {
        pthread_mutex_unlock(&c->write_lock);
        return not_found(err, id);
    }
    droid *d = droid_copy(cur);
    if (!d) {
        pthread_mutex_unlock(&c->write_lock);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    core_tx tx = {.c = c};
    int r = store_begin(c->st, err);
    if (r == 0) {
        int64_t before = d->updated_ns;
        r = fn(&tx, d, ud, err);
        if (r == 0 && d->updated_ns == before)
            d->updated_ns = dms_now_ns();
        if (r == 0)
            r = tx.purge ? store_droid_delete(c->st, d->id, err) : store_droid_update(c->st, d, err);
        if (r == 0)
            r = store_commit(c->st, err);
        else
            store_rollback(c->st);
    }
    droid *copy = NULL;
    if (r == 0) {
        if (out && !tx.purge)
            copy = droid_copy(d);
        pthread_rwlock_wrlock(&c->cache_lock);
        if (tx.purge) {
            cache_remove(c, d->id);
            droid_free(d);
        } else if (cache_put(c, d) < 0) {
            /* Only a rehash can fail, and only when growing; replacing never grows. */
            droid_free(d);
        }
        pthread_rwlock_unlock(&c->cache_lock);
    } else {
        droid_free(d);
    }
    pthread_mutex_unlock(&c->write_lock);
    if (r < 0)
        return r;
    run_hooks(c, &tx, id);
    if (out)
        *out = copy;
    return 0;
}

int core_create(core *c, droid *d, droid **out, dms_error *err)
{
    int r;
    if (dmsu_random_id(d->id, sizeof(d->id), "d") < 0)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "a droid id does not fit in %zu bytes",
                             sizeof(d->id));
    d->created_ns = d->updated_ns = dms_now_ns();
    d->state = DROID_PENDING;
    d->want_running = true;
    if (dmsd_set_str(&d->reason, "created; waiting for its first build") < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    droid *cached = droid_copy(d);
    if (!cached)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    core_tx tx = {.c = c, .kick_builder = true};
    pthread_mutex_lock(&c->write_lock);
    /* Counted under the write lock: two creates at the quota's edge cannot both pass. */
    size_t have = c->user_max_droids > 0 ? core_count_user(c, d->user_id) : 0;
    if (c->user_max_droids > 0 && have >= (size_t)c->user_max_droids)
        r = dms_error_set(
            err, DMS_E_FORBIDDEN, "quota.droids",
            "droid quota reached: you have %zu droids and DMS_USER_MAX_DROIDS allows %d per user; "
            "delete one first (the operator sets DMS_USER_MAX_DROIDS)",
            have, c->user_max_droids);
    else if ((r = store_begin(c->st, err)) == 0) {
        if ((r = store_droid_insert(c->st, d, err)) == 0 &&
            (r = store_event_add(c->st, d->id, d->created_ns, NULL, "pending", d->reason, err)) == 0 &&
            (r = store_build_insert(c->st, d->id, d->branch, d->commit, NULL, err)) == 0)
            r = store_commit(c->st, err);
        else
            store_rollback(c->st);
    }
    if (r == 0) {
        pthread_rwlock_wrlock(&c->cache_lock);
        r = cache_put(c, cached);
        pthread_rwlock_unlock(&c->cache_lock);
        if (r < 0)
            r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory (droid %s is stored; restart dmsd)",
                              d->id);
        else
            cached = NULL;
    }
    pthread_mutex_unlock(&c->write_lock);
    droid_free(cached);
    if (r < 0)
        return r;
    log_info("droid=%s op=create name=%s user=%s", d->id, d->name, d->user_id);
    run_hooks(c, &tx, d->id);
    if (out && !(*out = droid_copy(d)))
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}
