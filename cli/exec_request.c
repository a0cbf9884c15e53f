/* cli/exec_request.c - the request of run and start from their flags (see exec_request.h). */
#include "exec_request.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util.h"

/* The bounds the library holds a health check to (its request_limits.h): told here in terms of the flags. */
#define HEALTH_DURATION_MAX_MS     (24LL * 3600 * 1000)
#define HEALTH_RETRIES_MAX         1000
#define HEALTH_DURATION_DIGITS_MAX 12 /* 999999999999h still fits an int64 of ms; refused as > 24h after */

/* --cap-drop/--cap-add take one name or a comma-separated list, as docker's flags do. */
static void add_caps(char **list, size_t *n, char *arg, const char *flag)
{
    for (char *s = arg, *tok; (tok = strsep(&s, ","));) {
        if (*n >= MAX_LIST)
            die_usage("too many %s", flag);
        list[(*n)++] = tok;
    }
}

static void add_mount(req_builder *b, dms_mount_type type, char *spec)
{
    if (b->req.n_mounts >= MAX_MOUNTS)
        die_usage("too many mounts");
    dms_mount *m = &b->mounts[b->req.n_mounts++];
    m->type = type;
    if (type == DMS_MOUNT_TMPFS) {
        char *colon = strchr(spec, ':');
        if (colon) {
            *colon = '\0';
            m->size_bytes = parse_size(colon + 1);
            if (m->size_bytes < 0)
                die_usage("--tmpfs %s: bad size", spec);
        }
        m->target = spec;
        return;
    }
    /* src:dst[:ro] */
    char *a = strchr(spec, ':');
    if (!a)
        die_usage("%s: expected SOURCE:TARGET[:ro]", spec);
    *a++ = '\0';
    char *ro = strchr(a, ':');
    if (ro) {
        *ro++ = '\0';
        if (strcmp(ro, "ro") != 0)
            die_usage("mount option %s: only ro is known", ro);
        m->read_only = true;
    }
    m->source = spec;
    m->target = a;
}

/* A port of --publish: 1-65535, or 0 too where "any free port" is meant (the host side). */
static uint16_t port_arg(const char *s, bool zero_ok, const char *what, const char *spec)
{
    int64_t v = dmsu_parse_i64(s);
    if (v < (zero_ok ? 0 : 1) || v > 65535)
        die_usage("--publish %s: bad %s port '%s' (a number, %d-65535)", spec, what, s, zero_ok ? 0 : 1);
    return (uint16_t)v;
}

static void add_port(req_builder *b, char *spec)
{
    /* [host_ip:][host_port:]container_port[/proto] */
    if (b->req.n_ports >= MAX_PORTS)
        die_usage("too many ports");
    char whole[256];
    snprintf(whole, sizeof(whole), "%s", spec); /* for messages: spec is cut up below */
    dms_port *p = &b->ports[b->req.n_ports++];
    char *slash = strchr(spec, '/');
    if (slash) {
        *slash = '\0';
        p->protocol = slash + 1;
    }
    char *parts[3] = {0};
    int n = 0;
    char *s = spec;
    for (char *tok; n < 3 && (tok = strsep(&s, ":"));)
        parts[n++] = tok;
    if (s)
        die_usage("--publish %s: expected [IP:][HOSTPORT:]PORT[/PROTO]", whole);
    p->container_port = port_arg(parts[n - 1], false, "container", whole);
    if (n >= 2)
        p->host_port = port_arg(parts[n - 2], true, "host", whole);
    if (n == 3)
        p->host_ip = parts[0];
}

enum {
    OPT_IMAGE = 1000,
    OPT_JOB,
    OPT_EXEC,
    OPT_ENV,
    OPT_WORKDIR,
    OPT_USER,
    OPT_ENTRYPOINT,
    OPT_MEMORY,
    OPT_CPUS,
    OPT_PIDS,
    OPT_TIMEOUT,
    OPT_GRACE,
    OPT_NETWORK,
    OPT_PUBLISH,
    OPT_BIND,
    OPT_VOLUME,
    OPT_TMPFS,
    OPT_LABEL,
    OPT_KEEP,
    OPT_SPEC,
    OPT_RESULT_BYTES,
    OPT_LOG_BYTES,
    OPT_QUIET,
    OPT_HELP,
    OPT_DISK,
    OPT_INIT,
    OPT_CAP_DROP,
    OPT_CAP_ADD,
    OPT_NNP,
    OPT_NETWORK_ALIAS,
    OPT_HEALTH_CMD,
    OPT_HEALTH_INTERVAL,
    OPT_HEALTH_TIMEOUT,
    OPT_HEALTH_START_PERIOD,
    OPT_HEALTH_RETRIES,
    OPT_NO_HEALTHCHECK,
};

static const struct option req_long[] = {
    {"image", required_argument, NULL, OPT_IMAGE},
    {"job", required_argument, NULL, OPT_JOB},
    {"exec", required_argument, NULL, OPT_EXEC},
    {"env", required_argument, NULL, OPT_ENV},
    {"workdir", required_argument, NULL, OPT_WORKDIR},
    {"user", required_argument, NULL, OPT_USER},
    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"pids", required_argument, NULL, OPT_PIDS},
    {"disk", required_argument, NULL, OPT_DISK},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"network-alias", required_argument, NULL, OPT_NETWORK_ALIAS},
    {"publish", required_argument, NULL, OPT_PUBLISH},
    {"bind", required_argument, NULL, OPT_BIND},
    {"volume", required_argument, NULL, OPT_VOLUME},
    {"tmpfs", required_argument, NULL, OPT_TMPFS},
    {"label", required_argument, NULL, OPT_LABEL},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"spec", required_argument, NULL, OPT_SPEC},
    {"init", no_argument, NULL, OPT_INIT},
    {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
    {"cap-add", required_argument, NULL, OPT_CAP_ADD},
    {"no-new-privileges", no_argument, NULL, OPT_NNP},
    {"health-cmd", required_argument, NULL, OPT_HEALTH_CMD},
    {"health-interval", required_argument, NULL, OPT_HEALTH_INTERVAL},
    {"health-timeout", required_argument, NULL, OPT_HEALTH_TIMEOUT},
    {"health-start-period", required_argument, NULL, OPT_HEALTH_START_PERIOD},
    {"health-retries", required_argument, NULL, OPT_HEALTH_RETRIES},
    {"no-healthcheck", no_argument, NULL, OPT_NO_HEALTHCHECK},
    {"result-bytes", required_argument, NULL, OPT_RESULT_BYTES},
    {"log-bytes", required_argument, NULL, OPT_LOG_BYTES},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const run_help =
    "usage: dms-exec %s [OPTIONS] [--] [COMMAND [ARG...]]\n"
    "\n"
    "%s\n"
    "\n"
    "  --image IMAGE          image to run (docker backend; must be local or pullable)\n"
    "  --exec ID              execution id (default: generated); an id runs at most once\n"
    "  --job ID               job id (default: the execution id)\n"
    "  --env K=V              environment variable (repeatable)\n"
    "  --workdir DIR          working directory inside the workload\n"
    "  --user UID[:GID]       user to run as\n"
    "  --entrypoint PROG      replace the image's entrypoint\n"
    "  --memory SIZE          memory limit (e.g. 64m, 1g); exceeding it is an OOM kill\n"
    "  --cpus N               CPU limit in cores (0.5 = half a core)\n"
    "  --pids N               process count limit\n"
    "  --disk SIZE            disk limit (refused where the engine cannot enforce it)\n"
    "  --timeout DURATION     run timeout (500ms, 10s, 2m); the job is stopped and marked timed_out\n"
    "  --grace DURATION       SIGTERM to SIGKILL on cancel/timeout (default 10s)\n"
    "  --network MODE         default | none | host | NAME (a labelled network, created if absent)\n"
    "  --network-alias NAME   a name the workload is also found by on its --network NAME (repeatable)\n"
    "  --publish [IP:][HOSTPORT:]PORT[/PROTO]   publish a port (host side 127.0.0.1 by default)\n"
    "  --bind SRC:DST[:ro]    bind-mount a host path\n"
    "  --volume NAME:DST[:ro] mount a named volume (labelled, created if absent)\n"
    "  --tmpfs DST[:SIZE]     mount a tmpfs\n"
    "  --label K=V            extra label (keys under io.dms. are reserved)\n"
    "  --keep                 keep the container after it ends (debugging)\n"
    "  --init                 run a minimal init as PID 1 (default signal handling for the workload, "
    "reaping)\n"
    "  --cap-drop CAP[,CAP]   drop capabilities (NET_RAW, ... or ALL; repeatable)\n"
    "  --cap-add CAP[,CAP]    add capabilities after the drop (--cap-drop ALL --cap-add X: only X)\n"
    "  --no-new-privileges    setuid binaries and file capabilities grant nothing\n"
    "  --health-cmd CMD       health check: a command line for the workload's /bin/sh -c; exit 0 = healthy\n"
    "                         (status then says starting, healthy or unhealthy; docker backend only)\n"
    "  --health-interval DUR  between checks (200ms, 5s; default: the image's, else 30s; at most 24h)\n"
    "  --health-timeout DUR   one check's limit (default: the image's, else 30s)\n"
    "  --health-start-period DUR  failures in this first period do not count (default 0)\n"
    "  --health-retries N     failures in a row that make it unhealthy (1-1000; default 3)\n"
    "  --no-healthcheck       no check at all, not even the image's own HEALTHCHECK\n"
    "  --result-bytes SIZE    stdout/stderr excerpt kept in the result (default 64k)\n"
    "  --log-bytes SIZE       capture file size before rotation (default 32m; two are kept)\n"
    "  --spec FILE            take the whole request as JSON from FILE ('-' = stdin); flags override ids\n"
    "%s";

static void usage_run(const char *cmd)
{
    if (!strcmp(cmd, "run"))
        printf(run_help, cmd,
               "Starts a workload, streams its output, waits for it and exits with its exit code\n"
               "(124 timed out, 125 dms error, 126/127 could not run, 128+N killed by signal N).",
               "  --quiet                do not stream the output while it runs\n");
    else
        printf(run_help, cmd,
               "Starts a workload and prints its execution id; it keeps running after dms-exec exits.", "");
}

/* The options that set a limit (memory, disk, CPUs, pids, timeout, grace, capture sizes); false for another.
 */
static bool limit_opt(req_builder *b, int c, const char *arg)
{
    switch (c) {
    case OPT_MEMORY:
        if ((b->req.resources.memory_bytes = parse_size(arg)) < 0)
            die_usage("--memory %s: not a size (e.g. 64m)", arg);
        break;
    case OPT_DISK:
        if ((b->req.resources.disk_bytes = parse_size(arg)) < 0)
            die_usage("--disk %s: not a size (e.g. 1g)", arg);
        break;
    case OPT_CPUS: {
        char *end;
        double v = strtod(arg, &end);
        if (*end || v < 0)
            die_usage("--cpus %s: not a number of cores", arg);
        b->req.resources.cpu_millis = (int64_t)(v * 1000 + 0.5);
        break;
    }
    case OPT_PIDS:
        b->req.resources.pids_limit = strtoll(arg, NULL, 10);
        break;
    case OPT_TIMEOUT:
        if ((b->req.timeout_ms = parse_duration(arg)) < 0)
            die_usage("--timeout %s: not a duration (e.g. 10s)", arg);
        break;
    case OPT_GRACE:
        if ((b->req.stop_grace_ms = parse_duration(arg)) < 0)
            die_usage("--grace %s: not a duration (e.g. 2s)", arg);
        if (b->req.stop_grace_ms == 0)
            b->req.stop_grace_ms = 1; /* 0 would mean "default": the smallest grace instead */
        break;
    case OPT_RESULT_BYTES:
        b->req.limits.result_output_bytes = parse_size(arg);
        break;
    case OPT_LOG_BYTES:
        b->req.limits.log_file_bytes = parse_size(arg);
        break;
    default:
        return false;
    }
    return true;
}

static void set_network(dms_exec_request *req, char *arg)
{
    if (!strcmp(arg, "none"))
        req->network_mode = DMS_NET_NONE;
    else if (!strcmp(arg, "host"))
        req->network_mode = DMS_NET_HOST;
    else if (!strcmp(arg, "default") || !strcmp(arg, "bridge"))
        req->network_mode = DMS_NET_DEFAULT;
    else {
        req->network_mode = DMS_NET_NAMED;
        req->network_name = arg;
    }
}

/* A --health-* period: [0-9]+(.[0-9]+)?(ms|s|m|h), at most a day. parse_duration's strtod would also take
 * "nan", "inf" or "1e30h", none of which converts to milliseconds, so the shape is checked first; a value
 * that rounds down to 0 ms would silently mean "the default" and is refused. */
static int64_t health_duration(const char *flag, const char *arg)
{
    size_t digits = strspn(arg, "0123456789.");
    const char *unit = arg + digits;
    bool unit_ok =
        !*unit || !strcmp(unit, "ms") || !strcmp(unit, "s") || !strcmp(unit, "m") || !strcmp(unit, "h");
    if (digits == 0 || digits > HEALTH_DURATION_DIGITS_MAX || !unit_ok ||
        strchr(arg, '.') != strrchr(arg, '.'))
        die_usage("%s %s: not a duration (e.g. 200ms, 5s, 1m)", flag, arg);
    int64_t ms = parse_duration(arg);
    if (ms < 0)
        die_usage("%s %s: not a duration (e.g. 200ms, 5s, 1m)", flag, arg);
    if (ms > HEALTH_DURATION_MAX_MS)
        die_usage("%s %s: at most 24h", flag, arg);
    if (ms == 0 && strtod(arg, NULL) > 0)
        die_usage("%s %s: at least 1ms", flag, arg);
    return ms;
}

/* The health check's options; false for another. */
static bool health_opt(req_builder *b, int c, char *arg)
{
    dms_healthcheck *h = &b->health;
    const char *flag = NULL;
    switch (c) {
    case OPT_HEALTH_CMD:
        if (!*arg)
            die_usage("--health-cmd: the command line is empty");
        b->health_test[0] = arg;
        h->test = b->health_test;
        h->shell = true;
        break;
    case OPT_HEALTH_INTERVAL:
        h->interval_ms = health_duration(flag = "--health-interval", arg);
        break;
    case OPT_HEALTH_TIMEOUT:
        h->timeout_ms = health_duration(flag = "--health-timeout", arg);
        break;
    case OPT_HEALTH_START_PERIOD:
        h->start_period_ms = health_duration(flag = "--health-start-period", arg);
        break;
    case OPT_HEALTH_RETRIES: {
        int64_t n = dmsu_parse_i64(arg);
        if (n < 1 || n > HEALTH_RETRIES_MAX)
            die_usage("--health-retries %s: a count, 1-%d", arg, HEALTH_RETRIES_MAX);
        h->retries = (int)n;
        flag = "--health-retries";
        break;
    }
    case OPT_NO_HEALTHCHECK:
        h->disable = true;
        break;
    default:
        return false;
    }
    if (flag && !b->health_timing_flag)
        b->health_timing_flag = flag;
    b->health_given = true;
    return true;
}

/* The check goes into the request whole: timings alone could only tune the image's own check, which the
 * request cannot express, and --no-healthcheck with anything else contradicts it (docker refuses both). */
static void attach_health(req_builder *b)
{
    if (!b->health_given)
        return;
    if (b->health.disable && (b->health.test || b->health_timing_flag))
        die_usage("--no-healthcheck conflicts with %s",
                  b->health.test ? "--health-cmd" : b->health_timing_flag);
    if (!b->health.disable && !b->health.test)
        die_usage("%s needs --health-cmd: the check and its timing go together", b->health_timing_flag);
    b->req.healthcheck = &b->health;
}

/* The options that add to a list (env, labels, ports, mounts, capabilities, aliases); false for another. */
static bool list_opt(req_builder *b, int c, char *arg)
{
    switch (c) {
    case 'e':
    case OPT_ENV:
        if (b->n_env >= MAX_LIST)
            die_usage("too many --env");
        b->env[b->n_env++] = arg;
        break;
    case OPT_LABEL:
        if (b->n_labels >= MAX_LIST)
            die_usage("too many --label");
        b->labels[b->n_labels++] = arg;
        break;
    case OPT_PUBLISH:
        add_port(b, arg);
        break;
    case OPT_BIND:
        add_mount(b, DMS_MOUNT_BIND, arg);
        break;
    case OPT_VOLUME:
        add_mount(b, DMS_MOUNT_VOLUME, arg);
        break;
    case OPT_TMPFS:
        add_mount(b, DMS_MOUNT_TMPFS, arg);
        break;
    case OPT_CAP_DROP:
        add_caps(b->cap_drop, &b->n_cap_drop, arg, "--cap-drop");
        break;
    case OPT_CAP_ADD:
        add_caps(b->cap_add, &b->n_cap_add, arg, "--cap-add");
        break;
    case OPT_NETWORK_ALIAS:
        if (b->n_aliases >= MAX_LIST)
            die_usage("too many --network-alias");
        b->aliases[b->n_aliases++] = arg;
        break;
    default:
        return false;
    }
    return true;
}

/* One option of cmd (c as getopt_long returned it, arg its value); *spec gets --spec's file. */
static void request_opt(req_builder *b, const char *cmd, int c, char *arg, const char **spec)
{
    if (limit_opt(b, c, arg) || list_opt(b, c, arg) || health_opt(b, c, arg))
        return;
    switch (c) {
    case OPT_IMAGE:
        b->req.engine.image = arg;
        break;
    case OPT_JOB:
        b->req.job_id = arg;
        break;
    case OPT_EXEC:
        b->req.execution_id = arg;
        break;
    case OPT_WORKDIR:
        b->req.engine.working_dir = arg;
        break;
    case OPT_USER:
        b->req.engine.user = arg;
        break;
    case OPT_ENTRYPOINT:
        b->entry[0] = arg;
        b->req.engine.entrypoint = b->entry;
        break;
    case OPT_NETWORK:
        set_network(&b->req, arg);
        break;
    case OPT_KEEP:
        b->req.keep_container = true;
        break;
    case OPT_INIT:
        b->req.init = true;
        break;
    case OPT_NNP:
        b->req.security.no_new_privileges = true;
        break;
    case OPT_SPEC:
        *spec = arg;
        break;
    case OPT_QUIET:
        break; /* read by cmd_run itself */
    case OPT_HELP:
        usage_run(cmd);
        exit(0);
    default:
        die_usage("%s: unknown option", cmd);
    }
}

/* The lists the options filled, and the workload's command after them, into the request. */
static void attach_lists(req_builder *b, int argc, char **argv)
{
    b->req.mounts = b->mounts;
    b->req.ports = b->ports;
    if (b->n_env)
        b->req.engine.env = b->env;
    if (b->n_labels)
        b->req.labels = b->labels;
    if (b->n_cap_drop)
        b->req.security.cap_drop = b->cap_drop;
    if (b->n_cap_add)
        b->req.security.cap_add = b->cap_add;
    if (b->n_aliases)
        b->req.network_aliases = b->aliases;
    attach_health(b);
    if (optind < argc)
        b->req.engine.cmd = argv + optind;
}

/* --spec FILE ('-' = stdin): the whole request as JSON, into b->from_json. */
static void load_spec(req_builder *b, const char *spec)
{
    FILE *f = strcmp(spec, "-") ? fopen(spec, "r") : stdin;
    if (!f)
        die_usage("--spec %s: %s", spec, strerror(errno));
    json_error_t jerr;
    json_t *j = json_loadf(f, 0, &jerr);
    if (f != stdin)
        (void)fclose(f);
    if (!j)
        die_usage("--spec %s: %s (line %d)", spec, jerr.text, jerr.line);
    /* Ids given as flags win; fill the spec's missing ids before parsing (parsing validates). */
    if (b->req.execution_id)
        json_object_set_new(j, "execution_id", json_string(b->req.execution_id));
    if (b->req.job_id)
        json_object_set_new(j, "job_id", json_string(b->req.job_id));
    if (!json_object_get(j, "execution_id")) {
        gen_id(b->exec_id, sizeof(b->exec_id), "e-");
        json_object_set_new(j, "execution_id", json_string(b->exec_id));
    }
    if (!json_object_get(j, "job_id"))
        json_object_set(j, "job_id", json_object_get(j, "execution_id"));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    dms_error err = {0};
    if (dms_exec_request_from_json(s, strlen(s), &b->from_json, &err) < 0)
        exit(fail(&err));
    free(s);
}

void build_request(req_builder *b, const char *cmd, int argc, char **argv)
{
    memset(b, 0, sizeof(*b));
    const char *spec = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+e:", req_long, NULL)) != -1)
        request_opt(b, cmd, c, optarg, &spec);
    attach_lists(b, argc, argv);
    if (spec) {
        load_spec(b, spec);
        return;
    }
    if (!b->req.execution_id) {
        gen_id(b->exec_id, sizeof(b->exec_id), "e-");
        b->req.execution_id = b->exec_id;
    }
    if (!b->req.job_id)
        b->req.job_id = b->req.execution_id;
}

const dms_exec_request *the_request(const req_builder *b)
{
    return b->from_json ? b->from_json : &b->req;
}
