/* executor/process/shim.h - private to dms-proc-shim: the spec it executes and the workload's side of the
 * fork. Split from shim.c by responsibility: shim_spec.c reads spec.json, shim_setup.c prepares and forks,
 * shim_child.c runs in the forked workload, shim.c supervises. */
#ifndef DMS_PROC_SHIM_H
#define DMS_PROC_SHIM_H

#include "proc.h"

/* Where the workload's preparation failed, reported over a CLOEXEC pipe (EOF there means exec worked). */
enum proc_child_stage {
    PROC_STAGE_SETUP = 1,
    PROC_STAGE_RLIMIT,
    PROC_STAGE_NETNS,
    PROC_STAGE_CHDIR,
    PROC_STAGE_USER,
    PROC_STAGE_EXEC,
    PROC_STAGE_CAPS,
    PROC_STAGE_NNP
};

typedef struct proc_exec_failure {
    int stage;
    int err;
} proc_exec_failure;

typedef struct proc_cg_item {
    char *dir;
    int version;
    proc_cg_ctrl ctrl;
    int64_t value;
} proc_cg_item;

typedef struct proc_spec {
    char *execution_id;
    char **argv;
    char **env;
    char *working_dir;
    char *program_field;
    int64_t uid, gid; /* uid < 0: keep ours */
    gid_t *groups;
    size_t n_groups;
    int64_t rlimit_as, rlimit_nproc;
    bool netns;
    bool no_new_privs; /* PR_SET_NO_NEW_PRIVS before exec */
    int64_t cap_keep;  /* capabilities kept (bit n = capability n); < 0: the host's, untouched */
    proc_cg_item *cgroups;
    size_t n_cgroups;
    int64_t timeout_ms, stop_grace_ms, result_output_bytes, log_file_bytes;
} proc_spec;

/* The last cap bytes of one stream and how many there were in all (shim_tail.c). */
typedef struct proc_tail {
    char *data;
    size_t cap, start, len;
    uint64_t total;
} proc_tail;
int proc_tail_init(proc_tail *t, size_t cap); /* 0, or -1 on OOM */
void proc_tail_free(proc_tail *t);
void proc_tail_append(proc_tail *t, const char *data, size_t len);
/* Sets the result's excerpt of stream (1 stdout, 2 stderr); truncated when more was written than kept. */
int proc_tail_to_result(const proc_tail *t, dms_exec_result *res, int stream);

/* Reads <dir>/spec.json (written by the plugin, spec.c proc_build_spec). proc_spec_free frees what it filled,
 * also after a failure. */
int proc_spec_load(const char *dir, proc_spec *sp, dms_error *err);
void proc_spec_free(proc_spec *sp);

/* Runs in the forked workload: its own session, waits for the go byte on go_r (the shim moves it into its
 * cgroups first), sets up stdio, limits, netns, working dir and user, then execs argv[0] searched in the
 * workload's PATH. On failure writes a proc_exec_failure to fail_w and exits 127. */
__attribute__((noreturn)) void proc_child_run(const proc_spec *sp, int go_r, int go_w, int fail_w, int out_w,
                                              int err_w);
/* The error a failed preparation stands for: the field at fault and a message naming the program or path. */
void proc_child_describe(const proc_spec *sp, const proc_exec_failure *f, dms_error *e);

/* The supervisor's state (shim.c, shim_setup.c): one per dms-proc-shim process. */
typedef struct shim {
    const char *dir;
    proc_spec sp;
    dms_logstore_writer *log;
    proc_tail tail[3]; /* per stream (1 stdout, 2 stderr): the result's excerpts */
    int status_fd;
    pid_t child;
    uint64_t child_start;
    int out_fd, err_fd, sfd, ctl_fd;
    bool child_done;
    int wstatus;
    int64_t started_ns, finished_ns;
    int stop_reason;                                     /* 0, DMS_CANCEL_USER or DMS_CANCEL_TIMEOUT */
    bool killed;                                         /* SIGKILL sent */
    int64_t run_deadline, kill_deadline, drain_deadline; /* monotonic ms, -1: none */
} shim;

/* shim.c: a line of shim.log (stderr), tagged with the execution once known. */
void shim_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void shim_log_set_exec(const char *execution_id);
/* shim.c: the workload never ran; the result says why (outcome FAILED, or the one given) and the starter
 * hears the same. Returns 1. */
int shim_fail_start_as(shim *s, const dms_error *e, dms_exec_outcome outcome);
int shim_fail_start(shim *s, const dms_error *e);

/* shim_setup.c: everything before the fork (spec, capture, excerpt rings, signals, ctl FIFO, cgroups, a
 * cancel that came first); then the fork, the move into the cgroups and the exec handshake. Each returns 0,
 * or 1 once shim_fail_start has reported and written the result. */
int shim_prepare_run(shim *s);
int shim_spawn_workload(shim *s);
/* Writes shim.json: the supervisor's and the workload's pid and start time, and when it started. */
int shim_write_state(shim *s, dms_error *err);

#endif
