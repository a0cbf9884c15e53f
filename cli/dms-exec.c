/* dms-exec - run workloads through any dms executor backend from the shell.
 *
 *   dms-exec run --image dms-test/busybox:latest -- echo hello
 *   dms-exec start --exec e1 --image IMG -- sleep 60 ; dms-exec logs -f e1 ; dms-exec cancel e1
 *
 * A thin layer over the public API (dms/executor.h), with one internal helper of the library (executor/util.h,
 * linked from libdms-executor: its UTF-8 sanitizer): every command opens the executor (backend + id), does one
 * thing and exits. Executions outlive the process: another dms-exec can wait for, follow or cancel them. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <dms/executor.h>

#include "util.h" /* dms_utf8_sanitize: JSON strings must be UTF-8 */

#define EXIT_USAGE 2
#define EXIT_DMS_ERROR 125  /* like docker run: the tool failed, not the workload */
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND_CMD 127
#define EXIT_TIMED_OUT 124  /* like timeout(1) */
#define EXIT_SIGNAL_BASE 128
#define MAX_LIST 256

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

static global_opts g = {.backend = NULL, .executor_id = NULL};

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
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
static int fail(const dms_error *err)
{
    if (g.json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "error", dms_error_code_name(err->code), "message", err->message,
                              "field", err->field, "retryable", err->retryable);
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

/* ---- parsing helpers ---- */

static int64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    return *end ? -1 : (int64_t)(v * mul);
}

/* "500ms", "10s", "2m", "1h", "3" (seconds) -> ms */
static int64_t parse_duration(const char *s)
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

static void gen_id(char *buf, size_t n, const char *prefix)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned seed = (unsigned)(ts.tv_nsec ^ (ts.tv_sec << 8) ^ ((unsigned)getpid() << 16));
    snprintf(buf, n, "%s%08x%04x", prefix, (unsigned)rand_r(&seed), (unsigned)(rand_r(&seed) & 0xffff));
}

/* ---- the executor ---- */

static dms_registry *reg;

static dms_executor *open_executor(void);
static void close_executor(dms_executor *ex);

/* The process backend instead of Docker. The options given were Docker's (-o host=...): the process backend
 * would refuse them. */
static void use_process_backend(void)
{
    if (g.n_backend_opts)
        fprintf(
            stderr,
            "dms-exec: the Docker backend's options (-o) do not apply to the process backend: left out\n");
    g.backend = "process";
    g.n_backend_opts = 0;
}

/* With no backend chosen, a workload that needs no image may run as host processes when no Docker engine answers
 * (issue: dms falls back to the process backend where the workload allows, and says so). */
static void maybe_fall_back(const dms_exec_request *req)
{
    if (g.backend_chosen || strcmp(g.backend, "docker") != 0 || req->engine.image)
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
static dms_executor *open_executor_for(const char *exec_id)
{
    dms_executor *ex = open_executor();
    dms_error why = {0};
    if (g.backend_chosen || strcmp(g.backend, "docker") != 0 || dms_executor_is_installed(ex, &why))
        return ex;
    close_executor(ex);
    reg = NULL;
    const char *was = g.backend;
    size_t n_opts = g.n_backend_opts;
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
    g.backend = was;
    g.n_backend_opts = n_opts;
    return open_executor();
}

static dms_executor *open_executor(void)
{
    dms_error err = {0};
    if (dms_registry_open(&reg, g.plugin_dir, &err) < 0)
        exit(fail(&err));
    static char *optv[MAX_LIST + 1];
    for (size_t i = 0; i < g.n_backend_opts; i++)
        optv[i] = g.backend_opts[i];
    optv[g.n_backend_opts] = NULL;
    dms_executor_config cfg = {.state_dir = g.state_dir, .options = optv};
    dms_executor *ex = NULL;
    if (dms_executor_open(&ex, reg, g.backend, g.executor_id, &cfg, &err) < 0)
        exit(fail(&err));
    return ex;
}

static void close_executor(dms_executor *ex)
{
    dms_executor_close(ex);
    dms_registry_close(reg);
}

/* ---- results ---- */

static int result_exit_code(const dms_exec_result *r)
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

static void print_result(const char *exec_id, const dms_exec_result *r, bool with_output)
{
    if (g.json) {
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
            fwrite(r->stdout_data, 1, r->stdout_len, stdout);
        if (r->stderr_len)
            fwrite(r->stderr_data, 1, r->stderr_len, stderr);
    }
}

/* ---- request from flags ---- */

typedef struct req_builder {
    dms_exec_request req;
    char *env[MAX_LIST + 1];
    size_t n_env;
    char *labels[MAX_LIST + 1];
    size_t n_labels;
    dms_mount mounts[64];
    dms_port ports[64];
    char *entry[2];
    char exec_id[DMS_ID_MAX + 1];
    char *cap_drop[MAX_LIST + 1], *cap_add[MAX_LIST + 1];
    size_t n_cap_drop, n_cap_add;
    dms_exec_request *from_json;
} req_builder;

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
    if (b->req.n_mounts >= 64)
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

static void add_port(req_builder *b, char *spec)
{
    /* [host_ip:][host_port:]container_port[/proto] */
    if (b->req.n_ports >= 64)
        die_usage("too many ports");
    dms_port *p = &b->ports[b->req.n_ports++];
    char *slash = strchr(spec, '/');
    if (slash) {
        *slash = '\0';
        p->protocol = slash + 1;
    }
    char *parts[3];
    int n = 0;
    for (char *s = spec, *tok; n < 3 && (tok = strsep(&s, ":"));)
        parts[n++] = tok;
    long cp = strtol(parts[n - 1], NULL, 10);
    if (cp <= 0 || cp > 65535)
        die_usage("--publish: bad container port in %s", spec);
    p->container_port = (uint16_t)cp;
    if (n >= 2)
        p->host_port = (uint16_t)strtol(parts[n - 2], NULL, 10);
    if (n == 3)
        p->host_ip = parts[0];
}

enum {
    OPT_IMAGE = 1000, OPT_JOB, OPT_EXEC, OPT_ENV, OPT_WORKDIR, OPT_USER, OPT_ENTRYPOINT, OPT_MEMORY, OPT_CPUS,
    OPT_PIDS, OPT_TIMEOUT, OPT_GRACE, OPT_NETWORK, OPT_PUBLISH, OPT_BIND, OPT_VOLUME, OPT_TMPFS, OPT_LABEL, OPT_KEEP,
    OPT_SPEC, OPT_RESULT_BYTES, OPT_LOG_BYTES, OPT_QUIET, OPT_HELP, OPT_DISK, OPT_INIT,
    OPT_CAP_DROP, OPT_CAP_ADD, OPT_NNP,
};

static const struct option req_long[] = {
    {"image", required_argument, NULL, OPT_IMAGE},       {"job", required_argument, NULL, OPT_JOB},
    {"exec", required_argument, NULL, OPT_EXEC},         {"env", required_argument, NULL, OPT_ENV},
    {"workdir", required_argument, NULL, OPT_WORKDIR},   {"user", required_argument, NULL, OPT_USER},
    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT}, {"memory", required_argument, NULL, OPT_MEMORY},
    {"cpus", required_argument, NULL, OPT_CPUS},         {"pids", required_argument, NULL, OPT_PIDS},
    {"disk", required_argument, NULL, OPT_DISK},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},   {"grace", required_argument, NULL, OPT_GRACE},
    {"network", required_argument, NULL, OPT_NETWORK},   {"publish", required_argument, NULL, OPT_PUBLISH},
    {"bind", required_argument, NULL, OPT_BIND},         {"volume", required_argument, NULL, OPT_VOLUME},
    {"tmpfs", required_argument, NULL, OPT_TMPFS},       {"label", required_argument, NULL, OPT_LABEL},
    {"keep", no_argument, NULL, OPT_KEEP},               {"spec", required_argument, NULL, OPT_SPEC},
    {"init", no_argument, NULL, OPT_INIT},
    {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
    {"cap-add", required_argument, NULL, OPT_CAP_ADD},
    {"no-new-privileges", no_argument, NULL, OPT_NNP},
    {"result-bytes", required_argument, NULL, OPT_RESULT_BYTES},
    {"log-bytes", required_argument, NULL, OPT_LOG_BYTES}, {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},               {NULL, 0, NULL, 0},
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
    "  --publish [IP:][HOSTPORT:]PORT[/PROTO]   publish a port (host side 127.0.0.1 by default)\n"
    "  --bind SRC:DST[:ro]    bind-mount a host path\n"
    "  --volume NAME:DST[:ro] mount a named volume (labelled, created if absent)\n"
    "  --tmpfs DST[:SIZE]     mount a tmpfs\n"
    "  --label K=V            extra label (keys under io.dms. are reserved)\n"
    "  --keep                 keep the container after it ends (debugging)\n"
    "  --init                 run a minimal init as PID 1 (default signal handling for the workload, reaping)\n"
    "  --cap-drop CAP[,CAP]   drop capabilities (NET_RAW, ... or ALL; repeatable)\n"
    "  --cap-add CAP[,CAP]    add capabilities after the drop (--cap-drop ALL --cap-add X: only X)\n"
    "  --no-new-privileges    setuid binaries and file capabilities grant nothing\n"
    "  --result-bytes SIZE    stdout/stderr excerpt kept in the result (default 64k)\n"
    "  --log-bytes SIZE       capture file size before rotation (default 32m; two are kept)\n"
    "  --spec FILE            take the whole request as JSON from FILE ('-' = stdin); flags override ids\n"
    "%s";

static void usage_run(const char *cmd)
{
    if (!strcmp(cmd, "run"))
        printf(run_help, cmd, "Starts a workload, streams its output, waits for it and exits with its exit code\n"
                              "(124 timed out, 125 dms error, 126/127 could not run, 128+N killed by signal N).",
               "  --quiet                do not stream the output while it runs\n");
    else
        printf(run_help, cmd, "Starts a workload and prints its execution id; it keeps running after dms-exec exits.",
               "");
}

static void build_request(req_builder *b, const char *cmd, int argc, char **argv)
{
    memset(b, 0, sizeof(*b));
    const char *spec = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+e:", req_long, NULL)) != -1) {
        switch (c) {
        case OPT_IMAGE: b->req.engine.image = optarg; break;
        case OPT_JOB: b->req.job_id = optarg; break;
        case OPT_EXEC: b->req.execution_id = optarg; break;
        case 'e':
        case OPT_ENV:
            if (b->n_env >= MAX_LIST)
                die_usage("too many --env");
            b->env[b->n_env++] = optarg;
            break;
        case OPT_WORKDIR: b->req.engine.working_dir = optarg; break;
        case OPT_USER: b->req.engine.user = optarg; break;
        case OPT_ENTRYPOINT:
            b->entry[0] = optarg;
            b->req.engine.entrypoint = b->entry;
            break;
        case OPT_MEMORY:
            if ((b->req.resources.memory_bytes = parse_size(optarg)) < 0)
                die_usage("--memory %s: not a size (e.g. 64m)", optarg);
            break;
        case OPT_DISK:
            if ((b->req.resources.disk_bytes = parse_size(optarg)) < 0)
                die_usage("--disk %s: not a size (e.g. 1g)", optarg);
            break;
        case OPT_CPUS: {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || v < 0)
                die_usage("--cpus %s: not a number of cores", optarg);
            b->req.resources.cpu_millis = (int64_t)(v * 1000 + 0.5);
            break;
        }
        case OPT_PIDS: b->req.resources.pids_limit = strtoll(optarg, NULL, 10); break;
        case OPT_TIMEOUT:
            if ((b->req.timeout_ms = parse_duration(optarg)) < 0)
                die_usage("--timeout %s: not a duration (e.g. 10s)", optarg);
            break;
        case OPT_GRACE:
            if ((b->req.stop_grace_ms = parse_duration(optarg)) < 0)
                die_usage("--grace %s: not a duration (e.g. 2s)", optarg);
            if (b->req.stop_grace_ms == 0)
                b->req.stop_grace_ms = 1; /* 0 would mean "default": the smallest grace instead */
            break;
        case OPT_NETWORK:
            if (!strcmp(optarg, "none"))
                b->req.network_mode = DMS_NET_NONE;
            else if (!strcmp(optarg, "host"))
                b->req.network_mode = DMS_NET_HOST;
            else if (!strcmp(optarg, "default") || !strcmp(optarg, "bridge"))
                b->req.network_mode = DMS_NET_DEFAULT;
            else {
                b->req.network_mode = DMS_NET_NAMED;
                b->req.network_name = optarg;
            }
            break;
        case OPT_PUBLISH: add_port(b, optarg); break;
        case OPT_BIND: add_mount(b, DMS_MOUNT_BIND, optarg); break;
        case OPT_VOLUME: add_mount(b, DMS_MOUNT_VOLUME, optarg); break;
        case OPT_TMPFS: add_mount(b, DMS_MOUNT_TMPFS, optarg); break;
        case OPT_LABEL:
            if (b->n_labels >= MAX_LIST)
                die_usage("too many --label");
            b->labels[b->n_labels++] = optarg;
            break;
        case OPT_KEEP: b->req.keep_container = true; break;
        case OPT_INIT: b->req.init = true; break;
        case OPT_CAP_DROP: add_caps(b->cap_drop, &b->n_cap_drop, optarg, "--cap-drop"); break;
        case OPT_CAP_ADD: add_caps(b->cap_add, &b->n_cap_add, optarg, "--cap-add"); break;
        case OPT_NNP: b->req.security.no_new_privileges = true; break;
        case OPT_SPEC: spec = optarg; break;
        case OPT_RESULT_BYTES: b->req.limits.result_output_bytes = parse_size(optarg); break;
        case OPT_LOG_BYTES: b->req.limits.log_file_bytes = parse_size(optarg); break;
        case OPT_QUIET: break; /* read by cmd_run itself */
        case OPT_HELP:
            usage_run(cmd);
            exit(0);
        default:
            die_usage("%s: unknown option", cmd);
        }
    }
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
    if (optind < argc)
        b->req.engine.cmd = argv + optind;
    if (spec) {
        FILE *f = strcmp(spec, "-") ? fopen(spec, "r") : stdin;
        if (!f)
            die_usage("--spec %s: %s", spec, strerror(errno));
        json_error_t jerr;
        json_t *j = json_loadf(f, 0, &jerr);
        if (f != stdin)
            fclose(f);
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
        return;
    }
    if (!b->req.execution_id) {
        gen_id(b->exec_id, sizeof(b->exec_id), "e-");
        b->req.execution_id = b->exec_id;
    }
    if (!b->req.job_id)
        b->req.job_id = b->req.execution_id;
}

static const dms_exec_request *the_request(const req_builder *b)
{
    return b->from_json ? b->from_json : &b->req;
}

/* ---- commands ---- */

static int cmd_start(int argc, char **argv)
{
    req_builder b;
    build_request(&b, "start", argc, argv);
    maybe_fall_back(the_request(&b));
    dms_executor *ex = open_executor();
    dms_error err = {0};
    const dms_exec_request *req = the_request(&b);
    int r = dms_executor_start(ex, req, &err);
    if (r == 0) {
        if (g.json)
            printf("{\"execution_id\":\"%s\",\"job_id\":\"%s\"}\n", req->execution_id, req->job_id);
        else
            printf("%s\n", req->execution_id);
    }
    close_executor(ex);
    dms_exec_request_free(b.from_json);
    return r < 0 ? fail(&err) : 0;
}

/* SIGINT/SIGTERM during `run` cancel the job, like docker run does. */
typedef struct sig_ctx {
    dms_executor *ex;
    const char *exec_id;
    sigset_t set;
} sig_ctx;

static void *signal_thread(void *arg)
{
    sig_ctx *s = arg;
    int sig;
    if (sigwait(&s->set, &sig) == 0) {
        fprintf(stderr, "dms-exec: signal %d: cancelling %s\n", sig, s->exec_id);
        dms_error err;
        dms_executor_cancel(s->ex, s->exec_id, &err);
    }
    return NULL;
}

static void write_all(FILE *f, const char *data, size_t len)
{
    fwrite(data, 1, len, f);
    fflush(f);
}

static int cmd_run(int argc, char **argv)
{
    bool quiet = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--quiet"))
            quiet = true;
    req_builder b;
    build_request(&b, "run", argc, argv);
    const dms_exec_request *req = the_request(&b);
    maybe_fall_back(req);
    dms_executor *ex = open_executor();
    sig_ctx sc = {.ex = ex, .exec_id = req->execution_id};
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
    pthread_t st;
    pthread_create(&st, NULL, signal_thread, &sc);
    pthread_detach(st);

    dms_error err = {0};
    dms_exec_result res = {0};
    int r = dms_executor_start(ex, req, &err);
    if (r < 0) {
        int code = fail(&err);
        /* A start that failed after validation left a result (outcome failed): exit as docker run does, 127 for a
         * program that does not exist, 126 for one that cannot run. */
        dms_error ignored;
        if (r == -DMS_E_START_FAILED && dms_executor_wait(ex, req->execution_id, 0, &res, &ignored) == 0)
            code = result_exit_code(&res);
        dms_exec_result_clear(&res);
        close_executor(ex);
        dms_exec_request_free(b.from_json);
        return code;
    }
    bool streamed = false;
    if (!quiet && !g.json) {
        dms_log_options lo = DMS_LOG_OPTIONS_INIT;
        lo.follow = true;
        dms_log_stream *s = NULL;
        if (dms_executor_log_stream(ex, req->execution_id, &lo, &s, &err) == 0) {
            dms_log_frame f;
            while ((r = dms_log_stream_next(s, -1, &f, &err)) > 0)
                write_all(f.stream == DMS_STREAM_STDERR ? stderr : stdout, f.data, f.len);
            dms_log_stream_free(s);
            streamed = r == 0;
        }
    }
    r = dms_executor_wait(ex, req->execution_id, -1, &res, &err);
    int code;
    if (r < 0) {
        code = fail(&err);
    } else {
        if (g.json || !streamed || res.outcome != DMS_OUTCOME_EXITED || res.exit_code != 0)
            print_result(req->execution_id, &res, !streamed && !g.json && !quiet);
        code = result_exit_code(&res);
    }
    dms_exec_result_clear(&res);
    close_executor(ex);
    dms_exec_request_free(b.from_json);
    return code;
}

static const char *need_exec_id(int argc, char **argv, const char *cmd)
{
    if (optind >= argc)
        die_usage("%s: an execution id is required", cmd);
    return argv[optind];
}

static int simple_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s", usage);
            exit(0);
        }
    return 0;
}

static int cmd_wait(int argc, char **argv)
{
    static const struct option lo[] = {{"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int64_t timeout = -1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", lo, NULL)) != -1) {
        if (c == 't') {
            if ((timeout = parse_duration(optarg)) < 0)
                die_usage("--timeout %s: not a duration", optarg);
        } else if (c == 'h') {
            printf("usage: dms-exec wait [--timeout DURATION] EXEC_ID\n\nWaits until the execution ends and prints its "
                   "result; exits with its exit code. A timeout (exit 125, error TIMEOUT) leaves the job running.\n");
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

static int cmd_cancel(int argc, char **argv)
{
    static const struct option lo[] = {{"grace", required_argument, NULL, 'g'}, {"now", no_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
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
            printf("usage: dms-exec cancel [--grace DURATION | --now] EXEC_ID\n\nStops an execution: SIGTERM, then "
                   "SIGKILL after its grace period (the one it was\nstarted with, or --grace); --now kills it at once. "
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
    if (g.json)
        printf("{\"execution_id\":\"%s\",\"cancelled\":true}\n", id);
    return 0;
}

static int cmd_logs(int argc, char **argv)
{
    static const struct option lo[] = {
        {"follow", no_argument, NULL, 'f'},         {"tail", required_argument, NULL, 'n'},
        {"since", required_argument, NULL, 's'},    {"stdout", no_argument, NULL, 'o'},
        {"stderr", no_argument, NULL, 'e'},         {"timestamps", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    bool only_out = false, only_err = false, ts = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fn:s:oeth", lo, NULL)) != -1) {
        switch (c) {
        case 'f': opts.follow = true; break;
        case 'n':
            if (!strcmp(optarg, "all"))
                opts.tail_lines = -1;
            else if ((opts.tail_lines = strtoll(optarg, NULL, 10)) < 0 || !*optarg)
                die_usage("--tail %s: a line count or all", optarg);
            break;
        case 's': opts.since_ns = strtoll(optarg, NULL, 10); break;
        case 'o': only_out = true; break;
        case 'e': only_err = true; break;
        case 't': ts = true; break;
        case 'h':
            printf("usage: dms-exec logs [-f] [--tail N|all] [--since NS] [--stdout|--stderr] [--timestamps] EXEC_ID\n"
                   "\nPrints an execution's output from the executor's own capture (works after the container is\n"
                   "gone). -f follows until the execution ends. --since takes a wall-clock time in ns (inclusive).\n"
                   "--json prints one JSON object per frame.\n");
            return 0;
        default:
            die_usage("logs: unknown option");
        }
    }
    opts.no_stdout = only_err;
    opts.no_stderr = only_out;
    const char *id = need_exec_id(argc, argv, "logs");
    dms_executor *ex = open_executor_for(id);
    dms_error err = {0};
    dms_log_stream *s = NULL;
    int r = dms_executor_log_stream(ex, id, &opts, &s, &err);
    if (r == 0) {
        dms_log_frame f;
        while ((r = dms_log_stream_next(s, -1, &f, &err)) > 0) {
            if (g.json) {
                char *clean = dms_utf8_sanitize(f.data, f.len, NULL);
                json_t *o = clean ? json_pack("{s:s,s:I,s:s,s:b}", "stream",
                                              f.stream == DMS_STREAM_STDERR ? "stderr" : "stdout", "ts_ns",
                                              (json_int_t)f.ts_ns, "data", clean, "partial", f.partial)
                                  : NULL;
                free(clean);
                char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (js)
                    printf("%s\n", js);
                free(js);
                json_decref(o);
                fflush(stdout);
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
    if (g.json) {
        json_t *ports = json_array();
        for (size_t i = 0; i < s->n_ports; i++)
            json_array_append_new(ports, json_pack("{s:i,s:i,s:s}", "container", s->ports[i].container_port, "host",
                                                   s->ports[i].host_port, "protocol", s->ports[i].protocol));
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s,s:o,s:s}", "execution_id", s->execution_id, "job_id",
                              s->job_id, "state", dms_state_name(s->state), "outcome", dms_outcome_name(s->outcome),
                              "exit_code", s->exit_code, "started_at_ns", (json_int_t)s->started_at_ns,
                              "finished_at_ns", (json_int_t)s->finished_at_ns, "handle", s->handle, "ports", ports,
                              "ip_address", s->ip_address);
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

static int cmd_status(int argc, char **argv)
{
    simple_help(argc, argv, "usage: dms-exec status EXEC_ID\n\nWhere an execution stands: state, outcome, exit code, "
                            "container, published ports.\n");
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

static int cmd_ls(int argc, char **argv)
{
    simple_help(argc, argv, "usage: dms-exec ls\n\nLists this executor's executions (found through labels and state, "
                            "not memory).\n");
    dms_executor *ex = open_executor();
    dms_error err = {0};
    dms_exec_status *list = NULL;
    size_t n = 0;
    int r = dms_executor_list(ex, &list, &n, &err);
    if (r == 0) {
        if (!g.json)
            printf("%-24s %-10s %-12s %5s  %s\n", "EXECUTION", "STATE", "OUTCOME", "EXIT", "HANDLE");
        for (size_t i = 0; i < n; i++)
            print_status(&list[i]);
    }
    free(list);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

static int cmd_rm(int argc, char **argv)
{
    simple_help(argc, argv, "usage: dms-exec rm EXEC_ID\n\nForgets a finished execution: its container (if kept), "
                            "state and captured logs.\n");
    optind = 1;
    const char *id = need_exec_id(argc, argv, "rm");
    dms_executor *ex = open_executor_for(id);
    dms_error err = {0};
    int r = dms_executor_remove(ex, id, &err);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

static int cmd_cleanup(int argc, char **argv)
{
    simple_help(argc, argv, "usage: dms-exec cleanup\n\nRemoves every container (running or not), network, volume and "
                            "image carrying this executor's\nlabels, and its execution state. Idempotent.\n");
    dms_executor *ex = open_executor();
    dms_error err = {0};
    dms_cleanup_report rep = {0};
    int r = dms_executor_cleanup(ex, &rep, &err);
    if (g.json)
        printf("{\"containers\":%d,\"networks\":%d,\"volumes\":%d,\"images\":%d,\"state_dirs\":%d,\"errors\":%d}\n",
               rep.containers, rep.networks, rep.volumes, rep.images, rep.state_dirs, rep.errors);
    else
        printf("removed: %d containers, %d networks, %d volumes, %d images, %d state dirs; %d errors\n", rep.containers,
               rep.networks, rep.volumes, rep.images, rep.state_dirs, rep.errors);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

static int cmd_recover(int argc, char **argv)
{
    simple_help(argc, argv, "usage: dms-exec recover\n\nRe-adopts what this executor id left behind: running "
                            "executions are tracked again,\nfinished ones get their real result (never a second run).\n");
    dms_executor *ex = open_executor();
    dms_error err = {0};
    size_t n = 0;
    int r = dms_executor_recover(ex, &n, &err);
    if (r == 0)
        printf(g.json ? "{\"adopted\":%zu}\n" : "adopted %zu executions\n", n);
    close_executor(ex);
    return r < 0 ? fail(&err) : 0;
}

static int cmd_is_installed(int argc, char **argv)
{
    simple_help(argc, argv, "usage: dms-exec is-installed\n\nExit 0 if the backend can run work now; else exit 1 and "
                            "say why.\n");
    dms_error err = {0};
    if (dms_registry_open(&reg, g.plugin_dir, &err) < 0)
        return fail(&err);
    static char *optv[MAX_LIST + 1];
    for (size_t i = 0; i < g.n_backend_opts; i++)
        optv[i] = g.backend_opts[i];
    dms_executor_config cfg = {.state_dir = g.state_dir, .options = optv};
    dms_executor *ex = NULL;
    bool ok = false;
    if (dms_executor_open(&ex, reg, g.backend, g.executor_id, &cfg, &err) == 0)
        ok = dms_executor_is_installed(ex, &err);
    if (g.json)
        printf("{\"backend\":\"%s\",\"installed\":%s,\"reason\":\"%s\"}\n", g.backend, ok ? "true" : "false",
               ok ? "" : err.message);
    else if (ok)
        printf("%s: installed\n", g.backend);
    else
        printf("%s: not installed: %s\n", g.backend, err.message);
    dms_executor_close(ex);
    dms_registry_close(reg);
    return ok ? 0 : 1;
}

static int cmd_backends(int argc, char **argv)
{
    simple_help(argc, argv, "usage: dms-exec backends\n\nLists the backend plugins found in the plugin directory.\n");
    dms_error err = {0};
    if (dms_registry_open(&reg, g.plugin_dir, &err) < 0)
        return fail(&err);
    dms_backend_info *infos = NULL;
    size_t n = 0;
    int r = dms_registry_list(reg, &infos, &n, &err);
    if (r == 0) {
        if (!g.json)
            printf("plugin directory: %s\n", dms_registry_dir(reg));
        for (size_t i = 0; i < n; i++) {
            if (g.json)
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
    fwrite(line, 1, len, f);
    fputc('\n', f);
    fflush(f);
}

static int cmd_build(int argc, char **argv)
{
    static const struct option lo[] = {
        {"tag", required_argument, NULL, 't'}, {"file", required_argument, NULL, 'f'},
        {"build-arg", required_argument, NULL, 'a'}, {"no-cache", no_argument, NULL, 'n'},
        {"id", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    dms_build_request br = {0};
    char *args[MAX_LIST + 1] = {0};
    size_t na = 0;
    char idbuf[DMS_ID_MAX + 1];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:f:a:ni:h", lo, NULL)) != -1) {
        switch (c) {
        case 't': br.tag = optarg; break;
        case 'f': br.dockerfile = optarg; break;
        case 'a':
            if (na < MAX_LIST)
                args[na++] = optarg;
            break;
        case 'n': br.no_cache = true; break;
        case 'i': br.build_id = optarg; break;
        case 'h':
            printf("usage: dms-exec build --tag IMAGE [--file Dockerfile] [--build-arg K=V] [--no-cache] CONTEXT_DIR\n"
                   "\nBuilds an image (labelled with this executor's id) and streams the build output.\n"
                   "Exit 1 when the Dockerfile failed (your build), 125 when the engine did.\n");
            return 0;
        default:
            die_usage("build: unknown option");
        }
    }
    if (optind >= argc)
        die_usage("build: a context directory is required");
    br.context_dir = argv[optind];
    if (!br.tag)
        die_usage("build: --tag is required");
    if (na)
        br.build_args = args;
    if (!br.build_id) {
        gen_id(idbuf, sizeof(idbuf), "b-");
        br.build_id = idbuf;
    }
    dms_executor *ex = open_executor();
    dms_error err = {0};
    dms_build_result res;
    int r = dms_executor_build(ex, &br, g.json ? NULL : build_output, NULL, NULL, &res, &err);
    if (r == 0)
        printf(g.json ? "{\"image_id\":\"%s\"}\n" : "built %s\n", res.image_id);
    close_executor(ex);
    if (r == -DMS_E_BUILD_FAILED) {
        fail(&err);
        return 1;
    }
    return r < 0 ? fail(&err) : 0;
}

static void usage(FILE *f)
{
    fprintf(f,
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

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"executor", required_argument, NULL, 'x'}, {"id", required_argument, NULL, 'i'},
        {"state-dir", required_argument, NULL, 's'}, {"plugin-dir", required_argument, NULL, 'p'},
        {"option", required_argument, NULL, 'o'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},            {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    g.backend = getenv("DMS_EXECUTOR") && *getenv("DMS_EXECUTOR") ? getenv("DMS_EXECUTOR") : "docker";
    g.backend_chosen = getenv("DMS_EXECUTOR") && *getenv("DMS_EXECUTOR");
    g.executor_id = getenv("DMS_EXECUTOR_ID") && *getenv("DMS_EXECUTOR_ID") ? getenv("DMS_EXECUTOR_ID") : "dms-exec";
    int c;
    while ((c = getopt_long(argc, argv, "+x:i:o:h", lo, NULL)) != -1) {
        switch (c) {
        case 'x':
            g.backend = optarg;
            g.backend_chosen = true;
            break;
        case 'i': g.executor_id = optarg; break;
        case 's': g.state_dir = optarg; break;
        case 'p': g.plugin_dir = optarg; break;
        case 'o':
            if (g.n_backend_opts < MAX_LIST)
                g.backend_opts[g.n_backend_opts++] = optarg;
            break;
        case 'j': g.json = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("dms-exec %s\n", DMS_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
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
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", cmd_run},       {"start", cmd_start},       {"wait", cmd_wait},     {"cancel", cmd_cancel},
        {"logs", cmd_logs},     {"status", cmd_status},     {"ls", cmd_ls},         {"rm", cmd_rm},
        {"cleanup", cmd_cleanup}, {"recover", cmd_recover}, {"build", cmd_build},   {"is-installed", cmd_is_installed},
        {"backends", cmd_backends},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(cmd, cmds[i].name)) {
            int r = cmds[i].fn(sub_argc, sub_argv);
            fflush(stdout);
            return r;
        }
    die_usage("unknown command \"%s\"", cmd);
}
