/* cli/exec_cli.h - what the files of dms-exec share: its global options, errors and usage, the parsers of
 * sizes and durations, opening the executor (and falling back to the process backend), and printing a result;
 * and the commands, one file per group. A tool, not a library: die_usage and the executor openers exit the
 * process on a usage error or a failure to open, as a command line tool does. */
#ifndef DMS_EXEC_CLI_H
#define DMS_EXEC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <dms/executor.h>

#define EXIT_USAGE         2
#define EXIT_DMS_ERROR     125 /* like docker run: the tool failed, not the workload */
#define EXIT_CANNOT_RUN    126
#define EXIT_NOT_FOUND_CMD 127
#define EXIT_TIMED_OUT     124 /* like timeout(1) */
#define EXIT_SIGNAL_BASE   128
#define MAX_LIST           256

typedef struct global_opts {
    const char *backend;
    const char *executor_id;
    const char *state_dir;
    const char *plugin_dir;
    bool json;
    bool backend_chosen; /* -x or DMS_EXECUTOR given: never fall back */
    char *backend_opts[MAX_LIST];
    size_t n_backend_opts;
} global_opts;

/* The global options (before the command), set by main from argv and the environment. */
extern global_opts gopt;

/* ---- errors and usage (exec_cli.c) ---- */

/* "dms-exec: <message>" and a pointer to --help on stderr, then exit 2. */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints err (JSON on stdout with --json, else one line on stderr); returns EXIT_DMS_ERROR. */
int fail(const dms_error *err);
/* The execution id argument at optind, or die_usage. Borrowed from argv. */
const char *need_exec_id(int argc, char **argv, const char *cmd);
/* A --help or -h anywhere in argv prints usage and exits 0; else returns 0. */
int simple_help(int argc, char **argv, const char *usage);

/* ---- parsing helpers ---- */

/* "64m", "1g", "512k", "2GiB", "100" (bytes) -> bytes; -1 if it is not a size. */
int64_t parse_size(const char *s);
/* "500ms", "10s", "2m", "1h", "3" (seconds) -> ms; -1 if it is not a duration. */
int64_t parse_duration(const char *s);
/* prefix + 12 random hex digits into buf (n bytes). */
void gen_id(char *buf, size_t n, const char *prefix);

/* ---- the executor ---- */

/* The backend gopt names, opened with gopt's id, state dir and options; exits on failure. Close with
 * close_executor (which closes the registry too). */
dms_executor *open_executor(void);
/* open_executor for wait, logs, cancel, status and rm of exec_id: with no backend chosen and no Docker
 * engine, the process backend when exec_id is one of its executions. */
dms_executor *open_executor_for(const char *exec_id);
/* Before run and start: with no backend chosen, no Docker engine and no image, use the process backend. */
void maybe_fall_back(const dms_exec_request *req);
void close_executor(dms_executor *ex);
/* gopt's -o options as the NULL-terminated vector dms_executor_config takes. Static storage. */
char **backend_options(void);

/* ---- results ---- */

/* The exit code a result maps to (the workload's own, 128+N for a signal, 124 timed out ...). */
int result_exit_code(const dms_exec_result *r);
/* One line on stderr (or the result as JSON on stdout with --json); with_output: its captured output too. */
void print_result(const char *exec_id, const dms_exec_result *r, bool with_output);
/* fwrite and fflush. */
void write_all(FILE *f, const char *data, size_t len);

/* ---- the commands: argv[0] is the command's name; each returns the process's exit code ---- */

/* exec_run.c: start a workload */
int cmd_run(int argc, char **argv);
int cmd_start(int argc, char **argv);
/* exec_query.c: one execution, or the list */
int cmd_wait(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);
/* exec_admin.c: the executor and the backends */
int cmd_cleanup(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_is_installed(int argc, char **argv);
int cmd_backends(int argc, char **argv);
int cmd_build(int argc, char **argv);

#endif
