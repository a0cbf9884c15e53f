/* cli/exec_cli.c - what dms-exec's commands share (see exec_cli.h). */
#include "exec_cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "util.h"

global_opts gopt = {.backend = NULL, .executor_id = NULL};

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dms-exec: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see dms-exec --help)\n");
    va_end(ap);
    exit(EXIT_USAGE);
}

/* Prints an error the way scripts and tests can rely on: "dms-exec: error CODE: message [field]". */
int fail(const dms_error *err)
{
    if (gopt.json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "error", dms_error_code_name(err->code), "message",
                              err->message, "field", err->field, "retryable", err->retryable);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "dms-exec: error %s: %s%s%s%s\n", dms_error_code_name(err->code), err->message,
                err->field[0] ? " [field " : "", err->field, err->field[0] ? "]" : "");
    }
    return EXIT_DMS_ERROR;
}

const char *need_exec_id(int argc, char **argv, const char *cmd)
{
    if (optind >= argc)
        die_usage("%s: an execution id is required", cmd);
    return argv[optind];
}

int simple_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", usage);
            exit(0);
        }
    return 0;
}

/* ---- parsing helpers ---- */

int64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mul = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 't':
    case 'T':
        mul = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    return *end ? -1 : (int64_t)(v * mul);
}

/* "500ms", "10s", "2m", "1h", "3" (seconds) -> ms */
int64_t parse_duration(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    if (!strcmp(end, "ms"))
        return (int64_t)v;
    if (!*end || !strcmp(end, "s"))
        return (int64_t)(v * 1000);
    if (!strcmp(end, "m"))
        return (int64_t)(v * 60000);
    if (!strcmp(end, "h"))
        return (int64_t)(v * 3600000);
    return -1;
}

void gen_id(char *buf, size_t n, const char *prefix)
{
    if (dmsu_random_id(buf, n, prefix) < 0)
        abort(); /* every caller's buffer holds an id: a bug, not an input */
}

/* ---- the executor ---- */

static dms_registry *reg;

/* The process backend instead of Docker. The options given were Docker's (-o host=...): the process backend
 * would refuse them. */
static void use_process_backend(void)
{
    if (gopt.n_backend_opts)
        fprintf(
            stderr,
            "dms-exec: the Docker backend's options (-o) do not apply to the process backend: left out\n");
    gopt.backend = "process";
    gopt.n_backend_opts = 0;
}

/* With no backend chosen, a workload that needs no image may run as host processes when no Docker engine
 * answers (issue: dms falls back to the process backend where the workload allows, and says so). */
void maybe_fall_back(const dms_exec_request *req)
{
    if (gopt.backend_chosen || strcmp(gopt.backend, "docker") != 0 || req->engine.image)
        return;
    dms_executor *ex = open_executor();
    dms_error why = {0};
    bool up = dms_executor_is_installed(ex, &why);
    dms_executor_close(ex);
    dms_registry_close(reg);
    reg = NULL;
    if (up)
        return;
    fprintf(stderr,
            "dms-exec: no Docker engine (%s); no --image given, so running it as host processes with the "
            "process backend\n",
            why.message);
    use_process_backend();
}

/* wait, logs, cancel, status and rm of one execution: with no backend chosen and no Docker engine answering,
 * an execution that start or run put on the process backend (above) is found there. Otherwise the Docker
 * executor, whose calls then say the engine is missing. */
dms_executor *open_executor_for(const char *exec_id)
{
    dms_executor *ex = open_executor();
    dms_error why = {0};
    if (gopt.backend_chosen || strcmp(gopt.backend, "docker") != 0 || dms_executor_is_installed(ex, &why))
        return ex;
    close_executor(ex);
    reg = NULL;
    const char *was = gopt.backend;
    size_t n_opts = gopt.n_backend_opts;
    use_process_backend();
    dms_executor *px = open_executor();
    dms_exec_status st;
    if (dms_executor_status(px, exec_id, &st, NULL) == 0) {
        fprintf(stderr, "dms-exec: no Docker engine (%s); %s is an execution of the process backend\n",
                why.message, exec_id);
        return px;
    }
    close_executor(px);
    reg = NULL;
    gopt.backend = was;
    gopt.n_backend_opts = n_opts;
    return open_executor();
}

char **backend_options(void)
{
    static char *optv[MAX_LIST + 1];
    for (size_t i = 0; i < gopt.n_backend_opts; i++)
        optv[i] = gopt.backend_opts[i];
    optv[gopt.n_backend_opts] = NULL;
    return optv;
}

dms_executor *open_executor(void)
{
    dms_error err = {0};
    if (dms_registry_open(&reg, gopt.plugin_dir, &err) < 0)
        exit(fail(&err));
    dms_executor_config cfg = {.state_dir = gopt.state_dir, .options = backend_options()};
    dms_executor *ex = NULL;
    if (dms_executor_open(&ex, reg, gopt.backend, gopt.executor_id, &cfg, &err) < 0)
        exit(fail(&err));
    return ex;
}

void close_executor(dms_executor *ex)
{
    dms_executor_close(ex);
    dms_registry_close(reg);
}

/* ---- results ---- */

int result_exit_code(const dms_exec_result *r)
{
    switch (r->outcome) {
    case DMS_OUTCOME_EXITED:
        return r->exit_code;
    case DMS_OUTCOME_SIGNALED:
        return EXIT_SIGNAL_BASE + r->signal;
    case DMS_OUTCOME_OOM_KILLED:
        return EXIT_SIGNAL_BASE + SIGKILL;
    case DMS_OUTCOME_CANCELLED:
        return EXIT_SIGNAL_BASE + (r->signal ? r->signal : SIGTERM);
    case DMS_OUTCOME_TIMED_OUT:
        return EXIT_TIMED_OUT;
    case DMS_OUTCOME_FAILED:
        return strcasestr(r->error, "not found") || strcasestr(r->error, "no such file") ? EXIT_NOT_FOUND_CMD
                                                                                         : EXIT_CANNOT_RUN;
    default:
        return EXIT_DMS_ERROR;
    }
}

void print_result(const char *exec_id, const dms_exec_result *r, bool with_output)
{
    if (gopt.json) {
        char *s = dms_exec_result_to_json(r);
        json_t *o = s ? json_loads(s, 0, NULL) : NULL;
        if (o) {
            json_object_set_new(o, "execution_id", json_string(exec_id));
            char *t = json_dumps(o, JSON_COMPACT);
            printf("%s\n", t);
            free(t);
        }
        json_decref(o);
        free(s);
        return;
    }
    fprintf(stderr, "%s: %s", exec_id, dms_outcome_name(r->outcome));
    if (r->outcome == DMS_OUTCOME_EXITED || r->exit_code >= 0)
        fprintf(stderr, " exit_code=%d", r->exit_code);
    if (r->signal)
        fprintf(stderr, " signal=%d", r->signal);
    if (r->oom_killed)
        fprintf(stderr, " oom_killed");
    if (r->started_at_ns && r->finished_at_ns)
        fprintf(stderr, " duration=%.3fs", (double)(r->finished_at_ns - r->started_at_ns) / 1e9);
    if (r->error[0])
        fprintf(stderr, " error=\"%s\"", r->error);
    fprintf(stderr, "\n");
    if (with_output) {
        if (r->stdout_len)
            (void)fwrite(r->stdout_data, 1, r->stdout_len, stdout);
        if (r->stderr_len)
            (void)fwrite(r->stderr_data, 1, r->stderr_len, stderr);
    }
}

void write_all(FILE *f, const char *data, size_t len)
{
    (void)fwrite(data, 1, len, f);
    fflush(f);
}
