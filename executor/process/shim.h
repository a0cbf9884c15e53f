/* executor/process/shim.h - private to dms-proc-shim: the spec it executes and the workload's side of the
 * fork. Split from shim.c by responsibility: shim_spec.c reads spec.json, shim_child.c runs in the forked
 * workload, shim.c supervises. */
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

#endif
