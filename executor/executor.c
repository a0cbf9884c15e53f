/* executor.c - executor objects: one per (backend, id) in a registry, wrapping the plugin's ops with the
 * parts every backend shares (request validation, run = start + wait, the default logger, state directories).
 */
#include <dms/plugin.h>

#include <curl/curl.h> /* constants only: libcurl is loaded at run time */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>

#include "registry.h"
#include "util.h"

struct dms_executor {
    dms_registry *reg;
    dms_plugin *plugin;
    const dms_executor_ops *ops;
    void *cookie;
    char *id;
    char *state_dir;
    char **options;
    dms_host_services host;
    int refs; /* under reg->lock */
    dms_executor *next;
};

/* ---- process-wide ---- */

/* libcurl is loaded here at run time, not linked: the library is also used by programs that never talk HTTP
 * (the process backend's per-job supervisor), and linking libcurl made each of their starts load 15 more
 * libraries
 * (~6 ms). The Docker backend links libcurl itself; this makes sure it is initialised once, before threads.
 */
typedef int (*curl_global_init_fn)(long);
typedef void (*curl_global_cleanup_fn)(void);

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;
static void *curl_lib;

static void global_init_once(void)
{
    curl_lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_GLOBAL);
    if (!curl_lib)
        return; /* no libcurl: only backends that need it care, and they link it */
    curl_global_init_fn init;
    void *sym = dlsym(curl_lib, "curl_global_init");
    memcpy(&init, &sym, sizeof(init));
    global_rc = init ? init(CURL_GLOBAL_DEFAULT) : 0;
}

int dms_global_init(dms_error *err)
{
    pthread_once(&global_once, global_init_once);
    if (global_rc != 0)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "curl_global_init failed (code %d)", global_rc);
    return 0;
}

void dms_global_cleanup(void)
{
    if (!curl_lib)
        return;
    curl_global_cleanup_fn cleanup;
    void *sym = dlsym(curl_lib, "curl_global_cleanup");
    memcpy(&cleanup, &sym, sizeof(cleanup));
    if (cleanup)
        cleanup();
}

/* ---- the default logger ---- */

static int stderr_level(void)
{
    static int level = -1;
    if (level < 0) {
        const char *s = getenv("DMS_LOG_LEVEL");
        level = DMS_LOG_WARN;
        if (s && strcmp(s, "error") == 0)
            level = DMS_LOG_ERROR;
        else if (s && strcmp(s, "info") == 0)
            level = DMS_LOG_INFO;
        else if (s && strcmp(s, "debug") == 0)
            level = DMS_LOG_DEBUG;
    }
    return level;
}

void dms_log_stderr(void *ctx, dms_log_level level, const char *msg)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if ((int)level > stderr_level())
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    (void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line: stdio locks the stream, so concurrent lines do not interleave. */
    fprintf(stderr, "%s.%03ldZ level=%s %s\n", when, ts.tv_nsec / 1000000, names[level & 3], msg);
}

/* ---- state directory ---- */

static char *default_state_root(void)
{
    const char *s = getenv("DMS_STATE_DIR");
    if (s && *s)
        return strdup(s);
    s = getenv("DMS_DATA_DIR");
    if (s && *s)
        return dmsu_strdup_printf("%s/exec", s);
    if (geteuid() == 0)
        return strdup("/var/lib/dms/exec");
    s = getenv("XDG_STATE_HOME");
    if (s && *s)
        return dmsu_strdup_printf("%s/dms/exec", s);
    s = getenv("HOME");
    return dmsu_strdup_printf("%s/.local/state/dms/exec", s && *s ? s : "/tmp");
}

/* ---- open/close ---- */

int dms_executor_open(dms_executor **out, dms_registry *reg, const char *backend, const char *executor_id,
                      const dms_executor_config *cfg, dms_error *err)
{
    if (!dms_id_valid(executor_id))
        return dms_error_set(
            err, DMS_E_INVALID, "executor_id",
            "executor id \"%.40s\" must be 1-%d characters of [A-Za-z0-9_.-], starting with a "
            "letter or digit",
            executor_id ? executor_id : "", DMS_ID_MAX);
    if (!backend || !*backend)
        return dms_error_set(err, DMS_E_INVALID, "backend",
                             "a backend name is required (docker, process, ...)");
    int r = dms_global_init(err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&reg->lock);
    for (dms_executor *e = reg->executors; e; e = e->next)
        if (strcmp(e->plugin->name, backend) == 0 && strcmp(e->id, executor_id) == 0) {
            e->refs++;
            pthread_mutex_unlock(&reg->lock);
            *out = e;
            return 0;
        }
    dms_plugin *p;
    r = dms_registry_load(reg, backend, &p, err);
    if (r < 0) {
        pthread_mutex_unlock(&reg->lock);
        return r;
    }
    dms_executor *ex = calloc(1, sizeof(*ex));
    _cleanup_free_ char *root = cfg && cfg->state_dir ? strdup(cfg->state_dir) : default_state_root();
    if (!ex || !root || !(ex->id = strdup(executor_id)) ||
        !(ex->state_dir = dmsu_strdup_printf("%s/%s/%s", root, backend, executor_id)) ||
        !(ex->options = cfg && cfg->options ? dmsu_strv_copy(cfg->options) : calloc(1, sizeof(char *)))) {
        if (ex) {
            free(ex->id);
            free(ex->state_dir);
        }
        free(ex);
        pthread_mutex_unlock(&reg->lock);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    if ((r = dms_mkdir_p(ex->state_dir, false, err)) < 0) {
        dms_error_prefix(err, "executor %s/%s state: ", backend, executor_id);
        goto fail;
    }
    ex->reg = reg;
    ex->plugin = p;
    ex->ops = p->ops;
    ex->refs = 1;
    ex->host = (dms_host_services){
        .abi_version = DMS_EXECUTOR_ABI_VERSION,
        .size = sizeof(dms_host_services),
        .log = cfg && cfg->log ? cfg->log : dms_log_stderr,
        .log_ctx = cfg && cfg->log ? cfg->log_ctx : NULL,
        .state_dir = ex->state_dir,
        .options = ex->options,
    };
    if ((r = ex->ops->create(&ex->cookie, executor_id, &ex->host, err)) < 0)
        goto fail;
    p->users++;
    reg->alive++;
    ex->next = reg->executors;
    reg->executors = ex;
    pthread_mutex_unlock(&reg->lock);
    *out = ex;
    return 0;
fail:
    pthread_mutex_unlock(&reg->lock);
    dmsu_strv_free(ex->options);
    free(ex->state_dir);
    free(ex->id);
    free(ex);
    return r;
}

void dms_executor_close(dms_executor *ex)
{
    if (!ex)
        return;
    dms_registry *reg = ex->reg;
    pthread_mutex_lock(&reg->lock);
    if (--ex->refs > 0) {
        pthread_mutex_unlock(&reg->lock);
        return;
    }
    for (dms_executor **pp = &reg->executors; *pp; pp = &(*pp)->next)
        if (*pp == ex) {
            *pp = ex->next;
            break;
        }
    ex->plugin->users--;
    pthread_mutex_unlock(&reg->lock);
    ex->ops->destroy(ex->cookie);
    dmsu_strv_free(ex->options);
    free(ex->state_dir);
    free(ex->id);
    free(ex);
    /* The registry was closed while we were open: it goes with the last executor, once its destroy has
     * returned (the plugin's code must stay mapped until then). Exactly one closer sees the count reach zero.
     */
    pthread_mutex_lock(&reg->lock);
    bool free_reg = --reg->alive == 0 && reg->closed;
    pthread_mutex_unlock(&reg->lock);
    if (free_reg)
        dms_registry_free(reg);
}

const char *dms_executor_backend(const dms_executor *ex)
{
    return ex->plugin->name;
}

const char *dms_executor_id(const dms_executor *ex)
{
    return ex->id;
}

/* ---- operations ---- */

static int check_exec_id(const char *id, dms_error *err)
{
    if (!dms_id_valid(id))
        return dms_error_set(
            err, DMS_E_INVALID, "execution_id",
            "execution id \"%.40s\" must be 1-%d characters of [A-Za-z0-9_.-], starting with a "
            "letter or digit",
            id ? id : "", DMS_ID_MAX);
    return 0;
}

static int not_supported(const dms_executor *ex, const char *op, dms_error *err)
{
    return dms_error_set(err, DMS_E_NOT_SUPPORTED, NULL, "backend %s does not support %s", ex->plugin->name,
                         op);
}

bool dms_executor_is_installed(dms_executor *ex, dms_error *why)
{
    return ex->ops->is_installed(ex->cookie, why);
}

int dms_executor_start(dms_executor *ex, const dms_exec_request *req, dms_error *err)
{
    int r = dms_exec_request_validate(req, err);
    if (r < 0)
        return r;
    return ex->ops->start(ex->cookie, req, err);
}

int dms_executor_waiter(dms_executor *ex, const char *execution_id, dms_waiter **out, dms_error *err)
{
    int r = check_exec_id(execution_id, err);
    if (r < 0)
        return r;
    return ex->ops->subscribe(ex->cookie, execution_id, out, err);
}

int dms_executor_wait(dms_executor *ex, const char *execution_id, int64_t timeout_ms, dms_exec_result *out,
                      dms_error *err)
{
    dms_waiter *w = NULL;
    int r = dms_executor_waiter(ex, execution_id, &w, err);
    if (r < 0)
        return r;
    r = dms_waiter_result(w, timeout_ms, out, err);
    dms_waiter_free(w);
    return r;
}

int dms_executor_cancel(dms_executor *ex, const char *execution_id, dms_error *err)
{
    return dms_executor_cancel_grace(ex, execution_id, -1, err);
}

int dms_executor_cancel_grace(dms_executor *ex, const char *execution_id, int64_t grace_ms, dms_error *err)
{
    int r = check_exec_id(execution_id, err);
    if (r < 0)
        return r;
    return ex->ops->cancel(ex->cookie, execution_id, DMS_CANCEL_USER, grace_ms < 0 ? -1 : grace_ms, err);
}

int dms_executor_log_stream(dms_executor *ex, const char *execution_id, const dms_log_options *opts,
                            dms_log_stream **out, dms_error *err)
{
    int r = check_exec_id(execution_id, err);
    if (r < 0)
        return r;
    if (opts && opts->no_stdout && opts->no_stderr)
        return dms_error_set(err, DMS_E_INVALID, "streams", "choose stdout, stderr or both");
    return ex->ops->log_stream(ex->cookie, execution_id, opts, out, err);
}

int dms_executor_run(dms_executor *ex, const dms_exec_request *req, dms_exec_result *out, dms_error *err)
{
    int r = dms_executor_start(ex, req, err);
    if (r < 0) {
        /* A start that failed after validation has still recorded a result (outcome FAILED): hand it over
         * too. */
        if (r != -DMS_E_INVALID && r != -DMS_E_ALREADY_STARTED && r != -DMS_E_ALREADY_COMPLETE) {
            dms_error ignored;
            dms_executor_wait(ex, req->execution_id, 0, out, &ignored);
        }
        return r;
    }
    /* The run timeout belongs to the job (the backend enforces it), so the wait itself needs none. */
    return dms_executor_wait(ex, req->execution_id, -1, out, err);
}

int dms_executor_cleanup(dms_executor *ex, dms_cleanup_report *report, dms_error *err)
{
    dms_cleanup_report local = {0};
    if (!report)
        report = &local;
    memset(report, 0, sizeof(*report));
    return ex->ops->cleanup(ex->cookie, report, err);
}

int dms_executor_status(dms_executor *ex, const char *execution_id, dms_exec_status *out, dms_error *err)
{
    int r = check_exec_id(execution_id, err);
    if (r < 0)
        return r;
    if (!ex->ops->status)
        return not_supported(ex, "status", err);
    memset(out, 0, sizeof(*out));
    return ex->ops->status(ex->cookie, execution_id, out, err);
}

/* The array dms_executor_list hands its caller, grown by the plugin's callback. */
typedef struct status_list {
    dms_exec_status *items;
    size_t n, cap;
} status_list;

static int collect_status(void *userdata, const dms_exec_status *status)
{
    status_list *l = userdata;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof(*l->items))
            return -DMS_E_NOMEM;
        dms_exec_status *items = realloc(l->items, cap * sizeof(*items));
        if (!items)
            return -DMS_E_NOMEM;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = *status;
    return 0;
}

static int by_execution_id(const void *a, const void *b)
{
    return strcmp(((const dms_exec_status *)a)->execution_id, ((const dms_exec_status *)b)->execution_id);
}

int dms_executor_list(dms_executor *ex, dms_exec_status **out, size_t *n, dms_error *err)
{
    if (!ex->ops->list)
        return not_supported(ex, "list", err);
    status_list l = {0};
    int r = ex->ops->list(ex->cookie, collect_status, &l, err);
    if (r == 0 && !l.items && !(l.items = calloc(1, sizeof(*l.items))))
        r = -DMS_E_NOMEM;
    if (r < 0) {
        free(l.items);
        return r == -DMS_E_NOMEM ? dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory") : r;
    }
    qsort(l.items, l.n, sizeof(*l.items), by_execution_id); /* backends report in their own order */
    *out = l.items;
    *n = l.n;
    return 0;
}

int dms_executor_remove(dms_executor *ex, const char *execution_id, dms_error *err)
{
    int r = check_exec_id(execution_id, err);
    if (r < 0)
        return r;
    if (!ex->ops->remove)
        return not_supported(ex, "remove", err);
    return ex->ops->remove(ex->cookie, execution_id, err);
}

int dms_executor_recover(dms_executor *ex, size_t *adopted, dms_error *err)
{
    size_t local = 0;
    if (!ex->ops->recover)
        return not_supported(ex, "recover", err);
    return ex->ops->recover(ex->cookie, adopted ? adopted : &local, err);
}

int dms_executor_build(dms_executor *ex, const dms_build_request *req, dms_build_output_fn out,
                       void *userdata, dms_cancel_token *cancel, dms_build_result *result, dms_error *err)
{
    if (!ex->ops->build)
        return not_supported(ex, "build", err);
    if (!req || !dms_id_valid(req->build_id))
        return dms_error_set(err, DMS_E_INVALID, "build_id",
                             "build_id must be 1-%d characters of [A-Za-z0-9_.-]", DMS_ID_MAX);
    if (req->job_id && !dms_id_valid(req->job_id))
        return dms_error_set(err, DMS_E_INVALID, "job_id", "job_id must be 1-%d characters of [A-Za-z0-9_.-]",
                             DMS_ID_MAX);
    if (!req->context_dir || !*req->context_dir)
        return dms_error_set(err, DMS_E_INVALID, "context_dir", "context_dir is required");
    if (!req->tag || !dms_image_ref_valid(req->tag))
        return dms_error_set(err, DMS_E_INVALID, "tag", "tag \"%.128s\" is not a valid image reference",
                             req->tag ? req->tag : "");
    if (req->target && (strlen(req->target) > 128 || !dms_id_valid(req->target)))
        return dms_error_set(err, DMS_E_INVALID, "target",
                             "target must be a stage name: 1-128 characters of [A-Za-z0-9_.-]");
    if (req->dockerfile && (req->dockerfile[0] == '/' || strstr(req->dockerfile, "..")))
        return dms_error_set(err, DMS_E_INVALID, "dockerfile",
                             "dockerfile must be a path inside the context");
    if (req->memory_bytes < 0 || (req->memory_bytes > 0 && req->memory_bytes < DMS_MEMORY_MIN_BYTES))
        return dms_error_set(err, DMS_E_INVALID, "memory_bytes",
                             "memory_bytes must be 0 (no limit) or at least %lld",
                             (long long)DMS_MEMORY_MIN_BYTES);
    if (req->cpu_millis < 0)
        return dms_error_set(err, DMS_E_INVALID, "cpu_millis", "cpu_millis must be 0 (no limit) or more");
    memset(result, 0, sizeof(*result));
    return ex->ops->build(ex->cookie, req, out, userdata, cancel, result, err);
}

int dms_executor_remove_image(dms_executor *ex, const char *image, dms_error *err)
{
    if (!ex->ops->remove_image)
        return not_supported(ex, "remove_image", err);
    if (!image || !*image)
        return dms_error_set(err, DMS_E_INVALID, "image", "image is required");
    return ex->ops->remove_image(ex->cookie, image, err);
}

int dms_executor_image_info(dms_executor *ex, const char *image, dms_image_info *out, dms_error *err)
{
    if (!ex->ops->image_info)
        return not_supported(ex, "image_info", err);
    if (!image || (!dms_image_ref_valid(image) && strncmp(image, "sha256:", 7) != 0))
        return dms_error_set(err, DMS_E_INVALID, "image", "\"%.128s\" is not an image reference or id",
                             image ? image : "");
    memset(out, 0, sizeof(*out));
    return ex->ops->image_info(ex->cookie, image, out, err);
}

int dms_executor_remove_volume(dms_executor *ex, const char *name, dms_error *err)
{
    if (!ex->ops->remove_volume)
        return not_supported(ex, "remove_volume", err);
    if (!dms_id_valid(name))
        return dms_error_set(err, DMS_E_INVALID, "name",
                             "volume name \"%.64s\" must be [A-Za-z0-9][A-Za-z0-9_.-]*", name ? name : "");
    return ex->ops->remove_volume(ex->cookie, name, err);
}

int dms_executor_remove_network(dms_executor *ex, const char *name, dms_error *err)
{
    if (!ex->ops->remove_network)
        return not_supported(ex, "remove_network", err);
    if (!dms_id_valid(name))
        return dms_error_set(err, DMS_E_INVALID, "name",
                             "network name \"%.64s\" must be [A-Za-z0-9][A-Za-z0-9_.-]*", name ? name : "");
    return ex->ops->remove_network(ex->cookie, name, err);
}
