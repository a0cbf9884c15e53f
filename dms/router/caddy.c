/* caddy.c - the Caddy process and its admin API (see caddy.h). */
#include "caddy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "caddycfg.h"

#define CADDY_POLL_MS   20
#define CADDY_OUT_TAIL  400 /* bytes of Caddy's stdout/stderr quoted when it fails to start */
#define UNIX_PREFIX     "unix/"
#define SETPRIV_BIN     "/usr/bin/setpriv"
#define SOCKET_PATH_MAX 107

struct caddy {
    char *bin;
    char *state_dir;
    char *admin;
    char socket_path[SOCKET_PATH_MAX + 1]; /* "" for a TCP admin address */
    pid_t pid;                             /* our child, or the adopted one (from caddy.pid), or 0 */
    bool child;                            /* pid is our child (reaped with waitpid) */
};

/* host:port (host a loopback address or localhost), as Caddy's admin "listen" takes it. */
static bool admin_is_loopback(const char *admin)
{
    const char *colon = strrchr(admin, ':');
    if (!colon)
        return false;
    size_t n = (size_t)(colon - admin);
    if (n == strlen("[::1]") && strncmp(admin, "[::1]", n) == 0)
        return true;
    if (n == strlen("localhost") && strncmp(admin, "localhost", n) == 0)
        return true;
    return n > strlen("127.") && strncmp(admin, "127.", strlen("127.")) == 0 &&
           strspn(admin, "0123456789.") == n;
}

int caddy_new(caddy **out, const caddy_config *cfg, dms_error *err)
{
    caddy *c = calloc(1, sizeof(*c));
    if (!c)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    c->bin = strdup(cfg->bin && *cfg->bin ? cfg->bin : CADDY_DEFAULT_BIN);
    c->state_dir = strdup(cfg->state_dir);
    c->admin = strdup(cfg->admin);
    if (!c->bin || !c->state_dir || !c->admin) {
        caddy_free(c);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    if (strncmp(c->admin, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0 &&
        dmsu_snprintf_ok(c->socket_path, sizeof(c->socket_path), "%s", c->admin + strlen(UNIX_PREFIX)) < 0) {
        caddy_free(c);
        return dms_error_set(err, DMS_E_INVALID, "DMS_CADDY_ADMIN",
                             "the admin socket path %s is longer than %d bytes (a unix socket's limit)",
                             cfg->admin, SOCKET_PATH_MAX);
    }
    /* Caddy's admin API can replace every route: it stays on a unix socket or on loopback. */
    if (!c->socket_path[0] && !admin_is_loopback(c->admin)) {
        int r = dms_error_set(err, DMS_E_INVALID, "DMS_CADDY_ADMIN",
                              "Caddy's admin address %s is not on loopback: use a unix socket (unix/PATH), "
                              "127.0.0.1:PORT, [::1]:PORT or localhost:PORT",
                              cfg->admin);
        caddy_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void caddy_free(caddy *c)
{
    if (!c)
        return;
    free(c->bin);
    free(c->state_dir);
    free(c->admin);
    free(c);
}

pid_t caddy_pid(const caddy *c)
{
    return c->pid;
}

/* ---- the admin API ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    dmsu_buf *b = ud;
    if (b && dmsu_buf_append(b, data, size * n) < 0)
        return 0;
    return size * n;
}

int caddy_admin(caddy *c, const char *method, const char *path, const char *body, long *status,
                dmsu_buf *resp, dms_error *err)
{
    CURL *h = curl_easy_init();
    if (!h)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "curl_easy_init failed");
    char url[512], errbuf[CURL_ERROR_SIZE] = "";
    if (c->socket_path[0]) {
        snprintf(url, sizeof(url), "http://" CADDY_ADMIN_ORIGIN "%s", path);
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
    } else {
        snprintf(url, sizeof(url), "http://%s%s", c->admin, path);
    }
    /* Caddy's admin API accepts only the Host names in its "origins" (DNS rebinding protection). */
    struct curl_slist *hdrs = curl_slist_append(NULL, "Host: " CADDY_ADMIN_ORIGIN);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CADDY_ADMIN_CONNECT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CADDY_ADMIN_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    dmsu_buf scratch = {.max = CADDY_ADMIN_RESP_MAX};
    if (resp && !resp->max)
        resp->max = CADDY_ADMIN_RESP_MAX;
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp ? resp : &scratch);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    dmsu_buf_free(&scratch);
    if (rc != CURLE_OK)
        return dms_error_set(err, rc == CURLE_COULDNT_CONNECT ? DMS_E_UNAVAILABLE : DMS_E_IO, NULL,
                             "caddy admin %s %s: %s", method, path,
                             errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (status)
        *status = code;
    return 0;
}

static bool admin_answers(caddy *c)
{
    long status = 0;
    return caddy_admin(c, "GET", "/config/apps/http/servers/" CADDY_SERVER_NAME "/listen", NULL, &status,
                       NULL, NULL) == 0 &&
           status == 200;
}

/* ---- the process ---- */

static bool tcp_answers(const char *addr)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return false;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int64_t port = dmsu_parse_i64(colon + 1);
    if (port <= 0 || port > 65535)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &sa.sin_addr) != 1)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* The last line of what Caddy wrote to its stdout/stderr: why it exited. */
static void last_words(caddy *c, char *buf, size_t size)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/caddy.out", c->state_dir);
    buf[0] = '\0';
    char *data = NULL;
    size_t len = 0;
    if (dms_read_file(p, 1 << 20, &data, &len, NULL) < 0)
        return;
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    size_t start = len;
    while (start && data[start - 1] != '\n')
        start--;
    size_t n = len - start;
    if (n > CADDY_OUT_TAIL)
        n = CADDY_OUT_TAIL;
    snprintf(buf, size, "%.*s", (int)n, data + start);
    free(data);
}

static pid_t read_pidfile(caddy *c)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/caddy.pid", c->state_dir);
    char *data = NULL;
    size_t len = 0;
    if (dms_read_file(p, 64, &data, &len, NULL) < 0)
        return 0;
    /* Caddy writes the pid and a newline. */
    const char *end;
    int64_t pid = dmsu_parse_i64_prefix(data, &end);
    bool whole = *end == '\0' || strcmp(end, "\n") == 0;
    free(data);
    return whole && pid > 1 && pid <= INT_MAX ? (pid_t)pid : 0;
}

/* True if pid runs a program called caddy (a pid file can outlive its process, and pids are reused). */
static bool is_caddy(pid_t pid)
{
    char p[64], exe[PATH_MAX];
    snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(p, exe, sizeof(exe) - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    const char *base = strrchr(exe, '/');
    return strncmp(base ? base + 1 : exe, "caddy", 5) == 0;
}

/* Caddy 2.6 creates its log files 0666 less the umask (0644 here), and its log roller then keeps whatever
 * mode the file has: made 0600 first, they stay 0600 (the access log holds every request's host and path). */
static int private_logs(caddy *c, dms_error *err)
{
    static const char *const names[] = {CADDY_LOG_FILE, CADDY_ACCESS_LOG_FILE};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(names); i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", c->state_dir, names[i]);
        _cleanup_close_ int fd =
            open(p, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, DMS_PRIVATE_FILE_MODE);
        if (fd < 0 || fchmod(fd, DMS_PRIVATE_FILE_MODE) != 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "make Caddy's log %s", p);
    }
    return 0;
}

static int spawn(caddy *c, const char *config_path, dms_error *err)
{
    char out_path[PATH_MAX], pid_path[PATH_MAX], home[PATH_MAX + 8], xdg[PATH_MAX + 32],
        xdg_cfg[PATH_MAX + 32];
    snprintf(out_path, sizeof(out_path), "%s/caddy.out", c->state_dir);
    snprintf(pid_path, sizeof(pid_path), "%s/caddy.pid", c->state_dir);
    /* A clean environment: dmsd's holds DMS_JWT_SECRET and every DMS_* setting, none of Caddy's business
     * (and a child's environment is one /proc read away for whoever can ptrace it). Caddy keeps its own files
     * (instance id, autosave) under XDG dirs and HOME: all in our state dir. */
    snprintf(home, sizeof(home), "HOME=%s", c->state_dir);
    snprintf(xdg, sizeof(xdg), "XDG_DATA_HOME=%s/data", c->state_dir);
    snprintf(xdg_cfg, sizeof(xdg_cfg), "XDG_CONFIG_HOME=%s/config", c->state_dir);
    const char *const extra[] = {home, xdg, xdg_cfg, NULL};
    _cleanup_strv_ char **envp = dmsu_env_minimal(NULL, extra);
    if (!envp)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    int r = private_logs(c, err);
    if (r < 0)
        return r;
    /* Caddy lives and dies with dmsd: util-linux's setpriv sets its parent-death signal (prctl
     * PR_SET_PDEATHSIG, kept across exec) before it becomes caddy, so a dmsd killed with SIGKILL leaves no
     * Caddy behind holding its port (the next dmsd starts a fresh one with every route). Without setpriv, a
     * Caddy left running is taken over by the next dmsd on the same data dir instead. */
    char *caddy_argv[] = {c->bin, "run", "--config", (char *)config_path, "--pidfile", pid_path, NULL};
    char *setpriv_argv[] = {SETPRIV_BIN, "--pdeathsig",       "TERM",      "--",     c->bin, "run",
                            "--config",  (char *)config_path, "--pidfile", pid_path, NULL};
    bool setpriv = access(SETPRIV_BIN, X_OK) == 0;
    char **argv = setpriv ? setpriv_argv : caddy_argv;

    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&fa);
    /* Its own session (a ^C to dmsd's terminal is dmsd's to handle: it stops Caddy itself), no signal blocked
     * or ignored (dmsd blocks SIGINT/SIGTERM for sigwait and ignores SIGPIPE; both would be inherited), no fd
     * of dmsd's but stdin/out/err. */
    sigset_t none, defs;
    sigemptyset(&none);
    sigemptyset(&defs);
    sigaddset(&defs, SIGPIPE);
    sigaddset(&defs, SIGINT);
    sigaddset(&defs, SIGTERM);
    sigaddset(&defs, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defs);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, DMS_PRIVATE_FILE_MODE);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return dms_error_set_errno(err, DMS_E_UNAVAILABLE, rc, "start %s (DMS_CADDY_BIN)", c->bin);
    c->pid = pid;
    c->child = true;
    return 0;
}

/* Reaps our child if it has exited; true if it is gone. */
static bool child_gone(caddy *c, int *status)
{
    if (!c->child || c->pid <= 0)
        return true;
    pid_t r = waitpid(c->pid, status, WNOHANG);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->pid = 0;
        c->child = false;
        return true;
    }
    return false;
}

int caddy_ensure(caddy *c, const char *config_json, const char *listen_addr, bool *adopted, dms_error *err)
{
    *adopted = false;
    int r;
    if (admin_answers(c)) {
        /* Ours from an earlier dmsd (the admin address is per data dir): load our config into it. */
        long status = 0;
        dmsu_buf resp = {0};
        r = caddy_admin(c, "POST", "/load", config_json, &status, &resp, err);
        if (r == 0 && status != 200)
            r = dms_error_set(err, DMS_E_UNAVAILABLE, NULL, "caddy at %s refused the config (%ld): %.*s",
                              c->admin, status, (int)(resp.len > 300 ? 300 : resp.len),
                              resp.data ? resp.data : "");
        dmsu_buf_free(&resp);
        if (r < 0)
            return r;
        pid_t pid = read_pidfile(c);
        c->pid = pid && is_caddy(pid) ? pid : 0;
        c->child = false;
        *adopted = true;
        log_info("component=router op=caddy action=adopt pid=%d admin=%s", (int)c->pid, c->admin);
        return 0;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/caddy.json", c->state_dir);
    if ((r = dms_write_file_atomic(path, config_json, strlen(config_json), err)) < 0)
        return r;
    if (c->socket_path[0])
        unlink(c->socket_path); /* a socket file left by a Caddy that died */
    if ((r = spawn(c, path, err)) < 0)
        return r;
    int64_t deadline = dms_mono_ms() + CADDY_START_TIMEOUT_MS;
    for (;;) {
        int status = 0;
        if (child_gone(c, &status)) {
            char why[CADDY_OUT_TAIL + 1];
            last_words(c, why, sizeof(why));
            return dms_error_set(err, DMS_E_UNAVAILABLE, NULL, "caddy exited (%s %d) while starting: %s",
                                 WIFSIGNALED(status) ? "signal" : "status",
                                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                                 why[0] ? why : "(no output)");
        }
        if (admin_answers(c) && tcp_answers(listen_addr))
            break;
        if (dms_mono_ms() > deadline) {
            caddy_stop(c);
            return dms_error_set(err, DMS_E_UNAVAILABLE, NULL,
                                 "caddy did not answer on %s and %s within %d ms", c->admin, listen_addr,
                                 CADDY_START_TIMEOUT_MS);
        }
        usleep(CADDY_POLL_MS * 1000);
    }
    log_info("component=router op=caddy action=start pid=%d admin=%s listen=%s", (int)c->pid, c->admin,
             listen_addr);
    return 0;
}

bool caddy_alive(caddy *c)
{
    if (c->child)
        return !child_gone(c, &(int){0});
    /* Adopted: not our child, so watch the process and the API. */
    if (c->pid > 0 && kill(c->pid, 0) < 0 && errno == ESRCH) {
        c->pid = 0;
        return false;
    }
    return admin_answers(c);
}

void caddy_stop(caddy *c)
{
    if (c->pid <= 0 || (!c->child && !is_caddy(c->pid))) {
        c->pid = 0;
        return;
    }
    pid_t pid = c->pid;
    kill(c->pid, SIGTERM);
    int64_t deadline = dms_mono_ms() + CADDY_STOP_GRACE_MS;
    for (;;) {
        bool gone = c->child ? child_gone(c, &(int){0}) : (kill(c->pid, 0) < 0 && errno == ESRCH);
        if (gone)
            break;
        if (dms_mono_ms() > deadline) {
            log_warn("component=router op=caddy action=kill pid=%d note=\"no exit %d ms after SIGTERM\"",
                     (int)c->pid, CADDY_STOP_GRACE_MS);
            kill(c->pid, SIGKILL);
            if (c->child)
                waitpid(c->pid, NULL, 0);
            break;
        }
        usleep(CADDY_POLL_MS * 1000);
    }
    log_info("component=router op=caddy action=stop pid=%d", (int)pid);
    c->pid = 0;
    c->child = false;
}
