/* jobs/job.h - a build job (koalaCI-compatible): what was asked (project, deployment, repo, branch, build
 * command, package manager, dist directory), its state machine, its validation and its JSON form, and the
 * shell steps it runs in the builder image.
 *
 * A job is plain data owned by whoever holds it (job_clear() releases its strings). Nothing here does I/O
 * but job_parse_create's check of a local project_repo_url against DMS_LOCAL_REPO_ROOTS (build/git.h); every
 * function is thread-safe on distinct objects.
 */
#ifndef DMSD_JOBS_JOB_H
#define DMSD_JOBS_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

/* ids are "j" + 12 hex characters (dmsu_random_id) */
#define JOB_ID_SIZE 16
/* A build job's id (its step executions carry it as their job id); a droid's id is plain hex. */
#define JOB_ID_IS(id)         ((id) && (id)[0] == 'j')
#define JOB_REF_ID_MAX        64 /* project_id, deployment_id: [A-Za-z0-9][A-Za-z0-9_.-]* */
#define JOB_BUILD_COMMAND_MAX 4096
#define JOB_DIST_DIR_MAX      255
#define JOB_REASON_MAX        512

/* queued -> running -> succeeded | failed | cancelled; queued -> cancelled; running -> queued (a dmsd
 * restart interrupted it: it starts again). The three ends are final. */
typedef enum job_status {
    JOB_QUEUED = 0,
    JOB_RUNNING = 1,
    JOB_SUCCEEDED = 2,
    JOB_FAILED = 3,
    JOB_CANCELLED = 4,
} job_status;

const char *job_status_name(job_status s);
int job_status_parse(const char *s); /* -1 if unknown */
bool job_status_final(job_status s);
/* Whether the machine allows from -> to. */
bool job_can_transition(job_status from, job_status to);

/* What installs the dependencies (and which builder image runs the steps). */
typedef enum job_pm {
    JOB_PM_NONE = 0,
    JOB_PM_NPM = 1,
    JOB_PM_YARN = 2,
    JOB_PM_PNPM = 3,
    JOB_PM_PIP = 4,
} job_pm;

const char *job_pm_name(job_pm pm);
int job_pm_parse(const char *s); /* -1 if unknown; "" is none */

/* The steps a job goes through, in order; install is skipped for JOB_PM_NONE. */
typedef enum job_step {
    JOB_STEP_CLONE = 0,
    JOB_STEP_INSTALL = 1,
    JOB_STEP_BUILD = 2,
    JOB_STEP_PACKAGE = 3,
} job_step;
const char *job_step_name(job_step s);

typedef struct job {
    char id[JOB_ID_SIZE];
    char *user_id;
    char *project_id;
    char *deployment_id;
    char *branch;
    char *repo_url;
    char *build_command;
    job_pm pm;
    char *dist_dir; /* relative to the repository's root; "." is the whole tree */

    job_status status;
    char *step;   /* the step running or the last one run; NULL before the first */
    char *reason; /* why it failed or was cancelled */
    bool cancel_requested;
    int attempt; /* starts so far (a restart of dmsd starts an interrupted job again) */
    char *commit_sha;
    char *cache_volume;
    bool cache_warm;        /* the install found the project's cache filled by an earlier job */
    int64_t artifact_bytes; /* -1: none */
    int64_t install_ms;     /* -1: not run */
    int64_t build_ms;       /* -1: not run */
    int exit_code;          /* of the failing step; -1 if none */
    int64_t created_ns;
    int64_t started_ns;
    int64_t finished_ns;
} job;

void job_init(job *j);  /* zero, with the -1 defaults */
void job_clear(job *j); /* frees the strings and re-inits; accepts a zeroed job */

/* ---- validation (every failure: DMS_E_INVALID with err->field naming the payload's key) ---- */

/* [A-Za-z0-9][A-Za-z0-9_.-]*, at most JOB_REF_ID_MAX: project and deployment ids go into names and labels. */
int job_validate_ref_id(const char *v, const char *field, dms_error *err);
/* A relative path inside the repository: no leading '/', no "..", no control characters. */
int job_validate_dist_dir(const char *v, dms_error *err);

/* Fills a new job from the body of POST /job/create:
 *   {"project_id", "deployment_id", "project_branch", "project_repo_url", "project_build_command",
 *    "project_package_manager", "project_dist_directory"}
 * every key required and a string; unknown keys are refused. Leaves id, user and times to the caller. */
int job_parse_create(json_t *body, job *j, dms_error *err);

/* The public JSON form (GET /job/:id). Caller owns; NULL on OOM. */
json_t *job_to_json(const job *j);

/* The engine volume that keeps the dependency cache of (user, project): "<executor id>-cache-<16 hex of
 * sha256(user NUL project)>", so that two users' projects of the same name never share a cache. */
int job_cache_volume_name(const char *executor_id, const char *user_id, const char *project_id, char *buf,
                          size_t size, dms_error *err);

/* ---- the steps' shell scripts (run by sh -c in the builder image, cwd /workspace) ---- */

#define JOB_WORKSPACE  "/workspace" /* the clone, bind-mounted */
#define JOB_CACHE_DIR  "/cache"     /* the project's cache volume */
#define JOB_OUT_DIR    "/out"       /* where the package step writes artifact.tar (bind-mounted) */
#define JOB_CACHE_MARK "/cache/.dms-cache"
#define JOB_PNPM_SPEC  "pnpm@8" /* installed with npm into the cache volume the first time it is needed */
/* Exit codes of our own checks inside the steps (not the user's commands'): */
#define JOB_EXIT_NO_MANIFEST 64 /* the package manager's file (package.json, requirements.txt) is missing */
#define JOB_EXIT_NO_DIST     65 /* the dist directory does not exist after the build */
#define JOB_EXIT_DIST_OUT    66 /* the dist directory resolves outside the repository (a symlink) */
#define JOB_EXIT_TOO_BIG     67 /* the artifact grew past DMS_JOB_ARTIFACT_MAX_MB (tar got SIGXFSZ) */

/* Every step runs `JOB_SHELL -c <script>`: a name would be looked up in the step's PATH, whose first entry
 * the build controls (.venv/bin, the cache's node_modules/.bin). */
#define JOB_SHELL "/bin/sh"
/* The package step's whole PATH: the builder image's own directories only (a container's root filesystem
 * is fresh from the image; only /workspace and /cache outlive a step). */
#define JOB_FIXED_PATH "/usr/sbin:/usr/bin:/sbin:/bin"

/* The install script of pm (NULL for none). Static string. */
const char *job_install_script(job_pm pm);
/* The package step's script: packs $DMS_DIST_DIR (which must resolve inside the workspace) with the image's
 * own tar into JOB_OUT_DIR/artifact.tar, at most $DMS_ARTIFACT_MAX_MB (ulimit -f). Static string. */
const char *job_package_script(void);
/* Environment of a step of j: "K=V" vector, caller frees with dmsu_strv_free(). NULL on OOM. The package step
 * gets JOB_FIXED_PATH and DMS_ARTIFACT_MAX_MB=artifact_max_mb; the others the package manager's PATH. */
char **job_step_env(const job *j, job_step step, int artifact_max_mb);

/* ---- the fair queue ---- */

/* A user with queued jobs, as the queue sees them when a worker is free. */
typedef struct job_queue_user {
    const char *user_id;
    int running;              /* the user's jobs running now */
    int64_t last_started_ns;  /* when the user's latest job started (0: none ever did) */
    int64_t waiting_since_ns; /* created_ns of the user's oldest queued job */
} job_queue_user;

/* Whose oldest queued job runs next: of the users with fewer than max_running jobs running, the one with the
 * fewest running; a tie goes to the one who has waited longest for a worker, i.e. whose latest job started
 * longest ago (never: first), then whose oldest queued job is oldest, then the smaller user id (a total
 * order: the pick does not depend on the order of users). So with one worker the users take turns, and a
 * user's long queue never holds a later user back for more than one job. -1 when every user is at
 * max_running. */
int job_fair_pick(const job_queue_user *users, size_t n, int max_running);

#endif
