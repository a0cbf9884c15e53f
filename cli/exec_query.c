/* cli/exec_query.c - the commands on one execution (wait, cancel, logs, status, rm) and the list of them
 * (ls). Each opens the executor through open_executor_for, so an execution the process backend took over when
 * no Docker engine answered is found there. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exec_cli.h"
#include "util.h" /* dmsu_utf8_sanitize: JSON strings must be UTF-8 */

int cmd_wait(int argc, char **argv)
{
    static const struct option lo[] = {
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int64_t timeout = -1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", lo, NULL)) != -1) {
        if (c == 't') {
            if ((timeout = parse_duration(optarg)) < 0)
                die_usage("--timeout %s: not a duration", optarg);
        } else if (c == 'h') {
            printf("usage: dms-exec wait [--timeout DURATION] EXEC_ID\n\nWaits until the execution ends and "
                   "prints its "
                   "result; exits with its exit code. A timeout (exit 125, error TIMEOUT) leaves the job "
                   "running.\n");
            return 0;
        } else {
            die_usage("wait: unknown option");
        }
    }
    const char *id = need_exec_id(argc, argv, "wait");
    dms_executor *ex = open_executor_for(id);
    dms_error err = {0};
    dms_exec_result res = {0};
    int r = dms_executor_wait(ex, id, timeout, &res, &err);
    int code = r < 0 ? fail(&err) : (print_result(id, &res, false), result_exit_code(&res));
    dms_exec_result_clear(&res);
    close_executor(ex);
    return code;
}

int cmd_cancel(int argc, char **argv)
{
    static const struct option lo[] = {{"grace", required_argument, NULL, 'g'},
                                       {"now", no_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int64_t grace = -1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "g:nh", lo, NULL)) != -1) {
        if (c == 'g') {
            if ((grace = parse_duration(optarg)) < 0)
                die_usage("--grace %s: not a duration", optarg);
        } else if (c == 'n') {
            grace = 0;
        } else if (c == 'h') {
            printf("usage: dms-exec cancel [--grace DURATION | --now] EXEC_ID\n\nStops an execution: "
                   "SIGTERM, then "
                   "SIGKILL after its grace period (the one it was\nstarted with, or --grace); --now kills "
                   "it at once. "
                   "Returns once it has ended.\n");
            return 0;
        } else {
            die_usage("cancel: unknown option");
        }
    }
    const char *id = need_exec_id(argc, argv, "cancel");
    dms_executor *ex = open_executor_for(id);
    dms_error err = {0};
    int r = dms_executor_cancel_grace(ex, id, grace, &err);
    close_executor(ex);
    if (r < 0)
        return fail(&err);
    if (gopt.json)
        printf("{\"execution_id\":\"%s\",\"cancelled\":true}\n", id);
    return 0;
}

/* logs' options into opts and *ts; true when it printed its --help. */
static bool parse_logs_opts(int argc, char **argv, dms_log_options *opts, bool *ts)
{
    static const struct option lo[] = {
        {"follow", no_argument, NULL, 'f'},      {"tail", required_argument, NULL, 'n'},
        {"since", required_argument, NULL, 's'}, {"stdout", no_argument, NULL, 'o'},
        {"stderr", no_argument, NULL, 'e'},      {"timestamps", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    bool only_out = false, only_err = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fn:s:oeth", lo, NULL)) != -1) {
        switch (c) {
        case 'f':
            opts->follow = true;
            break;
        case 'n':
            if (!strcmp(optarg, "all"))
                opts->tail_lines = -1;
            else if ((opts->tail_lines = strtoll(optarg, NULL, 10)) < 0 || !*optarg)
                die_usage("--tail %s: a line count or all", optarg);
            break;
        case 's':
            opts->since_ns = strtoll(optarg, NULL, 10);
            break;
        case 'o':
            only_out = true;
            break;
        case 'e':
            only_err = true;
            break;
        case 't':
            *ts = true;
            break;
        case 'h':
            printf("usage: dms-exec logs [-f] [--tail N|all] [--since NS] [--stdout|--stderr] [--timestamps] "
                   "EXEC_ID\n"
                   "\nPrints an execution's output from the executor's own capture (works after the "
                   "container is\n"
                   "gone). -f follows until the execution ends. --since takes a wall-clock time in ns "
                   "(inclusive).\n"
                   "--json prints one JSON object per frame.\n");
            return true;
        default:
            die_usage("logs: unknown option");
        }
    }
    opts->no_stdout = only_err;
    opts->no_stderr = only_out;
    return false;
}

/* --json: one object per frame. */
static void print_frame_json(const dms_log_frame *f)
{
    char *clean = dmsu_utf8_sanitize(f->data, f->len, NULL);
    json_t *o =
        clean ? json_pack("{s:s,s:I,s:s,s:b}", "stream", f->stream == DMS_STREAM_STDERR ? "stderr" : "stdout",
                          "ts_ns", (json_int_t)f->ts_ns, "data", clean, "partial", f->partial)
              : NULL;
    free(clean);
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (js)
        printf("%s\n", js);
    free(js);
    json_decref(o);
    fflush(stdout);
}

int cmd_logs(int argc, char **argv)
{
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    bool ts = false;
    if (parse_logs_opts(argc, argv, &opts, &ts))
        return 0;
    const char *id = need_exec_id(argc, argv, "logs");
    dms_executor *ex = open_executor_for(id);
    dms_error err = {0};
    dms_log_stream *s = NULL;
    int r = dms_executor_log_stream(ex, id, &opts, &s, &err);
    if (r == 0) {
        dms_log_frame f;
        while ((r = dms_log_stream_next(s, -1, &f, &err)) > 0) {
            if (gopt.json) {
                print_frame_json(&f);
                continue;
            }
            FILE *out = f.stream == DMS_STREAM_STDERR ? stderr : stdout;
            if (ts)
                fprintf(out, "%" PRId64 " ", f.ts_ns);
            write_all(out, f.data, f.len);
        }
        dms_log_stream_free(s);
    }
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

static void print_status(const dms_exec_status *s)
{
    if (gopt.json) {
        json_t *ports = json_array();
        for (size_t i = 0; i < s->n_ports; i++)
            json_array_append_new(ports,
                                  json_pack("{s:i,s:i,s:s}", "container", s->ports[i].container_port, "host",
                                            s->ports[i].host_port, "protocol", s->ports[i].protocol));
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s,s:o,s:s,s:s}", "execution_id",
                              s->execution_id, "job_id", s->job_id, "state", dms_state_name(s->state),
                              "outcome", dms_outcome_name(s->outcome), "exit_code", s->exit_code,
                              "started_at_ns", (json_int_t)s->started_at_ns, "finished_at_ns",
                              (json_int_t)s->finished_at_ns, "handle", s->handle, "ports", ports,
                              "ip_address", s->ip_address, "health", dms_health_name(s->health));
        char *js = json_dumps(o, JSON_COMPACT);
        printf("%s\n", js);
        free(js);
        json_decref(o);
        return;
    }
    printf("%-24s %-10s %-12s %5d  %.12s", s->execution_id, dms_state_name(s->state),
           s->state == DMS_STATE_FINISHED ? dms_outcome_name(s->outcome) : "-", s->exit_code, s->handle);
    for (size_t i = 0; i < s->n_ports; i++)
        printf(" %u->%u/%s", s->ports[i].host_port, s->ports[i].container_port, s->ports[i].protocol);
    printf("\n");
}

int cmd_status(int argc, char **argv)
{
    simple_help(argc, argv,
                "usage: dms-exec status EXEC_ID\n\nWhere an execution stands: state, outcome, exit code, "
                "container, published ports (and with --json its address and health: none, starting, healthy "
                "or unhealthy).\n");
    optind = 1;
    const char *id = need_exec_id(argc, argv, "status");
    dms_executor *ex = open_executor_for(id);
    dms_error err = {0};
    dms_exec_status st;
    int r = dms_executor_status(ex, id, &st, &err);
    if (r == 0)
        print_status(&st);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

int cmd_ls(int argc, char **argv)
{
    simple_help(argc, argv,
                "usage: dms-exec ls\n\nLists this executor's executions (found through labels and state, "
                "not memory).\n");
    dms_executor *ex = open_executor();
    dms_error err = {0};
    dms_exec_status *list = NULL;
    size_t n = 0;
    int r = dms_executor_list(ex, &list, &n, &err);
    if (r == 0) {
        if (!gopt.json)
            printf("%-24s %-10s %-12s %5s  %s\n", "EXECUTION", "STATE", "OUTCOME", "EXIT", "HANDLE");
        for (size_t i = 0; i < n; i++)
            print_status(&list[i]);
    }
    free(list);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

int cmd_rm(int argc, char **argv)
{
    simple_help(argc, argv,
                "usage: dms-exec rm EXEC_ID\n\nForgets a finished execution: its container (if kept), "
                "state and captured logs.\n");
    optind = 1;
    const char *id = need_exec_id(argc, argv, "rm");
    dms_executor *ex = open_executor_for(id);
    dms_error err = {0};
    int r = dms_executor_remove(ex, id, &err);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}
