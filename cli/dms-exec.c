/* dms-exec - run workloads through any dms executor backend from the shell.
 *
 *   dms-exec run --image dms-test/busybox:latest -- echo hello
 *   dms-exec start --exec e1 --image IMG -- sleep 60 ; dms-exec logs -f e1 ; dms-exec cancel e1
 *
 * A thin layer over the public API (dms/executor.h), with one internal helper of the library
 * (executor/util.h, linked from libdms-executor: its UTF-8 sanitizer): every command opens the executor
 * (backend + id), does one thing and exits. Executions outlive the process: another dms-exec can wait for,
 * follow or cancel them. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_cli.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: dms-exec [GLOBAL OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Runs workloads through a dms executor backend (docker, process, ...).\n"
        "\n"
        "Commands:\n"
        "  run            start a workload, stream its output, wait, exit with its exit code\n"
        "  start          start a workload in the background; prints its execution id\n"
        "  wait ID        wait for an execution and print its result\n"
        "  logs ID        print its output (-f to follow, --tail N)\n"
        "  cancel ID      stop it (SIGTERM, then SIGKILL after the grace period)\n"
        "  status ID      where it stands\n"
        "  ls             list this executor's executions\n"
        "  rm ID          forget a finished execution\n"
        "  cleanup        remove everything carrying this executor's labels\n"
        "  recover        re-adopt executions left behind by an earlier process\n"
        "  build DIR      build an image (docker)\n"
        "  is-installed   can this backend run work here? (exit 0/1, with the reason)\n"
        "  backends       list available backends\n"
        "\n"
        "Global options (before the command):\n"
        "  -x, --executor NAME   backend (default $DMS_EXECUTOR or docker)\n"
        "  -i, --id ID           executor id: its labels and state (default $DMS_EXECUTOR_ID or dms-exec)\n"
        "      --state-dir DIR   execution state and captured logs (default $DMS_STATE_DIR, ...)\n"
        "      --plugin-dir DIR  where backends are (default $DMS_PLUGIN_DIR, the build's, the installed)\n"
        "  -o, --option K=V      backend option (docker: host=unix:///path/docker.sock)\n"
        "      --json            machine-readable output\n"
        "  -h, --help            this help; COMMAND --help for a command's options\n"
        "\n"
        "Exit codes: the workload's for run/wait; 124 timed out; 125 dms error; 126/127 could not run;\n"
        "128+N killed by signal N; 2 usage.\n");
}

/* The commands, by name (each in its exec_*.c). */
static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"run", cmd_run},
    {"start", cmd_start},
    {"wait", cmd_wait},
    {"cancel", cmd_cancel},
    {"logs", cmd_logs},
    {"status", cmd_status},
    {"ls", cmd_ls},
    {"rm", cmd_rm},
    {"cleanup", cmd_cleanup},
    {"recover", cmd_recover},
    {"build", cmd_build},
    {"is-installed", cmd_is_installed},
    {"backends", cmd_backends},
};

/* The global options (before the command) into gopt, over the environment's defaults. -1 to go on, else the
 * exit code (after --help, --version or a bad option). */
static int parse_global_opts(int argc, char **argv)
{
    static const struct option lo[] = {{"executor", required_argument, NULL, 'x'},
                                       {"id", required_argument, NULL, 'i'},
                                       {"state-dir", required_argument, NULL, 's'},
                                       {"plugin-dir", required_argument, NULL, 'p'},
                                       {"option", required_argument, NULL, 'o'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {NULL, 0, NULL, 0}};
    gopt.backend = getenv("DMS_EXECUTOR") && *getenv("DMS_EXECUTOR") ? getenv("DMS_EXECUTOR") : "docker";
    gopt.backend_chosen = getenv("DMS_EXECUTOR") && *getenv("DMS_EXECUTOR");
    gopt.executor_id =
        getenv("DMS_EXECUTOR_ID") && *getenv("DMS_EXECUTOR_ID") ? getenv("DMS_EXECUTOR_ID") : "dms-exec";
    int c;
    while ((c = getopt_long(argc, argv, "+x:i:o:h", lo, NULL)) != -1) {
        switch (c) {
        case 'x':
            gopt.backend = optarg;
            gopt.backend_chosen = true;
            break;
        case 'i':
            gopt.executor_id = optarg;
            break;
        case 's':
            gopt.state_dir = optarg;
            break;
        case 'p':
            gopt.plugin_dir = optarg;
            break;
        case 'o':
            if (gopt.n_backend_opts < MAX_LIST)
                gopt.backend_opts[gopt.n_backend_opts++] = optarg;
            break;
        case 'j':
            gopt.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("dms-exec %s\n", DMS_VERSION);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    return -1;
}

/* Output that could not be written (a full disk, a closed pipe) is lost output: the run did not succeed, even
 * if the workload did. A workload's own failure keeps its exit code. */
static int stdout_written(int rc)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return rc;
    fprintf(stderr, "dms-exec: could not write all of the output to stdout\n");
    return rc ? rc : EXIT_DMS_ERROR;
}

int main(int argc, char **argv)
{
    int r = parse_global_opts(argc, argv);
    if (r >= 0)
        return r;
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    dms_error err = {0};
    if (dms_global_init(&err) < 0)
        return fail(&err);
    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(cmd, commands[i].name)) {
            r = commands[i].fn(sub_argc, sub_argv);
            return stdout_written(r);
        }
    die_usage("unknown command \"%s\"", cmd);
}
