/* process.c - the process backend: runs a request's argv as a plain host process, supervised by a detached
 * shim (dms-proc-shim) per execution. This file holds the ops table, create/destroy, and start: claiming the
 * execution directory and spawning the shim, with the spec the shim executes (built from the request by
 * spec.c).
 *
 * Nothing about an execution is kept in memory: its directory under the state dir is the whole truth, so a
 * second executor object, another process, or a restarted host sees the same thing (state.c reads it). No
 * thread per job: waiting is inotify on the directory, cancelling is a FIFO doorbell to the shim. */
#include "proc.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "security.h"
#include "util.h"

#define SHIM_HANDSHAKE_TIMEOUT_MS 30000 /* from spawn to "the workload runs" (or why not) */
#define SHIM_STATUS_MAX_BYTES     4096
#define FD_SPAWN_MIN              10 /* spawn fds go at or above this: dup2 onto 3 and 4 is never a no-op */

static const char *const known_options[] = {"shim", "cgroups", NULL};

/* ---- create / destroy / is_installed ---- */

static int anchor; /* any address inside this .so, for dladdr */

/* The shim travels with the plugin: <dir of this .so>/dms-proc-shim, unless option shim= or $DMS_PROC_SHIM.
 */
static char *find_shim(const dms_host_services *host)
{
    const char *s = dmsu_kv_get(host->options, "shim");
    if (s && *s)
        return strdup(s);
    s = getenv("DMS_PROC_SHIM");
    if (s && *s)
        return strdup(s);
    Dl_info info;
    if (!dladdr(&anchor, &info) || !info.dli_fname)
        return NULL;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash)
        return strdup("./" PROC_SHIM_NAME);
    return dmsu_strdup_printf("%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, PROC_SHIM_NAME);
}

static void proc_destroy(void *cookie)
{
    proc_executor *p = cookie;
    if (!p)
        return;
    free(p->id);
    free(p->state_dir);
    free(p->shim_path);
    free(p);
}

static int proc_create(void **cookie, const char *executor_id, const dms_host_services *host, dms_error *err)
{
    for (size_t i = 0; host->options[i]; i++) {
        const char *o = host->options[i];
        const char *eq = strchr(o, '=');
        size_t kl = eq ? (size_t)(eq - o) : strlen(o);
        bool known = false;
        for (size_t k = 0; known_options[k]; k++)
            known = known || (strlen(known_options[k]) == kl && strncmp(o, known_options[k], kl) == 0);
        if (!eq || !known)
            return dms_error_set(
                err, DMS_E_INVALID, "options",
                "process backend: unknown option \"%.64s\" (known: shim=<path>, cgroups=auto|off)", o);
    }
    const char *cg = dmsu_kv_get(host->options, "cgroups");
    if (cg && strcmp(cg, "auto") != 0 && strcmp(cg, "off") != 0)
        return dms_error_set(err, DMS_E_INVALID, "options",
                             "process backend: cgroups must be auto or off, not %.32s", cg);
    proc_executor *p = calloc(1, sizeof(*p));
    if (!p)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    p->host = host;
    /* Absolute, because the shim and the workload's default working dir are handed paths inside it. */
    p->id = strdup(executor_id);
    p->state_dir = realpath(host->state_dir, NULL);
    p->shim_path = find_shim(host);
    if (!p->id || !p->state_dir || !p->shim_path) {
        int e = errno;
        proc_destroy(p);
        return dms_error_set_errno(err, DMS_E_UNAVAILABLE, e, "process backend: resolve state dir %s",
                                   host->state_dir);
    }
    if (access(p->shim_path, X_OK) != 0) {
        int e = errno;
        dms_error_set_errno(
            err, DMS_E_UNAVAILABLE, e,
            "process backend: supervisor %s is not an executable (build it with the plugin, or set "
            "option shim= or DMS_PROC_SHIM)",
            p->shim_path);
        proc_destroy(p);
        return -DMS_E_UNAVAILABLE;
    }
    char why[3 * (PATH_MAX + 16)];
    if (cg && strcmp(cg, "off") == 0)
        snprintf(why, sizeof(why), "off by option");
    else
        proc_cgroup_probe(&p->cg, why, sizeof(why));
    dms_logf(host, DMS_LOG_INFO, "backend=process executor=%s op=create shim=%s cgroups: %s", executor_id,
             p->shim_path, why);
    *cookie = p;
    return 0;
}

static bool proc_is_installed(void *cookie, dms_error *why)
{
    proc_executor *p = cookie;
    if (access(p->shim_path, X_OK) != 0) {
        dms_error_set_errno(why, DMS_E_UNAVAILABLE, errno, "supervisor %s", p->shim_path);
        return false;
    }
    if (access(p->state_dir, W_OK | X_OK) != 0) {
        dms_error_set_errno(why, DMS_E_UNAVAILABLE, errno, "state dir %s", p->state_dir);
        return false;
    }
    return true;
}

/* ---- start: claim, prepare, spawn ---- */

static int write_json_file(const char *dir, const char *name, const char *json, dms_error *err)
{
    char path[PATH_MAX];
    if (!json)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "path too long in %s", dir);
    return dms_write_file_atomic(path, json, strlen(json), err);
}

static int prepare_dir(const char *dir, const dms_exec_request *req, json_t *spec, dms_error *err)
{
    _cleanup_free_ char *rj = dms_exec_request_to_json(req);
    _cleanup_free_ char *sj = json_dumps(spec, JSON_COMPACT);
    int r;
    if ((r = write_json_file(dir, PROC_REQUEST_FILE, rj, err)) < 0 ||
        (r = write_json_file(dir, PROC_SPEC_FILE, sj, err)) < 0)
        return r;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" PROC_CTL_FIFO, dir);
    if (mkfifo(path, 0600) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", path);
    if (!req->engine.working_dir) {
        snprintf(path, sizeof(path), "%s/" PROC_WORK_DIR, dir);
        if (mkdir(path, DMS_PRIVATE_DIR_MODE) != 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", path);
        int64_t uid = json_integer_value(json_object_get(spec, "uid"));
        if (uid >= 0 && chown(path, (uid_t)uid, (gid_t)json_integer_value(json_object_get(spec, "gid"))) != 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "chown %s", path);
    }
    return 0;
}

/* The shim's verdict, read line by line from the status pipe: "SHIM <pid> <start>", then "OK <pid>" or
 * "ERR <code> <field>\t<message>". */
typedef struct handshake {
    pid_t shim_pid;
    uint64_t shim_start;
    bool ok;
    bool failed;
} handshake;

/* The first word of src (after spaces; up to a space, tab or newline) into dst, cut to fit. */
static void copy_word(char *dst, size_t size, const char *src)
{
    src += strspn(src, " ");
    size_t n = strcspn(src, " \t\r\n");
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void parse_status_line(char *line, handshake *h, dms_error *err)
{
    const char *end;
    if (strncmp(line, "SHIM ", 5) == 0) {
        int64_t pid = dmsu_parse_i64_prefix(line + 5, &end);
        int64_t st = pid > 0 && *end == ' ' ? dmsu_parse_i64_prefix(end, NULL) : -1;
        if (pid > 0 && pid <= INT_MAX && st >= 0) {
            h->shim_pid = (pid_t)pid;
            h->shim_start = (uint64_t)st;
        }
    } else if (strncmp(line, "OK ", 3) == 0) {
        h->ok = true;
    } else if (strncmp(line, "ERR ", 4) == 0) {
        int code = DMS_E_START_FAILED;
        char field[DMS_ERROR_FIELD_MAX] = "";
        char *tab = strchr(line, '\t');
        int64_t c = dmsu_parse_i64_prefix(line + 4, &end);
        if (c > 0 && c < DMS_E__COUNT)
            code = (int)c;
        if (c >= 0 && *end == ' ')
            copy_word(field, sizeof(field), end);
        h->failed = true;
        dms_error_set(err, code, strcmp(field, "-") == 0 ? NULL : field, "%s", tab ? tab + 1 : line);
    }
}

static int read_handshake(int fd, handshake *h, dms_error *err)
{
    char buf[SHIM_STATUS_MAX_BYTES];
    size_t len = 0;
    int64_t deadline = dms_mono_ms() + SHIM_HANDSHAKE_TIMEOUT_MS;
    while (!h->ok && !h->failed) {
        int64_t left = deadline - dms_mono_ms();
        if (left <= 0)
            return dms_error_set(err, DMS_E_START_FAILED, NULL, "the supervisor did not report within %d ms",
                                 SHIM_HANDSHAKE_TIMEOUT_MS);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return dms_error_set(err, DMS_E_START_FAILED, NULL, "the supervisor exited without reporting");
        len += (size_t)n;
        buf[len] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n'))) {
            *nl = '\0';
            parse_status_line(buf, h, err);
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, len - used + 1);
            len -= used;
        }
        if (len == sizeof(buf) - 1)
            return dms_error_set(err, DMS_E_PROTOCOL, NULL, "the supervisor sent a line too long");
    }
    return h->failed ? -err->code : 0;
}

/* posix_spawn, not fork: the host has threads, and posix_spawn (vfork-like in glibc) runs nothing of ours
 * between fork and exec. The shim gets: stdin /dev/null, stdout+stderr shim.log, fd 3 the status pipe, fd 4
 * the owner lock (the same open file description as lock_fd: the lock is shared, never free in between). */
static int spawn_shim(const proc_executor *p, const char *dir, int lock_fd, handshake *h, dms_error *err)
{
    int sp[2];
    if (pipe2(sp, O_CLOEXEC) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "pipe");
    _cleanup_close_ int status_r = sp[0];
    _cleanup_close_ int status_w = fcntl(sp[1], F_DUPFD_CLOEXEC, FD_SPAWN_MIN);
    _cleanup_close_ int lock_w = fcntl(lock_fd, F_DUPFD_CLOEXEC, FD_SPAWN_MIN);
    close(sp[1]);
    if (status_w < 0 || lock_w < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "dup");
    char log_path[PATH_MAX];
    snprintf(log_path, sizeof(log_path), "%s/" PROC_SHIM_LOG, dir);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, DMS_PRIVATE_FILE_MODE);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_adddup2(&fa, status_w, PROC_SHIM_STATUS_FD);
    posix_spawn_file_actions_adddup2(&fa, lock_w, PROC_SHIM_LOCK_FD);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    /* Nothing else of the host's: no fd beyond these (a host's sockets or files without O_CLOEXEC), and a
     * minimal environment (the host's may hold its secrets; the workload gets the request's env only). */
    posix_spawn_file_actions_addclosefrom_np(&fa, PROC_SHIM_LOCK_FD + 1);
    static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};
    _cleanup_strv_ char **envp = dmsu_env_minimal(keep, NULL);
    char *argv[] = {p->shim_path, "run", (char *)dir, NULL};
    pid_t pid;
    int r = envp ? posix_spawn(&pid, p->shim_path, &fa, &attr, argv, envp) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (r != 0)
        return dms_error_set_errno(err, DMS_E_START_FAILED, r, "spawn the supervisor %s", p->shim_path);
    /* Only the shim may hold the write end now, so its exit is our EOF. */
    close(dmsu_steal_fd(&status_w));
    close(dmsu_steal_fd(&lock_w));
    /* Stage 1 of the shim exits as soon as it has forked the supervisor: reap it (ECHILD if the host ignores
     * SIGCHLD, which is fine). */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return read_handshake(status_r, h, err);
}

/* A start that failed after the claim still ends the execution with a result, so that it is never run twice
 * and waiters learn why. We hold the owner lock. */
static void fail_claimed(const proc_executor *p, const char *dir, const handshake *h, const dms_error *why)
{
    if (proc_file_exists(dir, PROC_RESULT_FILE))
        return; /* the shim wrote it */
    /* The shim is stuck or died, maybe after the workload started (shim.json): nothing of it may run on under
     * a FAILED result. Both kills check the pid's start time. */
    if (h && h->shim_pid > 0 && proc_alive(h->shim_pid, h->shim_start))
        kill(h->shim_pid, SIGKILL);
    proc_hard_kill(dir);
    proc_remove_spec_cgroups(dir);
    dms_exec_result res = {.outcome = DMS_OUTCOME_FAILED, .exit_code = -1};
    snprintf(res.error, sizeof(res.error), "%s", why->message);
    dms_error e;
    if (proc_write_result(dir, &res, &e) < 0)
        dms_logf(p->host, DMS_LOG_ERROR, "exec=%s op=start write the failed result: %s", dir, e.message);
    dms_exec_result_clear(&res);
}

static int proc_start(void *cookie, const dms_exec_request *req, dms_error *err)
{
    proc_executor *p = cookie;
    char dir[PATH_MAX];
    int r = proc_exec_dir(p, req->execution_id, dir, sizeof(dir), err);
    if (r < 0)
        return r;
    _cleanup_json_ json_t *spec = NULL;
    if ((r = proc_build_spec(p, req, dir, &spec, err)) < 0)
        return r;
    /* The claim: mkdir is atomic across threads and processes, so one id never runs twice. */
    if (mkdir(dir, 0700) != 0) {
        if (errno != EEXIST)
            return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", dir);
        if (proc_file_exists(dir, PROC_RESULT_FILE))
            return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id",
                                 "execution %s has already finished", req->execution_id);
        return dms_error_set(err, DMS_E_ALREADY_STARTED, "execution_id", "execution %s is already running",
                             req->execution_id);
    }
    _cleanup_close_ int lock_fd = -1;
    r = dms_state_lock(dir, &lock_fd, err);
    if (r <= 0) {
        /* Fresh directory, so nobody else can hold it; report rather than guess. */
        if (r == 0)
            r = dms_error_set(err, DMS_E_INTERNAL, NULL, "owner lock of the new %s is taken", dir);
        return r;
    }
    handshake h = {0};
    if ((r = prepare_dir(dir, req, spec, err)) < 0 || (r = spawn_shim(p, dir, lock_fd, &h, err)) < 0) {
        dms_error_prefix(err, "start %s: ", req->execution_id);
        fail_claimed(p, dir, &h, err);
        dms_logf(p->host, DMS_LOG_INFO, "exec=%s job=%s op=start error=%s msg=\"%s\"", req->execution_id,
                 req->job_id, dms_error_code_name(r), err ? err->message : "");
        return r;
    }
    dms_logf(p->host, DMS_LOG_INFO, "exec=%s job=%s op=start shim=%d", req->execution_id, req->job_id,
             (int)h.shim_pid);
    return 0;
}

static const dms_executor_ops proc_ops = {
    .abi_version = DMS_EXECUTOR_ABI_VERSION,
    .size = sizeof(dms_executor_ops),
    .name = "process",
    .description = "host processes under a detached supervisor; process groups, cgroups where writable",
    .create = proc_create,
    .destroy = proc_destroy,
    .is_installed = proc_is_installed,
    .start = proc_start,
    .subscribe = proc_op_subscribe,
    .cancel = proc_op_cancel,
    .log_stream = proc_op_log_stream,
    .cleanup = proc_op_cleanup,
    .status = proc_op_status,
    .list = proc_op_list,
    .remove = proc_op_remove,
    .recover = proc_op_recover,
};

DMS_PLUGIN_EXPORT const dms_executor_ops *dms_executor_plugin_entry(void);
DMS_PLUGIN_EXPORT const dms_executor_ops *dms_executor_plugin_entry(void)
{
    return &proc_ops;
}
