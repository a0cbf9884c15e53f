/* core/core.h - the droid registry: an in-memory cache of every droid kept in step with the store, and the
 * one way to change a droid (a mutation in a store transaction, with an event row for every state change).
 *
 * Reads (status, get, list) are served from the cache under a read lock: no SQLite query per status request.
 * Writes are serialised by one mutex: copy the cached droid, let a mutator change the copy (and write related
 * rows through the same transaction), persist, commit, then swap the copy into the cache. A failed mutator or
 * commit leaves both store and cache as they were.
 *
 * After a commit, the hooks run outside every lock: the builder learns of queued builds, the runner of droids
 * it must look at again (reconcile).
 *
 * Thread-safe.
 */
#ifndef DMSD_CORE_H
#define DMSD_CORE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <dms/error.h>

#include "../common.h"
#include "../droids/droid.h"
#include "../store/store.h"
#include "util.h"

typedef struct core core;

typedef struct core_hooks {
    void (*build_queued)(void *ud);                  /* a build was queued (or cancelled) */
    void (*droid_changed)(void *ud, const char *id); /* the runner should reconcile this droid */
    void *ud;
} core_hooks;

/* How droids are shown beyond droid_to_json(): the router's URL, the snooze summary. Both callbacks run under
 * the cache's read lock and must not call back into core. */
typedef struct core_view {
    void (*droid_json)(void *ud, const droid *d,
                       json_t *obj); /* adds or replaces members of the public JSON */
    /* sets "url" (core_url_json() if nothing better) and other members of the status body, in order */
    void (*status_json)(void *ud, const droid *d, json_t *obj);
    void *ud;
} core_view;

/* Loads every droid from the store into the cache. The store stays owned by the caller. */
int core_open(core **out, store *st, dms_error *err);
void core_close(core *c);
void core_set_hooks(core *c, const core_hooks *hooks);
store *core_store(core *c);
/* Set once before the API serves (not synchronised with readers). */
void core_set_view(core *c, const core_view *view);
/* "url" of a droid's status: its container's published port on 127.0.0.1, or null while it has none. */
json_t *core_url_json(const droid *d);
/* droid_to_json() plus the view. Caller owns; NULL on OOM. */
json_t *core_droid_json(core *c, const droid *d);

/* ---- reads (users see only their own droids; another user's id is NOT_FOUND) ---- */

/* The droid's public JSON. NOT_FOUND if absent, being deleted, or not the user's. */
int core_get_json(core *c, const char *user, const char *id, json_t **out, dms_error *err);
/* {"id","name","status","reason","release","url",<the view's>,"updated_at"}: the polling route's body, as a
 * compact JSON string (*out: caller frees; *len its length). */
int core_status_body(core *c, const char *user, const char *id, char **out, size_t *len, dms_error *err);
/* [droid...] of the user, oldest first (by creation time, then id). pg (may be NULL: every one) says where
 * the page starts and how many; its more/next are set. */
json_t *core_list_json(core *c, const char *user, dmsd_page *pg);
/* True if no droid (of any user) holds the name. */
bool core_name_available(core *c, const char *name);
/* A private copy of a droid (no user check: for the workers); NULL if absent. Free with droid_free(). */
droid *core_get_copy(core *c, const char *id);
/* Checks the droid exists and is the user's; 0 or NOT_FOUND. */
int core_check_owner(core *c, const char *user, const char *id, dms_error *err);
/* Ids of every droid (deleting ones included), for the workers' startup pass. Caller frees with
 * dmsu_strv_free. */
char **core_ids(core *c);
size_t core_count(core *c);
/* The user's droids (being deleted ones left out). */
size_t core_count_user(core *c, const char *user);
/* The most droids a user may have (DMS_USER_MAX_DROIDS; 0: no limit): core_create refuses one more with
 * FORBIDDEN, field "quota.droids". Set once before the API serves. */
void core_set_user_max_droids(core *c, int max);

/* ---- writes ---- */

typedef struct core_tx core_tx;

/* Changes d's state, recording the event (from, to, reason) in the transaction. A self-transition that the
 * machine does not allow only updates the reason (no event). CONFLICT for an impossible change. */
int core_tx_set_state(core_tx *tx, droid *d, droid_state to, const char *reason, dms_error *err);
/* Records an event that is not a state change (from = to), e.g. "build 3 failed; still serving release 2". */
int core_tx_note(core_tx *tx, droid *d, const char *reason, dms_error *err);
/* The transaction's store, for related rows (builds, releases, runs). */
store *core_tx_store(core_tx *tx);
/* Ask for the hooks after commit. */
void core_tx_kick_builder(core_tx *tx);
void core_tx_kick_runner(core_tx *tx);
/* The droid is removed from store and cache at commit (the mutator's copy is discarded). */
void core_tx_purge(core_tx *tx);

/* A mutator changes d (a private copy) and may use tx. Returning < 0 aborts everything. */
typedef int (*core_mutator)(core_tx *tx, droid *d, void *ud, dms_error *err);

/* Applies fn to droid id (NOT_FOUND if absent; if user is not NULL, also if not the user's or being deleted).
 * On success and if out is not NULL, *out is a copy of the droid as committed (caller frees). */
int core_mutate(core *c, const char *user, const char *id, core_mutator fn, void *ud, droid **out,
                dms_error *err);

/* Creates a droid from a validated one (id, user, times set here), with its "created" event and a queued
 * build, in one transaction. CONFLICT (field "name") if the name is taken; FORBIDDEN (field "quota.droids")
 * when the user has core_set_user_max_droids() droids already. *out: a copy as committed. */
int core_create(core *c, droid *d, droid **out, dms_error *err);

#endif
