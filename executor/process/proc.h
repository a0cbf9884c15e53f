/* executor/process/proc.h - private to the process backend: shared by the plugin (libdms-executor-process.so)
 * and its supervisor binary (dms-proc-shim). Nothing outside executor/process/ includes this.
 *
 * One execution = one directory <state_dir>/<execution id>/ holding everything about it, so that any process
 * (a restarted dmsd, dms-exec, a test's second executor object) can find it again without memory:
 * - owner.lock: flock held by the shim while it lives (dms_state_lock); the plugin holds the same open file
 *   description while it starts the shim, so the lock is never free before the result exists
 * - request.json: the request as given (job id, labels; for status and list)
 * - spec.json: what the shim must do: resolved argv, env, user, limits, cgroup dirs (written by the plugin)
 * - shim.json: written by the shim once the workload runs: pids and their /proc start times
 * - ctl: a FIFO doorbell, "cancel\n" or "kill\n"; the shim keeps it open for reading
 * - cancel: why the execution is being stopped ("user" / "timeout"); the first writer wins (link(2))
 * - log, log.1: the output capture (dms_logstore_*)
 * - result.json: the result, written atomically by whoever ends the execution
 * - work/: the default working directory of the workload
 * - shim.log: the shim's own diagnostics
 */
#ifndef DMS_PROC_H
#define DMS_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <dms/backend.h>
#include <jansson.h>

#define PROC_SHIM_NAME "dms-proc-shim"

/* File names inside an execution directory. */
#define PROC_REQUEST_FILE "request.json"
#define PROC_SPEC_FILE    "spec.json"
#define PROC_SHIM_FILE    "shim.json"
#define PROC_RESULT_FILE  "result.json"
#define PROC_CTL_FIFO     "ctl"
#define PROC_CANCEL_FILE  "cancel"
#define PROC_WORK_DIR     "work"
#define PROC_SHIM_LOG     "shim.log"

/* File descriptors the shim receives from the plugin (see process.c spawn_shim). */
#define PROC_SHIM_STATUS_FD 3
#define PROC_SHIM_LOCK_FD   4

/* The PATH a workload gets when its request sets none (Docker's default). */
#define PROC_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Small JSON files (request, spec, shim state) never get near this; a bigger one is not ours. */
#define PROC_STATE_FILE_MAX_BYTES (4 * 1024 * 1024)

/* Cgroup names: dms-proc@<executor id>@<execution id>, so cleanup can also find leftovers by prefix. '@' is
 * not allowed in ids, so executor "a" never matches the cgroups of executor "a.b". Probes use another prefix.
 */
#define PROC_CGROUP_PREFIX       "dms-proc@"
#define PROC_CGROUP_PROBE_PREFIX "dms-proc-probe."

/* ---- /proc ---- */

/* The start time of a process (field 22 of /proc/<pid>/stat, clock ticks since boot) and its state letter.
 * Returns 0, or -1 when there is no such process. Together with the pid it names a process uniquely: a
 * recycled pid has another start time. */
int proc_stat_read(pid_t pid, uint64_t *start_time, char *state);
/* True if pid is running (not a zombie) and still has start_time. */
bool proc_alive(pid_t pid, uint64_t start_time);

/* ---- cgroups ---- */

typedef enum proc_cg_ctrl {
    PROC_CG_MEMORY = 0,
    PROC_CG_PIDS = 1,
    PROC_CG_CPU = 2,
    PROC_CG__COUNT
} proc_cg_ctrl;

/* Where one controller can be used: the cgroup this process lives in, for that controller's hierarchy. A
 * child cgroup per execution is created under it (never above it: limits set on us by whoever started us
 * still apply). */
typedef struct proc_cg_base {
    int version;        /* 1 or 2; 0 = unusable here */
    char dir[PATH_MAX]; /* e.g. /sys/fs/cgroup/memory/some/path */
} proc_cg_base;

typedef struct proc_cgroups {
    proc_cg_base base[PROC_CG__COUNT];
} proc_cgroups;

const char *proc_cg_name(proc_cg_ctrl c);

/* Finds, for each controller, a base directory where this process may create child cgroups (tested by
 * creating and removing one). why (may be NULL, size why_len) receives a one-line summary for the log. */
void proc_cgroup_probe(proc_cgroups *out, char *why, size_t why_len);

/* Creates dir (a child cgroup) and writes one controller's limit into it. */
int proc_cgroup_setup(const char *dir, int version, proc_cg_ctrl c, int64_t value, dms_error *err);
/* Moves pid into the cgroup dir. */
int proc_cgroup_attach(const char *dir, pid_t pid, dms_error *err);
/* Sends sig to every process in the cgroup; returns how many were signalled (0 if none or no such dir). */
int proc_cgroup_signal(const char *dir, int sig);
/* Whether the kernel OOM-killed something in this memory cgroup (memory.events / memory.oom_control
 * oom_kill). */
bool proc_cgroup_oom_killed(const char *dir, int version);
/* Kills what is left in the cgroup and removes it, retrying briefly while the kernel lets the last tasks go.
 * Missing is fine. 0 or -errno. */
int proc_cgroup_remove(const char *dir);

/* ---- the plugin (process.c: create/start; spec.c: request -> spec.json; state.c: everything that reads an
 * execution's directory) ---- */

typedef struct proc_executor {
    char *id;
    const dms_host_services *host; /* borrowed from the registry, valid until destroy */
    char *state_dir;               /* absolute */
    char *shim_path;
    proc_cgroups cg; /* usable controllers; all version 0 with cgroups=off */
} proc_executor;

/* spec.c: checks what this backend cannot do (NOT_SUPPORTED or INVALID naming the field) and builds the
 * spec.json its shim executes for an execution whose directory will be `dir`. Creates nothing, so a refused
 * request leaves no trace. On success *out is a new reference (caller owns). */
int proc_build_spec(const proc_executor *p, const dms_exec_request *req, const char *dir, json_t **out,
                    dms_error *err);

/* <state_dir>/<id>; INVALID if it does not fit. */
int proc_exec_dir(const proc_executor *p, const char *execution_id, char *buf, size_t size, dms_error *err);
bool proc_dir_exists(const char *dir);
bool proc_file_exists(const char *dir, const char *name);

/* Writes a result for an execution that its shim will never finish (failed start, dead shim): ends the
 * capture so followers stop, adds the output excerpts, writes result.json. The caller holds the owner lock.
 */
int proc_write_result(const char *dir, dms_exec_result *res, dms_error *err);

/* If the execution has no result and nobody holds its owner lock (its shim died), takes the lock, kills what
 * is left of the workload (verified by pid and start time), and writes the result: CANCELLED/TIMED_OUT when a
 * cancel was asked for, else LOST. host may be NULL (no log line). 1 if it wrote a result, 0 if nothing to
 * do. */
int proc_reap_orphan(const char *dir, const dms_host_services *host, dms_error *err);

/* ---- reading and acting on one execution directory (state.c) ---- */

/* What the shim recorded once the workload ran. */
typedef struct proc_shim_state {
    pid_t shim_pid;
    uint64_t shim_start;
    pid_t pid; /* also the process group id */
    uint64_t start_time;
    int64_t started_at_ns;
} proc_shim_state;
/* Fills st from shim.json; false if the workload never ran (or the file is unreadable). */
bool proc_shim_state_read(const char *dir, proc_shim_state *st);
json_t *proc_read_json(const char *dir, const char *name); /* NULL if absent or not JSON; caller decrefs */
int proc_read_result(const char *dir, dms_exec_result *out, dms_error *err);
const char *proc_base_name(const char *dir); /* the execution id of a directory (borrowed) */
void proc_sleep_step(void);                  /* a short sleep for polling loops */
/* The dir of an existing execution; NOT_FOUND naming the id and the executor otherwise. */
int proc_existing_dir(const proc_executor *p, const char *id, char *dir, size_t size, dms_error *err);
/* Removes the execution's cgroups (listed in spec.json), killing what is left in them. */
void proc_remove_spec_cgroups(const char *dir);
/* Records why the execution is being stopped (DMS_CANCEL_*); the first reason wins. */
void proc_mark_cancel(const char *dir, int reason);
/* Rings the shim's doorbell with "cancel\n" or "kill\n"; nothing happens if no shim reads it. */
void proc_ring(const char *dir, const char *msg);
/* SIGKILL to the shim and the workload's group, each only if its pid still has its recorded start time. */
void proc_hard_kill(const char *dir);

/* ---- the ops (state.c: subscribe, cancel, log_stream; inventory.c: the rest) ---- */

int proc_op_subscribe(void *cookie, const char *execution_id, dms_waiter **out, dms_error *err);
int proc_op_cancel(void *cookie, const char *execution_id, dms_cancel_reason reason, int64_t grace_ms,
                   dms_error *err);
int proc_op_log_stream(void *cookie, const char *execution_id, const dms_log_options *opts,
                       dms_log_stream **out, dms_error *err);
int proc_op_cleanup(void *cookie, dms_cleanup_report *report, dms_error *err);
int proc_op_status(void *cookie, const char *execution_id, dms_exec_status *out, dms_error *err);
int proc_op_list(void *cookie, dms_exec_status_fn each, void *userdata, dms_error *err);
int proc_op_remove(void *cookie, const char *execution_id, dms_error *err);
int proc_op_recover(void *cookie, size_t *adopted, dms_error *err);

#endif
