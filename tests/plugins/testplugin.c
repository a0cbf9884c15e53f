/* testplugin.c - backends for the registry's tests (tests/unit/test_registry.c), one source built several
 * ways.
 *
 * Built as is, it is "memtest": a trivial in-memory backend that "runs" a request at once. Its stdout is the
 * request's cmd, one item per line ("err:" items go to stderr), captured through the log store; its exit code
 * is the env value EXIT (default 0); cmd ["fail"] fails to start. The result is published through a result
 * cell before start() returns. It logs "memtest op=<op> id=<executor id>" through the host's logger so a test
 * can count creates and destroys. Option fail_create=1 makes create() fail; installed=0 makes is_installed()
 * false.
 *
 * The -D switches build the broken plugins the registry must refuse (see plugins.mk):
 *   TP_NAME="x"    the name in the table      TP_ABI=n       the ABI version in the table
 *   TP_SHORT       a too-short table          TP_MISSING_OP  no cleanup op
 *   TP_NO_ENTRY    the entry not exported     TP_NULL_OPS    the entry returns NULL
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <dms/backend.h>
#include <dms/plugin.h>

#ifndef TP_NAME
#define TP_NAME "memtest"
#endif
#ifndef TP_ABI
#define TP_ABI DMS_EXECUTOR_ABI_VERSION
#endif
#ifdef TP_SHORT
#define TP_SIZE ((uint32_t)offsetof(dms_executor_ops, status))
#else
#define TP_SIZE ((uint32_t)sizeof(dms_executor_ops))
#endif

typedef struct mt_exec {
    char id[DMS_ID_MAX + 1];
    char job[DMS_ID_MAX + 1];
    char *dir;
    dms_result_cell *cell;
    int64_t started_ns, finished_ns;
    struct mt_exec *next;
} mt_exec;

typedef struct mt {
    pthread_mutex_t lock;
    char id[DMS_ID_MAX + 1];
    const dms_host_services *host;
    bool installed;
    mt_exec *execs;
} mt;

static const char *opt(char *const *kv, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; kv && kv[i]; i++)
        if (strncmp(kv[i], key, kl) == 0 && kv[i][kl] == '=')
            return kv[i] + kl + 1;
    return NULL;
}

/* env EXIT=n: the exit code n, 0 without it; INVALID for anything but a whole decimal int. */
static int exit_code(const char *s, int *out, dms_error *err)
{
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s && (!*s || *end || errno || v < INT_MIN || v > INT_MAX))
        return dms_error_set(err, DMS_E_INVALID, "EXIT", "env EXIT=%s is not an exit code", s);
    *out = (int)v;
    return 0;
}

static mt_exec *find(mt *m, const char *id)
{
    for (mt_exec *e = m->execs; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static int mt_create(void **cookie, const char *executor_id, const dms_host_services *host, dms_error *err)
{
    if (host->abi_version != DMS_EXECUTOR_ABI_VERSION || host->size < sizeof(*host))
        return dms_error_set(err, DMS_E_PLUGIN, NULL, TP_NAME ": host services of ABI %u", host->abi_version);
    const char *fail = opt(host->options, "fail_create");
    if (fail && strcmp(fail, "1") == 0)
        return dms_error_set(err, DMS_E_UNAVAILABLE, NULL, TP_NAME ": cannot run work here (fail_create=1)");
    mt *m = calloc(1, sizeof(*m));
    if (!m)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->id, sizeof(m->id), "%s", executor_id);
    m->host = host;
    const char *inst = opt(host->options, "installed");
    m->installed = !(inst && strcmp(inst, "0") == 0);
    dms_logf(host, DMS_LOG_INFO, TP_NAME " op=create id=%s state=%s", executor_id, host->state_dir);
    *cookie = m;
    return 0;
}

static void mt_destroy(void *cookie)
{
    mt *m = cookie;
    dms_logf(m->host, DMS_LOG_INFO, TP_NAME " op=destroy id=%s", m->id);
    for (mt_exec *e = m->execs, *next; e; e = next) {
        next = e->next;
        dms_result_cell_unref(e->cell);
        free(e->dir);
        free(e);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool mt_is_installed(void *cookie, dms_error *why)
{
    mt *m = cookie;
    if (!m->installed)
        dms_error_set(why, DMS_E_UNAVAILABLE, NULL, TP_NAME ": installed=0");
    return m->installed;
}

/* Captures the cmd into the log store and fills the result from it. */
static int run_now(mt *m, mt_exec *e, const dms_exec_request *req, dms_exec_result *res, dms_error *err)
{
    dms_logstore_writer *w = NULL;
    int r = dms_logstore_writer_open(&w, e->dir, req->limits.log_file_bytes, err);
    if (r < 0)
        return r;
    for (size_t i = 0; req->engine.cmd && req->engine.cmd[i] && r == 0; i++) {
        const char *item = req->engine.cmd[i];
        dms_stream_type st = DMS_STREAM_STDOUT;
        if (strncmp(item, "err:", 4) == 0) {
            st = DMS_STREAM_STDERR;
            item += 4;
        }
        if ((r = dms_logstore_write(w, st, 0, item, strlen(item), err)) == 0)
            r = dms_logstore_write(w, st, 0, "\n", 1, err);
    }
    if (r == 0)
        r = dms_logstore_finish(w, err);
    dms_logstore_writer_free(w);
    if (r < 0)
        return r;
    size_t cap = req->limits.result_output_bytes > 0 ? (size_t)req->limits.result_output_bytes
                                                     : DMS_DEFAULT_RESULT_OUTPUT_BYTES;
    for (int st = DMS_STREAM_STDOUT; st <= DMS_STREAM_STDERR; st++) {
        char *data = NULL;
        size_t len = 0;
        bool truncated = false;
        if ((r = dms_logstore_excerpt(e->dir, (dms_stream_type)st, cap, &data, &len, &truncated, err)) < 0)
            return r;
        r = dms_exec_result_set_output(res, st, data, len, truncated);
        free(data);
        if (r < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    res->outcome = DMS_OUTCOME_EXITED;
    if ((r = exit_code(opt(req->engine.env, "EXIT"), &res->exit_code, err)) < 0)
        return r;
    (void)m;
    return 0;
}

static int mt_start(void *cookie, const dms_exec_request *req, dms_error *err)
{
    mt *m = cookie;
    int r = 0;
    pthread_mutex_lock(&m->lock);
    dms_logf(m->host, DMS_LOG_INFO, TP_NAME " op=start id=%s exec=%s", m->id, req->execution_id);
    if (find(m, req->execution_id)) {
        pthread_mutex_unlock(&m->lock);
        return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id",
                             TP_NAME ": execution %s has finished", req->execution_id);
    }
    mt_exec *e = calloc(1, sizeof(*e));
    if (!e || !(e->cell = dms_result_cell_new())) {
        free(e);
        pthread_mutex_unlock(&m->lock);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    snprintf(e->id, sizeof(e->id), "%s", req->execution_id);
    snprintf(e->job, sizeof(e->job), "%s", req->job_id);
    /* Registered before anything can fail, so a started execution is never "not found". */
    e->next = m->execs;
    m->execs = e;
    dms_exec_result res = {.exit_code = -1};
    e->started_ns = dms_now_ns();
    size_t dl = strlen(m->host->state_dir) + strlen(e->id) + 2;
    e->dir = malloc(dl);
    if (!e->dir)
        r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    else {
        snprintf(e->dir, dl, "%s/%s", m->host->state_dir, e->id);
        r = dms_mkdir_p(e->dir, false, err);
    }
    if (r == 0 && req->engine.cmd && req->engine.cmd[0] && strcmp(req->engine.cmd[0], "fail") == 0)
        r = dms_error_set(err, DMS_E_START_FAILED, NULL, TP_NAME ": cmd \"fail\" cannot start");
    if (r == 0)
        r = run_now(m, e, req, &res, err);
    if (r < 0) {
        /* A start that fails still ends the execution with a result, so waiters learn why. */
        dms_exec_result_clear(&res);
        res.outcome = DMS_OUTCOME_FAILED;
        res.exit_code = -1;
        snprintf(res.error, sizeof(res.error), "%s", err ? err->message : "start failed");
    }
    e->finished_ns = dms_now_ns();
    res.started_at_ns = e->started_ns;
    res.finished_at_ns = e->finished_ns;
    dms_result_cell_publish(e->cell, &res);
    dms_exec_result_clear(&res);
    pthread_mutex_unlock(&m->lock);
    return r;
}

static int mt_subscribe(void *cookie, const char *execution_id, dms_waiter **out, dms_error *err)
{
    mt *m = cookie;
    pthread_mutex_lock(&m->lock);
    mt_exec *e = find(m, execution_id);
    int r =
        e ? dms_waiter_new_from_cell(e->cell, out, err)
          : dms_error_set(err, DMS_E_NOT_FOUND, "execution_id", TP_NAME ": no execution %s", execution_id);
    pthread_mutex_unlock(&m->lock);
    return r;
}

static int mt_cancel(void *cookie, const char *execution_id, dms_cancel_reason reason, int64_t grace_ms,
                     dms_error *err)
{
    mt *m = cookie;
    pthread_mutex_lock(&m->lock);
    bool known = find(m, execution_id) != NULL;
    pthread_mutex_unlock(&m->lock);
    (void)reason;
    if (!known)
        return dms_error_set(err, DMS_E_NOT_FOUND, "execution_id", TP_NAME ": no execution %s", execution_id);
    return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id", TP_NAME ": execution %s has finished",
                         execution_id);
}

static int mt_log_stream(void *cookie, const char *execution_id, const dms_log_options *opts,
                         dms_log_stream **out, dms_error *err)
{
    mt *m = cookie;
    pthread_mutex_lock(&m->lock);
    mt_exec *e = find(m, execution_id);
    int r =
        e ? dms_logstore_stream_open(e->dir, opts, NULL, NULL, NULL, out, err)
          : dms_error_set(err, DMS_E_NOT_FOUND, "execution_id", TP_NAME ": no execution %s", execution_id);
    pthread_mutex_unlock(&m->lock);
    return r;
}

static int mt_cleanup(void *cookie, dms_cleanup_report *report, dms_error *err)
{
    mt *m = cookie;
    int r = 0;
    pthread_mutex_lock(&m->lock);
    for (mt_exec *e = m->execs, *next; e; e = next) {
        next = e->next;
        if (e->dir && dms_rm_rf(e->dir, r == 0 ? err : NULL) < 0) {
            report->errors++;
            r = r ? r : -DMS_E_IO;
        } else {
            report->state_dirs++;
        }
        report->containers++;
        dms_result_cell_unref(e->cell);
        free(e->dir);
        free(e);
    }
    m->execs = NULL;
    pthread_mutex_unlock(&m->lock);
    return r;
}

static int mt_status(void *cookie, const char *execution_id, dms_exec_status *out, dms_error *err)
{
    mt *m = cookie;
    pthread_mutex_lock(&m->lock);
    mt_exec *e = find(m, execution_id);
    int r = 0;
    if (!e)
        r = dms_error_set(err, DMS_E_NOT_FOUND, "execution_id", TP_NAME ": no execution %s", execution_id);
    else {
        dms_exec_result res = {0};
        snprintf(out->execution_id, sizeof(out->execution_id), "%s", e->id);
        snprintf(out->job_id, sizeof(out->job_id), "%s", e->job);
        snprintf(out->handle, sizeof(out->handle), "mem:%s", e->id);
        out->state = DMS_STATE_FINISHED;
        out->started_at_ns = e->started_ns;
        out->finished_at_ns = e->finished_ns;
        if ((r = dms_result_cell_get(e->cell, &res, err)) == 0) {
            out->outcome = res.outcome;
            out->exit_code = res.exit_code;
        }
        dms_exec_result_clear(&res);
    }
    pthread_mutex_unlock(&m->lock);
    return r;
}

static const dms_executor_ops ops = {
    .abi_version = TP_ABI,
    .size = TP_SIZE,
    .name = TP_NAME,
    .description = "in-memory test backend (" TP_NAME ")",
    .create = mt_create,
    .destroy = mt_destroy,
    .is_installed = mt_is_installed,
    .start = mt_start,
    .subscribe = mt_subscribe,
    .cancel = mt_cancel,
    .log_stream = mt_log_stream,
#ifndef TP_MISSING_OP
    .cleanup = mt_cleanup,
#endif
    .status = mt_status,
};

#ifdef TP_MISSING_OP
/* Keeps the unused op referenced, so the build stays warning-free. */
int (*const tp_unused_cleanup)(void *, dms_cleanup_report *, dms_error *) = mt_cleanup;
#endif

#ifdef TP_NO_ENTRY
/* The classic mistake: built with -fvisibility=hidden and the entry not marked DMS_PLUGIN_EXPORT. */
const dms_executor_ops *dms_executor_plugin_entry(void);
#else
DMS_PLUGIN_EXPORT const dms_executor_ops *dms_executor_plugin_entry(void);
#endif

const dms_executor_ops *dms_executor_plugin_entry(void)
{
#ifdef TP_NULL_OPS
    (void)ops;
    return NULL;
#else
    return &ops;
#endif
}
