/* cli/exec_run.c - `dms-exec run` and `dms-exec start`: a workload from flags (exec_request.c), started; run
 * also streams its output, waits, and exits with its exit code. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "exec_request.h"

int cmd_start(int argc, char **argv)
{
    req_builder b;
    build_request(&b, "start", argc, argv);
    maybe_fall_back(the_request(&b));
    dms_executor *ex = open_executor();
    dms_error err = {0};
    const dms_exec_request *req = the_request(&b);
    int r = dms_executor_start(ex, req, &err);
    if (r == 0) {
        if (gopt.json)
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
    pthread_mutex_t lock; /* a cancel and the executor's close never overlap */
    bool closed;          /* under lock: the executor is gone, a late signal has nothing to cancel */
} sig_ctx;

static void *signal_thread(void *arg)
{
    sig_ctx *s = arg;
    int sig;
    if (sigwait(&s->set, &sig) == 0) {
        pthread_mutex_lock(&s->lock);
        if (!s->closed) {
            fprintf(stderr, "dms-exec: signal %d: cancelling %s\n", sig, s->exec_id);
            dms_error err;
            dms_executor_cancel(s->ex, s->exec_id, &err);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

/* Waits for a cancel in progress, then keeps any later signal away from the executor about to be closed. */
static void signals_done(sig_ctx *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc->closed = true;
    pthread_mutex_unlock(&sc->lock);
}

/* Blocks SIGINT and SIGTERM (the threads the library starts later inherit the mask) and has one thread wait
 * for them to cancel sc's execution. sc stays valid until the process exits. */
static void cancel_on_signals(sig_ctx *sc)
{
    sigemptyset(&sc->set);
    sigaddset(&sc->set, SIGINT);
    sigaddset(&sc->set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sc->set, NULL);
    pthread_t st;
    pthread_create(&st, NULL, signal_thread, sc);
    pthread_detach(st);
}

/* The start failed (r): the error, and the exit code. */
static int start_failed(dms_executor *ex, const dms_exec_request *req, int r, dms_error *err)
{
    dms_exec_result res = {0};
    int code = fail(err);
    /* A start that failed after validation left a result (outcome failed): exit as docker run does, 127 for a
     * program that does not exist, 126 for one that cannot run. */
    dms_error ignored;
    if (r == -DMS_E_START_FAILED && dms_executor_wait(ex, req->execution_id, 0, &res, &ignored) == 0)
        code = result_exit_code(&res);
    dms_exec_result_clear(&res);
    return code;
}

/* Follows the execution's output onto our stdout and stderr until it ends; true if all of it was shown. */
static bool stream_output(dms_executor *ex, const char *exec_id, dms_error *err)
{
    dms_log_options lo = DMS_LOG_OPTIONS_INIT;
    lo.follow = true;
    dms_log_stream *s = NULL;
    if (dms_executor_log_stream(ex, exec_id, &lo, &s, err) != 0)
        return false;
    dms_log_frame f;
    int r;
    while ((r = dms_log_stream_next(s, -1, &f, err)) > 0)
        write_all(f.stream == DMS_STREAM_STDERR ? stderr : stdout, f.data, f.len);
    dms_log_stream_free(s);
    return r == 0;
}

/* The started execution: its output (unless quiet or --json), then its result; returns the exit code. */
static int follow_and_wait(dms_executor *ex, const char *exec_id, bool quiet, dms_error *err)
{
    bool streamed = !quiet && !gopt.json && stream_output(ex, exec_id, err);
    dms_exec_result res = {0};
    int code;
    if (dms_executor_wait(ex, exec_id, -1, &res, err) < 0) {
        code = fail(err);
    } else {
        if (gopt.json || !streamed || res.outcome != DMS_OUTCOME_EXITED || res.exit_code != 0)
            print_result(exec_id, &res, !streamed && !gopt.json && !quiet);
        code = result_exit_code(&res);
    }
    dms_exec_result_clear(&res);
    return code;
}

int cmd_run(int argc, char **argv)
{
    bool quiet = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "--quiet"))
            quiet = true;
    req_builder b;
    build_request(&b, "run", argc, argv);
    const dms_exec_request *req = the_request(&b);
    maybe_fall_back(req);
    dms_executor *ex = open_executor();
    sig_ctx sc = {.ex = ex, .exec_id = req->execution_id, .lock = PTHREAD_MUTEX_INITIALIZER};
    cancel_on_signals(&sc);

    dms_error err = {0};
    int r = dms_executor_start(ex, req, &err);
    int code = r < 0 ? start_failed(ex, req, r, &err) : follow_and_wait(ex, req->execution_id, quiet, &err);
    signals_done(&sc);
    close_executor(ex);
    dms_exec_request_free(b.from_json);
    return code;
}
