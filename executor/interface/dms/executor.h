/* dms/executor.h - the public executor API: load backends, run executions through them.
 *
 *   dms_registry *reg;  dms_registry_open(&reg, NULL, &err);        // plugin dir from DMS_PLUGIN_DIR or
 * defaults dms_executor *ex;   dms_executor_open(&ex, reg, "docker", "my-exec", NULL, &err);
 *   dms_executor_start(ex, &req, &err);
 *   dms_exec_result res = {0};
 *   dms_executor_wait(ex, "e1", -1, &res, &err);                   // or: dms_executor_run(ex, &req, &res,
 * &err) dms_exec_result_clear(&res); dms_executor_close(ex);  dms_registry_close(reg);
 *
 * Threads: every dms_executor_* function is thread-safe and may be called concurrently on one executor
 * (start from one thread while another waits or cancels). A dms_waiter or dms_log_stream is used by one
 * thread at a time. dms_registry_open/close are not thread-safe against other calls on the same registry.
 *
 * Process setup: the host calls curl_global_init() (or dms_global_init()) once before any thread starts.
 */
#ifndef DMS_EXECUTOR_H
#define DMS_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>
#include <dms/request.h>
#include <dms/result.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct dms_registry dms_registry;
typedef struct dms_executor dms_executor;
typedef struct dms_waiter dms_waiter;
typedef struct dms_log_stream dms_log_stream;
typedef struct dms_cancel_token dms_cancel_token;

/* ---- process-wide ---- */

/* Initialises libcurl once for the process (idempotent). Call from main() before starting threads. */
int dms_global_init(dms_error *err);
void dms_global_cleanup(void);

/* ---- logging: the host's logger, handed to plugins at create ---- */

typedef enum dms_log_level {
    DMS_LOG_ERROR = 0,
    DMS_LOG_WARN = 1,
    DMS_LOG_INFO = 2,
    DMS_LOG_DEBUG = 3,
} dms_log_level;

/* msg is one line of key=value fields and text, without a trailing newline. */
typedef void (*dms_log_fn)(void *ctx, dms_log_level level, const char *msg);

/* The default logger: "ts level msg" lines on stderr, level from DMS_LOG_LEVEL (error|warn|info|debug;
 * default warn). Thread-safe. */
void dms_log_stderr(void *ctx, dms_log_level level, const char *msg);

/* ---- registry: finds and loads backend plugins ---- */

/* Opens a registry over a plugin directory. plugin_dir NULL: $DMS_PLUGIN_DIR, else the build's plugin dir,
 * else the installed one (PREFIX/lib/dms/plugins); the first that exists. Nothing is loaded yet.
 * Caller owns *out; close with dms_registry_close() after every executor of it is closed. */
int dms_registry_open(dms_registry **out, const char *plugin_dir, dms_error *err);
void dms_registry_close(dms_registry *reg);

/* The directory searched (borrowed, valid until close). */
const char *dms_registry_dir(const dms_registry *reg);

typedef struct dms_backend_info {
    char name[64];         /* "docker" */
    char path[4096];       /* the plugin file */
    char description[160]; /* from the plugin, or why it could not be loaded */
    uint32_t abi_version;  /* 0 if it could not be loaded */
    bool loadable;
} dms_backend_info;

/* Lists the plugins found (files libdms-executor-<name>.so), loading each to read its table.
 * Caller owns *out (an array of *n entries); free() it. */
int dms_registry_list(dms_registry *reg, dms_backend_info **out, size_t *n, dms_error *err);

/* ---- executors ---- */

typedef struct dms_executor_config {
    const char *state_dir; /* where execution state and captured logs live; NULL: see below */
    dms_log_fn log;        /* NULL: dms_log_stderr */
    void *log_ctx;
    char *const *options; /* backend options, "key=value", NULL-terminated (docker: "host=unix:///...") */
} dms_executor_config;

/* Default state dir: $DMS_STATE_DIR, else $DMS_DATA_DIR/exec, else /var/lib/dms/exec as root, else
 * $XDG_STATE_HOME/dms/exec (or ~/.local/state/dms/exec). The executor keeps <state>/<backend>/<id>/ there. */

/* Opens the executor `executor_id` of `backend`, loading the plugin if needed. Within one registry there is
 * one executor object per (backend, id): a second open returns the same object with a reference added, so
 * that a host holds a singleton. Fails with UNAVAILABLE when the backend cannot run work here and says why
 * (which socket). cfg may be NULL. Caller owns *out; close with dms_executor_close(). */
int dms_executor_open(dms_executor **out, dms_registry *reg, const char *backend, const char *executor_id,
                      const dms_executor_config *cfg, dms_error *err);
/* Drops a reference; the last one destroys the backend's object (running jobs keep running). Accepts NULL. */
void dms_executor_close(dms_executor *ex);

const char *dms_executor_backend(const dms_executor *ex); /* borrowed */
const char *dms_executor_id(const dms_executor *ex);      /* borrowed */

/* True if the backend can run work now; if not, why says why. Bounded in time (a few seconds at most). */
bool dms_executor_is_installed(dms_executor *ex, dms_error *why);

/* Validates req and starts it; returns once the workload runs (or fails to).
 * Errors: INVALID (nothing created), ALREADY_STARTED, ALREADY_COMPLETE, IMAGE, START_FAILED, ENGINE,
 * CANCELLED (cancelled during preparation). A start that fails after validation still ends the execution with
 * a result (outcome FAILED), so waiters learn why and the id is not run twice. */
int dms_executor_start(dms_executor *ex, const dms_exec_request *req, dms_error *err);

/* Waits until the execution ends, at most timeout_ms (< 0: no limit), and copies the result into *out (caller
 * clears it with dms_exec_result_clear()). TIMEOUT leaves the job running. NOT_FOUND at once for an unknown
 * id. Any number of threads may wait for one execution; each gets the same result. */
int dms_executor_wait(dms_executor *ex, const char *execution_id, int64_t timeout_ms, dms_exec_result *out,
                      dms_error *err);

/* Pollable waiting: a waiter's fd becomes readable (POLLIN) once the result is available; then
 * dms_waiter_result() copies it without blocking. Caller owns *out; free with dms_waiter_free(). */
int dms_executor_waiter(dms_executor *ex, const char *execution_id, dms_waiter **out, dms_error *err);
int dms_waiter_fd(const dms_waiter *w);
/* 0 and *out filled when ready; -DMS_E_TIMEOUT (with timeout_ms 0: "not yet"). */
int dms_waiter_result(dms_waiter *w, int64_t timeout_ms, dms_exec_result *out, dms_error *err);
void dms_waiter_free(dms_waiter *w);

/* Stops an execution: SIGTERM, then SIGKILL after its grace period; returns once it has ended. Idempotent
 * while it stops. Cancel during preparation aborts the pull/create and creates nothing. Errors: NOT_FOUND,
 * ALREADY_COMPLETE (it had already finished; harmless). */
int dms_executor_cancel(dms_executor *ex, const char *execution_id, dms_error *err);

/* dms_executor_cancel with a grace period of its own: 0 kills at once (SIGKILL), < 0 is the execution's
 * stop_grace_ms. For "restart now" and for hosts that know better than the request. */
int dms_executor_cancel_grace(dms_executor *ex, const char *execution_id, int64_t grace_ms, dms_error *err);

/* Opens a stream of the execution's output (history per opts, then live frames with follow until it ends).
 * Works after the container is gone: output is served from the executor's own capture files.
 * opts may be NULL (all history, no follow). Caller owns *out; free with dms_log_stream_free(). */
int dms_executor_log_stream(dms_executor *ex, const char *execution_id, const dms_log_options *opts,
                            dms_log_stream **out, dms_error *err);
/* Next frame. Returns 1 with *frame filled (data borrowed until the next call), 0 at the end of the stream,
 * -DMS_E_TIMEOUT if nothing came within timeout_ms (< 0: block), or another error. */
int dms_log_stream_next(dms_log_stream *s, int64_t timeout_ms, dms_log_frame *frame, dms_error *err);
/* Readable when dms_log_stream_next() may have something (spurious wakeups are possible). */
int dms_log_stream_fd(const dms_log_stream *s);
void dms_log_stream_free(dms_log_stream *s);

/* start + wait. A job that ran and failed is a successful run (0) whose result says so; the run timeout of
 * the request (timeout_ms, not counting pull time) ends it as TIMED_OUT. */
int dms_executor_run(dms_executor *ex, const dms_exec_request *req, dms_exec_result *out, dms_error *err);

/* Removes every resource carrying this executor's labels (containers running or not, networks, volumes) and
 * its execution state. Carries on past failures; report counts what was removed. Idempotent. report may be
 * NULL. */
int dms_executor_cleanup(dms_executor *ex, dms_cleanup_report *report, dms_error *err);

/* Optional operations: NOT_SUPPORTED when the backend lacks them. */

/* Where one execution stands. */
int dms_executor_status(dms_executor *ex, const char *execution_id, dms_exec_status *out, dms_error *err);
/* Every execution this executor knows (live and finished, found through labels and state, not memory alone),
 * sorted by execution id. Caller owns *out (array of *n); free() it. */
int dms_executor_list(dms_executor *ex, dms_exec_status **out, size_t *n, dms_error *err);
/* Forgets a finished execution: removes its container (if kept) and its state and logs. Running: CONFLICT. */
int dms_executor_remove(dms_executor *ex, const char *execution_id, dms_error *err);
/* Re-adopts what this executor id left behind (after a restart): running executions are tracked again and
 * finished ones get their real result, never a second run. *adopted (may be NULL) counts them. */
int dms_executor_recover(dms_executor *ex, size_t *adopted, dms_error *err);

/* ---- builds (optional) ---- */

/* The build context is a tree the user controls: the backend never follows a symlink in it (they are sent as
 * symlinks) and reads the Dockerfile beneath context_dir only, refusing one that is a symlink. A host that
 * has the Dockerfile's text itself (generated, or read and checked against its policy) passes it in
 * dockerfile_text: the backend then builds exactly that text, which it adds to the context under a reserved
 * name of its own that no file of the context can take, and never reads a Dockerfile from context_dir. */
typedef struct dms_build_request {
    const char *build_id;    /* identifier (labels, logs) */
    const char *job_id;      /* identifier, or NULL */
    const char *context_dir; /* directory sent as the build context */
    const char
        *dockerfile; /* path relative to context_dir; NULL = "Dockerfile"; unused with dockerfile_text */
    const char *tag; /* image reference to tag the result with */
    char *const *build_args; /* "KEY=VALUE", or NULL */
    char *const *labels; /* extra "key=value" image labels, or NULL; io.dms.* keys are the backend's own */
    bool no_cache;
    /* Limits of every step's container (a RUN that exceeds memory_bytes is killed and the build fails).
     * docker: the /build query's memory and memswap (no swap beyond memory), cpuperiod and cpuquota. A
     * backend that cannot enforce a limit it is given refuses the build with NOT_SUPPORTED naming the field.
     */
    int64_t memory_bytes;        /* 0 = unlimited; else >= DMS_MEMORY_MIN_BYTES */
    int64_t cpu_millis;          /* 1000 = one core; 0 = unlimited */
    const char *dockerfile_text; /* the Dockerfile itself (NUL-terminated; borrowed for the call), or NULL */
    const char *target; /* appended in ABI 7: the stage of a multi-stage Dockerfile to build (1-128 characters
                         * of [A-Za-z0-9._-]); NULL = the last. Backends without stages refuse it
                         * (NOT_SUPPORTED, "target") */
} dms_build_request;

typedef struct dms_build_result {
    /* The built image ("sha256:..."). When the build failed or was cancelled: empty, or an untagged image of
     * one of its steps that the backend could not remove yet (the engine still used it), which the host
     * removes later with dms_executor_remove_image. */
    char image_id[80];
} dms_build_result;

/* Called for each line of build output (stream 1: progress, 2: error text), from the building thread. */
typedef void (*dms_build_output_fn)(void *userdata, dms_stream_type stream, const char *line, size_t len);

/* Builds an image. BUILD_FAILED when the user's input failed (a Dockerfile step, no Dockerfile; not
 * retryable), ENGINE/UNAVAILABLE when we did (retryable), CANCELLED when cancel fired (the build is stopped
 * at the engine). cancel may be NULL. */
int dms_executor_build(dms_executor *ex, const dms_build_request *req, dms_build_output_fn out,
                       void *userdata, dms_cancel_token *cancel, dms_build_result *result, dms_error *err);

/* Removes an image this executor built (by reference or id). NOT_OURS for an image without its labels (left
 * alone), CONFLICT when the engine refuses because a container uses it. */
int dms_executor_remove_image(dms_executor *ex, const char *image, dms_error *err);

typedef struct dms_image_info {
    bool present;       /* the engine has it */
    bool ours;          /* it carries this executor's labels (built by it) */
    char id[80];        /* "sha256:..." when present */
    int64_t size_bytes; /* its size as the engine reports it (Docker: Size, its base layers included) */
} dms_image_info;

/* Whether an image is present (no pull is attempted). 0 with out->present false when it is not. */
int dms_executor_image_info(dms_executor *ex, const char *image, dms_image_info *out, dms_error *err);

/* Removes a named volume this executor created (it carries its labels). NOT_FOUND when there is none,
 * NOT_OURS for someone else's, CONFLICT while a container uses it. */
int dms_executor_remove_volume(dms_executor *ex, const char *name, dms_error *err);

/* Removes a named network this executor created (made on first use by an execution with network mode named).
 * NOT_FOUND when there is none, NOT_OURS for someone else's, CONFLICT while a running container is attached.
 * An execution that starts on it meanwhile makes it again (Docker: a container that is only created does not
 * keep its network). */
int dms_executor_remove_network(dms_executor *ex, const char *name, dms_error *err);

/* ---- cancel tokens: cancel a blocking call from another thread ---- */
int dms_cancel_token_new(dms_cancel_token **out, dms_error *err);
void dms_cancel_token_cancel(dms_cancel_token *t);          /* thread-safe, idempotent */
bool dms_cancel_token_cancelled(const dms_cancel_token *t); /* thread-safe */
int dms_cancel_token_fd(const dms_cancel_token *t);         /* readable once cancelled */
void dms_cancel_token_free(dms_cancel_token *t);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
