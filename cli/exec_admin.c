/* cli/exec_admin.c - the commands on the executor as a whole (cleanup, recover, build) and on the backends
 * (is-installed, backends). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "exec_cli.h"

int cmd_cleanup(int argc, char **argv)
{
    simple_help(argc, argv,
                "usage: dms-exec cleanup\n\nRemoves every container (running or not), network, volume and "
                "image carrying this executor's\nlabels, and its execution state. Idempotent.\n");
    dms_executor *ex = open_executor();
    dms_error err = {0};
    dms_cleanup_report rep = {0};
    int r = dms_executor_cleanup(ex, &rep, &err);
    if (gopt.json)
        printf("{\"containers\":%d,\"networks\":%d,\"volumes\":%d,\"images\":%d,\"state_dirs\":%d,\"errors\":"
               "%d}\n",
               rep.containers, rep.networks, rep.volumes, rep.images, rep.state_dirs, rep.errors);
    else
        printf("removed: %d containers, %d networks, %d volumes, %d images, %d state dirs; %d errors\n",
               rep.containers, rep.networks, rep.volumes, rep.images, rep.state_dirs, rep.errors);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

int cmd_recover(int argc, char **argv)
{
    simple_help(argc, argv,
                "usage: dms-exec recover\n\nRe-adopts what this executor id left behind: running "
                "executions are tracked again,\nfinished ones get their real result (never a second run).\n");
    dms_executor *ex = open_executor();
    dms_error err = {0};
    size_t n = 0;
    int r = dms_executor_recover(ex, &n, &err);
    if (r == 0)
        printf(gopt.json ? "{\"adopted\":%zu}\n" : "adopted %zu executions\n", n);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

int cmd_is_installed(int argc, char **argv)
{
    simple_help(argc, argv,
                "usage: dms-exec is-installed\n\nExit 0 if the backend can run work now; else exit 1 and "
                "say why.\n");
    dms_registry *reg = NULL;
    dms_error err = {0};
    if (dms_registry_open(&reg, gopt.plugin_dir, &err) < 0)
        return fail(&err);
    dms_executor_config cfg = {.state_dir = gopt.state_dir, .options = backend_options()};
    dms_executor *ex = NULL;
    bool ok = false;
    if (dms_executor_open(&ex, reg, gopt.backend, gopt.executor_id, &cfg, &err) == 0)
        ok = dms_executor_is_installed(ex, &err);
    if (gopt.json)
        printf("{\"backend\":\"%s\",\"installed\":%s,\"reason\":\"%s\"}\n", gopt.backend,
               ok ? "true" : "false", ok ? "" : err.message);
    else if (ok)
        printf("%s: installed\n", gopt.backend);
    else
        printf("%s: not installed: %s\n", gopt.backend, err.message);
    dms_executor_close(ex);
    dms_registry_close(reg);
    return ok ? 0 : 1;
}

int cmd_backends(int argc, char **argv)
{
    simple_help(argc, argv,
                "usage: dms-exec backends\n\nLists the backend plugins found in the plugin directory.\n");
    dms_registry *reg = NULL;
    dms_error err = {0};
    if (dms_registry_open(&reg, gopt.plugin_dir, &err) < 0)
        return fail(&err);
    dms_backend_info *infos = NULL;
    size_t n = 0;
    int r = dms_registry_list(reg, &infos, &n, &err);
    if (r == 0) {
        if (!gopt.json)
            printf("plugin directory: %s\n", dms_registry_dir(reg));
        for (size_t i = 0; i < n; i++) {
            if (gopt.json)
                printf("{\"name\":\"%s\",\"loadable\":%s,\"abi\":%u,\"path\":\"%s\"}\n", infos[i].name,
                       infos[i].loadable ? "true" : "false", infos[i].abi_version, infos[i].path);
            else
                printf("  %-10s %s  %s\n", infos[i].name, infos[i].loadable ? "ok     " : "BROKEN ",
                       infos[i].description);
        }
    }
    free(infos);
    dms_registry_close(reg);
    return r < 0 ? fail(&err) : 0;
}

static void build_output(void *ud, dms_stream_type stream, const char *line, size_t len)
{
    FILE *f = stream == DMS_STREAM_STDERR ? stderr : stdout;
    (void)fwrite(line, 1, len, f);
    fputc('\n', f);
    fflush(f);
}

/* build's request and the storage it points into. */
typedef struct build_opts {
    dms_build_request br;
    char *args[MAX_LIST + 1];
    size_t na;
    char idbuf[DMS_ID_MAX + 1];
} build_opts;

/* build's options into o (zeroed by the caller); true when it printed its --help. */
static bool parse_build_opts(int argc, char **argv, build_opts *o)
{
    static const struct option lo[] = {{"tag", required_argument, NULL, 't'},
                                       {"file", required_argument, NULL, 'f'},
                                       {"build-arg", required_argument, NULL, 'a'},
                                       {"no-cache", no_argument, NULL, 'n'},
                                       {"id", required_argument, NULL, 'i'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:f:a:ni:h", lo, NULL)) != -1) {
        switch (c) {
        case 't':
            o->br.tag = optarg;
            break;
        case 'f':
            o->br.dockerfile = optarg;
            break;
        case 'a':
            if (o->na < MAX_LIST)
                o->args[o->na++] = optarg;
            break;
        case 'n':
            o->br.no_cache = true;
            break;
        case 'i':
            o->br.build_id = optarg;
            break;
        case 'h':
            printf("usage: dms-exec build --tag IMAGE [--file Dockerfile] [--build-arg K=V] [--no-cache] "
                   "CONTEXT_DIR\n"
                   "\nBuilds an image (labelled with this executor's id) and streams the build output.\n"
                   "Exit 1 when the Dockerfile failed (your build), 125 when the engine did.\n");
            return true;
        default:
            die_usage("build: unknown option");
        }
    }
    if (optind >= argc)
        die_usage("build: a context directory is required");
    o->br.context_dir = argv[optind];
    if (!o->br.tag)
        die_usage("build: --tag is required");
    if (o->na)
        o->br.build_args = o->args;
    if (!o->br.build_id) {
        gen_id(o->idbuf, sizeof(o->idbuf), "b-");
        o->br.build_id = o->idbuf;
    }
    return false;
}

int cmd_build(int argc, char **argv)
{
    build_opts o = {0};
    if (parse_build_opts(argc, argv, &o))
        return 0;
    dms_executor *ex = open_executor();
    dms_error err = {0};
    dms_build_result res;
    int r = dms_executor_build(ex, &o.br, gopt.json ? NULL : build_output, NULL, NULL, &res, &err);
    if (r == 0)
        printf(gopt.json ? "{\"image_id\":\"%s\"}\n" : "built %s\n", res.image_id);
    close_executor(ex);
    if (r == -DMS_E_BUILD_FAILED) {
        fail(&err);
        return 1;
    }
    return r < 0 ? fail(&err) : 0;
}
