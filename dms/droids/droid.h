/* droids/droid.h - the droid: what a user asked for (config), what dmsd wants (desired) and what runs
 * (actual), its validation, and its JSON form.
 *
 * A droid is plain data owned by whoever holds it: droid_free() releases it, droid_copy() duplicates it. The
 * store persists every field; the cache in core/ holds one copy per droid. Functions here do no I/O and are
 * thread-safe on distinct objects.
 */
#ifndef DMSD_DROIDS_DROID_H
#define DMSD_DROIDS_DROID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

#include "state.h"

/* ids are "d" + 12 hex characters (dmsu_random_id) */
#define DROID_ID_SIZE          16
#define DROID_NAME_MAX         63 /* a DNS label: the name becomes <name>.localhost */
#define DROID_USER_ID_MAX      128
#define DROID_REPO_MAX         1024
#define DROID_BRANCH_MAX       255
#define DROID_LANGUAGE_MAX     32
#define DROID_ENV_MAX_VARS     128
#define DROID_ENV_VALUE_MAX    8192
#define DROID_VOLUMES_MAX      8
#define DROID_VOLUME_NAME_MAX  32
#define DROID_MOUNT_PATH_MAX   255
#define DROID_DEFAULT_PORT     8080
#define DROID_COMPOSE_PATH_MAX 255 /* compose_file: a path relative to the repository's root */

/* What a droid asks for its container, each 0 when it leaves it to the operator's default (DMS_DROID_*);
 * the operator's ceilings are checked where the configuration is known (confine/). */
typedef struct droid_resources {
    int memory_mb;
    int cpu_millis;
    int pids;
} droid_resources;

typedef struct droid_volume {
    char *name;       /* user's name ([a-z0-9-]); the engine's volume is droid_volume_engine_name() */
    char *mount_path; /* absolute path inside the container */
} droid_volume;

typedef struct droid {
    /* identity and config (what the user asked for) */
    char id[DROID_ID_SIZE];
    char *user_id;
    char *name;
    char *repo;
    char *branch;   /* NULL until resolved: the remote's default branch is looked up by the builder */
    char *commit;   /* a pinned commit, or NULL for the branch's head */
    char *language; /* informational; NULL = not given */
    int port;       /* the port the app listens on inside its container ($PORT) */
    char *env_json; /* compact JSON object of strings, keys sorted: {"K":"V"} */
    droid_volume *volumes;
    size_t n_volumes;
    int build_timeout_s;       /* its builds' time limit; 0: the operator's default (build/buildopts.h) */
    droid_resources resources; /* limits asked for; a change restarts the droid like env */
    char *compose_file; /* the compose file named at create (relative to the repository's root), or NULL:
                         * compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml at the root
                         * makes a compose droid (build/composebuild.h) */

    /* state machine */
    droid_state state;
    char *reason;
    int64_t created_ns;
    int64_t updated_ns;

    /* desired: what dmsd is working towards (persisted, so a restart carries on) */
    bool want_running;
    int64_t want_release; /* release id to run; 0 = none built yet */
    int64_t config_gen;   /* bumped by a change of env/port: the run must be replaced */
    int64_t restart_gen;  /* bumped by a restart request */

    /* actual: what runs */
    char *run_id;        /* the current execution id, NULL if none */
    int64_t run_release; /* release, config_gen and restart_gen the current run was started with */
    int64_t run_config_gen;
    int64_t run_restart_gen;
    int host_port;       /* published port on 127.0.0.1 of the current run; 0 if none */
    int64_t run_seq;     /* counter behind execution ids <id>-r<release>-<seq> */
    int64_t release_seq; /* counter behind release numbers */
    int crash_count;     /* consecutive crashes of runs (reset once a run stays up) */
    int start_failures;  /* consecutive failed starts */
    int64_t retry_at_ns; /* when the next retry (crash backoff, start retry) is due; 0 = none */
    char *commit_sha;    /* the commit the current release was built from */
    char *run_addr;      /* "ip:port" of the current run on droid-net, what the router dials; NULL if none */

    /* compose droids: the services the runner keeps besides the routed one (run_id), as a JSON array
     * (run/services.h); NULL for a droid of one container */
    char *services_json;

    /* snooze (snooze/): a schedule, and whether it sleeps (no container; its route wakes it on a request) */
    char *snooze_json; /* canonical schedule (snooze/schedule.h), NULL = none */
    bool asleep; /* wanted running but asleep: the runner keeps no container and routes to the wake handler */
    int64_t woken_ns; /* last wake by a request or a start: a window that began earlier does not put it back
                       * to sleep before it has been idle for idle_timeout_s */

    /* deletion: hidden from users at once, removed by the runner, then purged from the store */
    bool deleting;
    bool keep_volumes;
} droid;

/* Newly allocated, zeroed droid (state pending). NULL on OOM. */
droid *droid_new(void);
void droid_free(droid *d); /* accepts NULL */
/* Deep copy; NULL on OOM. */
droid *droid_copy(const droid *d);

/* ---- validation (every failure: DMS_E_INVALID with err->field naming the field) ---- */

int droid_validate_name(const char *name, dms_error *err);
int droid_validate_repo(const char *repo, dms_error *err);
int droid_validate_branch(const char *branch, dms_error *err);
int droid_validate_commit(const char *commit, dms_error *err);
/* env must be a JSON object of strings with valid keys; *out (caller frees) is its canonical compact form. */
int droid_validate_env(json_t *env, int port, char **out, dms_error *err);
int droid_validate_port(json_t *port, int *out, dms_error *err);
/* A compose file's path: relative, 1-DROID_COMPOSE_PATH_MAX characters of [A-Za-z0-9._/-], no empty, "." or
 * ".." component. INVALID naming compose_file. */
int droid_validate_compose_path(const char *path, dms_error *err);

/* Fills a new droid's config from a create body:
 *   {"name", "repo", "branch"?, "commit"?, "language"?, "port"?, "env"?: {k: v}, "volumes"?:
 * [{"name","mount_path"}], "resources"?: {"memory_mb"?, "cpu_millis"?, "pids"?}, "compose_file"?} Unknown
 * keys are refused. Port: "port", else env.PORT, else DROID_DEFAULT_PORT; both given must agree. Leaves id,
 * user and state to the caller. */
int droid_parse_create(json_t *body, droid *d, dms_error *err);

/* A PATCH: each field is set only if present in the body. */
typedef struct droid_patch {
    char *name;
    bool has_port;
    int port;
    char *env_json;
    bool has_branch;
    char *branch;
    bool has_commit;
    char *commit;           /* NULL with has_commit: unpin (follow the branch head) */
    bool has_build_timeout; /* set by the route from build_opts_take() (build/buildopts.h), not parsed here */
    int build_timeout_s;
    bool has_resources;
    droid_resources resources; /* replaces the whole set; a key left out goes back to the default */
} droid_patch;

/* Parses {"name"?, "port"?, "env"?, "branch"?, "commit"?: "sha" | null, "resources"?: {...} | null}; unknown
 * keys are refused; an empty body is refused. cur is the droid as it is (env.PORT vs port is checked against
 * the result). */
int droid_parse_patch(json_t *body, const droid *cur, droid_patch *p, dms_error *err);
void droid_patch_clear(droid_patch *p);

/* resources: an object of positive integers under known keys (memory_mb, cpu_millis, pids), each optional or
 * null; null or {} is "all defaults". INVALID naming resources.<key>. Ranges are confine/'s to check. */
int droid_parse_resources(json_t *o, droid_resources *out, dms_error *err);
/* As stored (and kept in releases): {"memory_mb":512} with the keys that are set. Caller frees; NULL on OOM.
 */
char *droid_resources_to_json(const droid_resources *r);
int droid_resources_from_json(const char *json, droid_resources *out, dms_error *err);

/* Volumes as stored: JSON array [{"name","mount_path"}]. */
char *droid_volumes_to_json(const droid *d); /* caller frees; NULL on OOM */
int droid_volumes_from_json(droid *d, const char *json, dms_error *err);
/* The engine's volume name of a droid's volume: "<droid id>-<name>" (unique on the host). */
int droid_volume_engine_name(const droid *d, size_t i, char *buf, size_t size);

/* The public JSON form (what the API returns). Caller owns the result; NULL on OOM. */
json_t *droid_to_json(const droid *d);

/* The env as a NULL-terminated "K=V" vector with PORT=<port> added (unless env sets PORT itself). Caller
 * frees with dmsu_strv_free(). */
int droid_env_vector(const droid *d, char ***out, dms_error *err);

#endif
