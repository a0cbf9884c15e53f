/* store/store.h - dmsd's persistent state in SQLite (WAL): droids, events, builds, releases, runs.
 *
 * One database file ($DMS_DATA_DIR/dms.db). The schema is created and upgraded by numbered migrations
 * recorded in the schema_migrations table. Every change that must not be half-done happens inside
 * store_begin/store_commit (e.g. a state change and its event row).
 *
 * Threads: a store is used from many threads; one recursive mutex serialises them, and store_begin() holds it
 * until store_commit()/store_rollback(), so a transaction is never interleaved with another thread's
 * statements. Every function may be called inside or outside a transaction.
 *
 * The store returns rows as structs; how the API shows them is api/history.h. Each table's queries are a file
 * of their own (droidtab.c, eventtab.c, buildtab.c, releasetab.c, runtab.c, imagegc.c); store.c opens the
 * database and migrates it.
 */
#ifndef DMSD_STORE_H
#define DMSD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>
#include <dms/request.h>

#include "../droids/droid.h"

typedef struct store store;

/* Opens (creating if needed) the database at path, sets WAL, applies migrations. Caller owns *out. */
int store_open(store **out, const char *path, dms_error *err);
void store_close(store *s); /* accepts NULL */
/* The schema version after migrations. */
int store_schema_version(store *s);

int store_begin(store *s, dms_error *err); /* BEGIN IMMEDIATE; holds the store's lock until commit/rollback */
int store_commit(store *s, dms_error *err); /* on failure the transaction is rolled back */
void store_rollback(store *s);

/* For the modules that keep tables of their own in this database (jobs/, follow/): the connection, with the
 * store's lock held until store_db_release() (recursive: fine inside the caller's own transaction). */
typedef struct sqlite3 sqlite3;
sqlite3 *store_db_acquire(store *s);
void store_db_release(store *s);

/* ---- droids ---- */
int store_droid_insert(store *s, const droid *d,
                       dms_error *err); /* CONFLICT (field name) if the name is taken */
int store_droid_update(store *s, const droid *d, dms_error *err); /* NOT_FOUND if absent; CONFLICT on name */
int store_droid_delete(store *s, const char *id,
                       dms_error *err); /* with its events, builds, releases, runs, follow row */
/* Every droid; caller frees each with droid_free() and the array with free(). */
int store_droid_load_all(store *s, droid ***out, size_t *n, dms_error *err);

/* ---- events ---- */
int store_event_add(store *s, const char *droid_id, int64_t ts_ns, const char *from, const char *to,
                    const char *reason, dms_error *err);
typedef struct store_event {
    int64_t id;
    int64_t ts_ns;
    char *from; /* NULL: the droid's first state */
    char *to;
    char *reason;
} store_event;
/* The droid's events oldest first, with id > after_id, at most limit (<= 0: all). Caller frees with
 * store_events_free(). */
int store_events_list(store *s, const char *droid_id, int64_t after_id, int limit, store_event **out,
                      size_t *n, dms_error *err);
void store_events_free(store_event *v, size_t n); /* accepts NULL */

/* ---- builds ---- */
typedef enum build_status {
    BUILD_QUEUED = 0,
    BUILD_RUNNING = 1,
    BUILD_SUCCEEDED = 2,
    BUILD_FAILED = 3,
    BUILD_CANCELLED = 4,
    BUILD_SUPERSEDED = 5, /* a newer build of the same droid was queued before this one started */
} build_status;
const char *build_status_name(build_status s);

typedef struct store_build {
    int64_t id;
    char droid_id[DROID_ID_SIZE];
    build_status status;
    int attempt;      /* attempts made so far */
    char *branch;     /* NULL: the remote's default branch */
    char *commit_pin; /* NULL: the branch head */
    char *commit_sha; /* what was built */
    char *image_id;
    char *tag;
    char *reason; /* why it failed / was cancelled, or the pending retry's cause */
    int64_t created_ns;
    int64_t started_ns;
    int64_t finished_ns;
    int64_t next_try_ns; /* a queued build is not started before this */
} store_build;
void store_build_clear(store_build *b);

/* Queues a build; *id (may be NULL) gets its id. */
int store_build_insert(store *s, const char *droid_id, const char *branch, const char *commit_pin,
                       int64_t *id, dms_error *err);
int store_build_update(store *s, const store_build *b, dms_error *err);
/* Build id: 1 and *out filled, or 0 if there is none. */
int store_build_get(store *s, int64_t id, store_build *out, dms_error *err);

/* A queued build that may start now, as the build queue's fair pick sees it (build/queue.h). */
typedef struct store_build_cand {
    int64_t id;
    char droid_id[DROID_ID_SIZE];
    char user_id[DROID_USER_ID_MAX + 1];
    int64_t waiting_since_ns; /* queued at, or due at for a retry: how long it has waited */
} store_build_cand;
/* The queued builds due at now_ns, at most one per droid (its longest waiting) and at most per_user per user
 * (their longest waiting), longest waiting first (store/buildqueue.c). Caller frees *out with free().
 * *next_due_ns: the earliest due time of a queued build not due yet (0 if none). */
int store_build_candidates(store *s, int64_t now_ns, int per_user, store_build_cand **out, size_t *n,
                           int64_t *next_due_ns, dms_error *err);
/* The droid's build that is queued or running (the newest), 1 found / 0 none. */
int store_build_active(store *s, const char *droid_id, store_build *out, dms_error *err);
/* Marks the droid's queued builds superseded (before queuing a newer one). */
int store_builds_supersede(store *s, const char *droid_id, dms_error *err);
/* Marks the droid's queued builds cancelled with reason; *n (may be NULL) counts them. */
int store_builds_cancel_queued(store *s, const char *droid_id, const char *reason, int *n, dms_error *err);
/* At startup: builds left running by a crash are queued again; returns how many. */
int store_builds_requeue_running(store *s, int *n, dms_error *err);
/* The droid's builds newest first, with id < before_id (<= 0: from the newest), at most limit (<= 0: all).
 * Caller frees with store_builds_free(). */
int store_builds_page(store *s, const char *droid_id, int64_t before_id, int limit, store_build **out,
                      size_t *n, dms_error *err);
void store_builds_free(store_build *v, size_t n); /* accepts NULL */

/* ---- releases: one per successful build, numbered per droid ---- */
typedef struct store_release {
    char droid_id[DROID_ID_SIZE];
    int64_t seq;
    int64_t build_id;
    char *image_id;
    char *tag;
    char *commit_sha;
    char *env_json;
    int port;
    int64_t created_ns;
    bool image_removed;
    char *resources_json; /* the droid's resources when it was built (droid_resources_to_json) */
    int64_t image_bytes;  /* the image's size as the engine reported it after the build; 0 = unknown */
    char *compose_json;   /* a compose droid's release: its file and every service's image
                           * (build/composebuild.h); NULL for one image */
} store_release;
void store_release_clear(store_release *r);
void store_releases_free(store_release *r, size_t n);

int store_release_insert(store *s, const store_release *r, dms_error *err);
int store_release_get(store *s, const char *droid_id, int64_t seq, store_release *out, dms_error *err);
/* The droid's releases, newest first; caller frees with store_releases_free(). */
int store_releases_list(store *s, const char *droid_id, store_release **out, size_t *n, dms_error *err);
/* The same, a page: releases numbered below before_seq (<= 0: from the newest), at most limit (<= 0: all). */
int store_releases_page(store *s, const char *droid_id, int64_t before_seq, int limit, store_release **out,
                        size_t *n, dms_error *err);
int store_release_mark_removed(store *s, const char *droid_id, int64_t seq, dms_error *err);
/* The sizes of the images of every release of the user's droids that is still kept (image not removed). */
int store_user_image_bytes(store *s, const char *user_id, int64_t *out, dms_error *err);

/* ---- runs: every container execution of a droid (for logs of earlier runs and for cleanup) ---- */
typedef struct store_run {
    char exec_id[DMS_ID_MAX + 1];
    char droid_id[DROID_ID_SIZE];
    int64_t release;
    int64_t started_ns;
    int64_t ended_ns;
    char outcome[24];
    int exit_code;
    bool removed;     /* forgotten by the executor (logs gone) */
    char service[64]; /* a compose droid's service it runs; "" for a droid of one container */
} store_run;

int store_run_insert(store *s, const char *exec_id, const char *droid_id, int64_t release, int64_t started_ns,
                     dms_error *err);
/* The same, for a run of a compose droid's service. */
int store_run_insert_service(store *s, const char *exec_id, const char *droid_id, const char *service,
                             int64_t release, int64_t started_ns, dms_error *err);
int store_run_end(store *s, const char *exec_id, int64_t ended_ns, const char *outcome, int exit_code,
                  dms_error *err);
int store_run_mark_removed(store *s, const char *exec_id, dms_error *err);
/* Runs of a droid (removed ones left out), oldest first. Caller frees *out. */
int store_runs_list(store *s, const char *droid_id, store_run **out, size_t *n, dms_error *err);
/* Every run the executor may still hold (not removed), for reconciliation. Caller frees *out. */
int store_runs_all(store *s, store_run **out, size_t *n, dms_error *err);

/* ---- image garbage collection: removals that failed are retried until the engine agrees ---- */
int store_gc_add(store *s, const char *image, const char *droid_id, dms_error *err);
/* Images due at now_ns (caller frees with dmsu_strv_free); *next_due_ns: the earliest later one, or 0. */
int store_gc_due(store *s, int64_t now_ns, char ***images, int64_t *next_due_ns, dms_error *err);
int store_gc_done(store *s, const char *image, dms_error *err);
int store_gc_retry(store *s, const char *image, int64_t base_ms, int64_t max_ms, const char *error,
                   dms_error *err);

#endif
