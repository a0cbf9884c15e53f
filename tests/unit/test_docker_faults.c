/* test_docker_faults.c - faults a real engine cannot be made to show, injected by a small fake engine on a
 * unix socket: a 500 on create, an in-band pull error, an attach dropped mid-stream, the event stream
 * dropping. The happy path is never tested here: that is what the feature suite does against the real engine.
 *
 * The fake speaks just enough HTTP/1.1: one thread per connection, one scripted answer per request, chosen by
 * the test's handler. Streaming answers (events, attach) keep the connection and write later. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <dms/backend.h>
#include <dms/executor.h>

#include "testutil.h"

#define TEST_TIMEOUT_S 30
#define FAKE_EXEC_ID   "faults"

typedef struct fake fake;
typedef struct conn {
    fake *f;
    int fd;
    char method[16];
    char path[2048];
} conn;

/* Returns true when it kept the connection (a stream it will close itself). */
typedef bool (*fake_handler)(fake *f, conn *c);

struct fake {
    char sock[108];
    char dir[64];
    int lfd;
    pthread_t th;
    atomic_bool stop;
    fake_handler handler;
    bool handler_pings; /* the handler answers /_ping itself (to play a socket that is not Docker) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int events_fd;          /* the held /events connection, -1 when none */
    int events_connections; /* how many /events requests came */
    char last_events_path[2048];
    int attach_fd;
    int creates;
    int deletes;
};

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* The API version the fake engine announces (a test may play an older or newer engine; each test runs in its
 * own process), and the version of the last versioned request it got. */
static const char *fake_api = "1.41";
static char fake_seen_version[16];

static void respond(conn *c, int status, const char *ctype, const char *body)
{
    char head[256];
    size_t bl = body ? strlen(body) : 0;
    snprintf(head, sizeof(head),
             "HTTP/1.1 %d X\r\nContent-Type: %s\r\nApi-Version: %s\r\nContent-Length: %zu\r\n\r\n", status,
             ctype ? ctype : "application/json", fake_api, bl);
    send_all(c->fd, head, strlen(head));
    if (bl)
        send_all(c->fd, body, bl);
}

/* Starts a chunked stream (events) or a raw hijacked one (attach). */
static void stream_head(conn *c, bool chunked)
{
    const char *h =
        chunked ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                : "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n";
    send_all(c->fd, h, strlen(h));
}

static void chunk(int fd, const char *s)
{
    char head[32];
    snprintf(head, sizeof(head), "%zx\r\n", strlen(s));
    send_all(fd, head, strlen(head));
    send_all(fd, s, strlen(s));
    send_all(fd, "\r\n", 2);
}

static void frame(int fd, int type, const char *payload)
{
    size_t len = strlen(payload);
    unsigned char h[8] = {(unsigned char)type,
                          0,
                          0,
                          0,
                          (unsigned char)(len >> 24),
                          (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8),
                          (unsigned char)len};
    send_all(fd, (const char *)h, 8);
    send_all(fd, payload, len);
}

/* Reads one request's head (and skips its body by Content-Length). false on EOF. */
static bool read_request(conn *c)
{
    char buf[8192];
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(c->fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        if (sscanf(buf, "%15s %2047s", c->method, c->path) != 2)
            return false; /* no request line: nothing a handler could answer */
        long clen = 0;
        char *cl = strcasestr(buf, "content-length:");
        if (cl)
            clen = strtol(cl + 15, NULL, 10);
        long have = (long)(n - (size_t)(end + 4 - buf));
        while (have < clen) {
            ssize_t k = recv(c->fd, buf, sizeof(buf), 0);
            if (k <= 0)
                return false;
            have += k;
        }
        /* Chunked uploads (build) are not used by these tests. */
        return true;
    }
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    while (read_request(c)) {
        /* Strip the /v1.41 prefix for the handlers. */
        char *p = c->path;
        if (!strncmp(p, "/v1.", 4)) {
            char *slash = strchr(p + 1, '/');
            if (slash) {
                pthread_mutex_lock(&c->f->lock);
                snprintf(fake_seen_version, sizeof(fake_seen_version), "%.*s", (int)(slash - p - 2), p + 2);
                pthread_mutex_unlock(&c->f->lock);
                memmove(p, slash, strlen(slash) + 1);
            }
        }
        if (!strcmp(c->path, "/_ping") && !c->f->handler_pings) {
            respond(c, 200, "text/plain", "OK");
            continue;
        }
        if (c->f->handler(c->f, c)) {
            free(c); /* the handler keeps the fd (stored in the fake), not this struct */
            return NULL;
        }
    }
    close(c->fd);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        conn *c = calloc(1, sizeof(*c));
        c->f = f;
        c->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, conn_main, c);
        pthread_detach(t);
    }
    return NULL;
}

/* One fake per test: Check runs each test in its own forked process, so static storage is per test, and the
 * detached connection threads never outlive it. */
static fake the_fake;

static fake *fake_start(fake_handler h)
{
    fake *f = &the_fake;
    memset(f, 0, sizeof(*f));
    tu_mkdtemp(f->dir, sizeof(f->dir));
    snprintf(f->sock, sizeof(f->sock), "%s/docker.sock", f->dir);
    f->handler = h;
    f->events_fd = -1;
    f->attach_fd = -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(f->lfd, 64), 0);
    pthread_create(&f->th, NULL, accept_main, f);
    return f;
}

static void fake_stop(fake *f)
{
    fake_api = "1.41"; /* the next test (in this process too, without CK_FORK) meets a current engine */
    fake_seen_version[0] = '\0';
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
    unlink(f->sock);
    if (dms_rm_rf(f->dir, NULL) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
}

/* Common answers: events held open, images present, containers created. */
static bool common(fake *f, conn *c)
{
    if (!strncmp(c->path, "/events", 7)) {
        stream_head(c, true);
        pthread_mutex_lock(&f->lock);
        f->events_fd = c->fd;
        f->events_connections++;
        snprintf(f->last_events_path, sizeof(f->last_events_path), "%s", c->path);
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        return true;
    }
    if (!strncmp(c->path, "/images/", 8) && !strcmp(c->method, "GET")) {
        respond(c, 200, NULL, "{\"Id\":\"sha256:1\"}");
        return false;
    }
    if (!strncmp(c->path, "/containers/create", 18)) {
        pthread_mutex_lock(&f->lock);
        f->creates++;
        pthread_mutex_unlock(&f->lock);
        respond(c, 201, NULL, "{\"Id\":\"c0ffee\",\"Warnings\":[]}");
        return false;
    }
    if (!strncmp(c->path, "/containers/", 12) && strstr(c->path, "/json") && !strcmp(c->method, "GET")) {
        /* Still running, as far as the engine knows (the end comes as a die event). */
        respond(c, 200, NULL,
                "{\"Id\":\"c0ffee\",\"State\":{\"Status\":\"running\",\"Running\":true,"
                "\"ExitCode\":0,\"OOMKilled\":false}}");
        return false;
    }
    if (!strcmp(c->method, "DELETE")) {
        pthread_mutex_lock(&f->lock);
        f->deletes++;
        pthread_mutex_unlock(&f->lock);
        respond(c, 204, NULL, NULL);
        return false;
    }
    respond(c, 404, NULL, "{\"message\":\"not scripted\"}");
    return false;
}

/* ---- the executor under test ---- */

typedef struct env {
    fake *f;
    char state[64];
    dms_registry *reg;
    dms_executor *ex;
} env;

static void env_open(env *e, fake_handler h)
{
    e->f = fake_start(h);
    tu_mkdtemp(e->state, sizeof(e->state));
    dms_error err = {0};
    ck_assert_int_eq(dms_registry_open(&e->reg, DMS_BUILD_PLUGIN_DIR, &err), 0);
    char opt[160];
    snprintf(opt, sizeof(opt), "host=unix://%s", e->f->sock);
    char *opts[] = {opt, NULL};
    dms_executor_config cfg = {.state_dir = e->state, .options = opts, .log = NULL};
    int r = dms_executor_open(&e->ex, e->reg, "docker", FAKE_EXEC_ID, &cfg, &err);
    ck_assert_msg(r == 0, "open: %s", err.message);
}

static void env_close(env *e)
{
    dms_executor_close(e->ex);
    dms_registry_close(e->reg);
    fake_stop(e->f);
    if (dms_rm_rf(e->state, NULL) != 0)
        fprintf(stderr, "could not remove %s\n", e->state);
}

static char *cmd_true[] = {"true", NULL};

static dms_exec_request request(const char *exec_id)
{
    dms_exec_request r = {.job_id = "j",
                          .execution_id = exec_id,
                          .engine = {.image = "dms-test/busybox:latest", .cmd = cmd_true}};
    return r;
}

/* ---- the engine's API version: we speak min(ours, its), and refuse one older than 1.25 ---- */

static void start_and_see_version(const char *engine_api, const char *want)
{
    fake_api = engine_api;
    env e;
    env_open(&e, common);
    dms_error err = {0};
    ck_assert_msg(dms_executor_is_installed(e.ex, &err), "%s", err.message);
    /* Every request the start makes (image inspect, create, ...) carries the version; the fake does not
     * script a whole run, so how the start ends does not matter here. */
    dms_exec_request req = request("ev1");
    dms_executor_start(e.ex, &req, &err);
    pthread_mutex_lock(&e.f->lock);
    char seen[16];
    snprintf(seen, sizeof(seen), "%s", fake_seen_version);
    pthread_mutex_unlock(&e.f->lock);
    ck_assert_str_eq(seen, want);
    env_close(&e);
}

START_TEST(test_speaks_an_older_engines_api)
{
    start_and_see_version("1.40", "1.40"); /* a client newer than its host broke peers: we step down */
}
END_TEST

START_TEST(test_speaks_its_own_api_to_a_newer_engine)
{
    start_and_see_version("1.43", "1.41");
}
END_TEST

START_TEST(test_refuses_an_engine_older_than_1_25)
{
    fake_api = "1.24";
    env e;
    env_open(&e, common);
    dms_error err = {0};
    ck_assert(!dms_executor_is_installed(e.ex, &err));
    ck_assert_int_eq(err.code, DMS_E_UNAVAILABLE);
    ck_assert_msg(strstr(err.message, "speaks API 1.24") && strstr(err.message, "at least 1.25"), "%s",
                  err.message);
    env_close(&e);
}
END_TEST

/* ---- 500 on create ---- */

static bool create_500(fake *f, conn *c)
{
    if (!strncmp(c->path, "/containers/create", 18)) {
        respond(c, 500, NULL, "{\"message\":\"devmapper: thin pool is full\"}");
        return false;
    }
    return common(f, c);
}

START_TEST(test_create_500_is_an_engine_error_and_ends_the_execution)
{
    env e;
    env_open(&e, create_500);
    dms_exec_request req = request("e500");
    dms_error err = {0};
    int r = dms_executor_start(e.ex, &req, &err);
    ck_assert_int_eq(r, -DMS_E_ENGINE);
    ck_assert(err.retryable);
    ck_assert_msg(strstr(err.message, "thin pool is full"), "daemon message passed through: %s", err.message);
    dms_exec_result res = {0};
    ck_assert_int_eq(dms_executor_wait(e.ex, "e500", 1000, &res, &err), 0);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_ENGINE_ERROR); /* the engine's fault, not the workload's */
    ck_assert(strstr(res.error, "thin pool is full"));
    dms_exec_result_clear(&res);
    /* The id is spent: never run twice. */
    ck_assert_int_eq(dms_executor_start(e.ex, &req, &err), -DMS_E_ALREADY_COMPLETE);
    env_close(&e);
}
END_TEST

/* ---- in-band pull error ---- */

static bool pull_inband(fake *f, conn *c)
{
    if (!strncmp(c->path, "/images/", 8) && !strcmp(c->method, "GET")) {
        respond(c, 404, NULL, "{\"message\":\"No such image\"}");
        return false;
    }
    if (!strncmp(c->path, "/images/create", 14)) {
        respond(c, 200, NULL,
                "{\"status\":\"Pulling from "
                "dms-test/busybox\"}\n{\"errorDetail\":{\"message\":\"toomanyrequests: rate "
                "limit\"},\"error\":\"toomanyrequests: rate limit\"}\n");
        return false;
    }
    return common(f, c);
}

START_TEST(test_pull_error_in_band_is_an_image_error_naming_the_cause)
{
    env e;
    env_open(&e, pull_inband);
    dms_exec_request req = request("epull");
    dms_error err = {0};
    ck_assert_int_eq(dms_executor_start(e.ex, &req, &err), -DMS_E_IMAGE);
    ck_assert_msg(strstr(err.message, "not present locally") && strstr(err.message, "rate limit"), "%s",
                  err.message);
    ck_assert_str_eq(err.field, "engine.image");
    pthread_mutex_lock(&e.f->lock);
    ck_assert_int_eq(e.f->creates, 0); /* nothing created */
    pthread_mutex_unlock(&e.f->lock);
    env_close(&e);
}
END_TEST

/* ---- attach dropped mid-stream, then the die event ---- */

static bool attach_drop(fake *f, conn *c)
{
    if (strstr(c->path, "/attach")) {
        stream_head(c, false);
        pthread_mutex_lock(&f->lock);
        f->attach_fd = c->fd;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        return true;
    }
    if (strstr(c->path, "/start")) {
        respond(c, 204, NULL, NULL);
        /* Output, then the connection drops mid-frame (header promises 10 bytes, 3 come). */
        pthread_mutex_lock(&f->lock);
        int afd = f->attach_fd;
        pthread_mutex_unlock(&f->lock);
        frame(afd, 1, "before-drop\n");
        unsigned char h[8] = {1, 0, 0, 0, 0, 0, 0, 10};
        send_all(afd, (const char *)h, 8);
        send_all(afd, "abc", 3);
        shutdown(afd, SHUT_RDWR);
        close(afd);
        return false;
    }
    return common(f, c);
}

static void send_event(fake *f, const char *action, const char *exec_id, const char *exit_code)
{
    char ev[512];
    snprintf(ev, sizeof(ev),
             "{\"Type\":\"container\",\"Action\":\"%s\",\"Actor\":{\"ID\":\"c0ffee\",\"Attributes\":{"
             "\"io.dms.execution\":\"%s\",\"exitCode\":\"%s\"}},\"timeNano\":%lld}\n",
             action, exec_id, exit_code, (long long)dms_now_ns());
    pthread_mutex_lock(&f->lock);
    chunk(f->events_fd, ev);
    pthread_mutex_unlock(&f->lock);
}

START_TEST(test_dropped_attach_keeps_the_output_so_far_and_finishes_on_die)
{
    env e;
    env_open(&e, attach_drop);
    dms_exec_request req = request("edrop");
    dms_error err = {0};
    ck_assert_int_eq(dms_executor_start(e.ex, &req, &err), 0);
    /* Still running as far as the engine says: no result yet. */
    dms_exec_result res = {0};
    ck_assert_int_eq(dms_executor_wait(e.ex, "edrop", 300, &res, &err), -DMS_E_TIMEOUT);
    send_event(e.f, "die", "edrop", "3");
    ck_assert_int_eq(dms_executor_wait(e.ex, "edrop", 5000, &res, &err), 0);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    ck_assert_int_eq(res.exit_code, 3);
    /* The bytes of the frame cut short did arrive: they are output too, and are kept. */
    ck_assert_str_eq(res.stdout_data, "before-drop\nabc");
    dms_exec_result_clear(&res);
    env_close(&e);
}
END_TEST

/* ---- the event stream drops: reconnect with since= ---- */

static bool events_drop(fake *f, conn *c)
{
    if (strstr(c->path, "/attach")) {
        stream_head(c, false);
        pthread_mutex_lock(&f->lock);
        f->attach_fd = c->fd;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        return true;
    }
    if (strstr(c->path, "/start")) {
        respond(c, 204, NULL, NULL);
        return false;
    }
    return common(f, c);
}

static void wait_events_connections(fake *f, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&f->lock);
    while (f->events_connections < n)
        if (pthread_cond_timedwait(&f->cond, &f->lock, &dl) != 0)
            break;
    pthread_mutex_unlock(&f->lock);
}

START_TEST(test_event_stream_drop_reconnects_with_since_and_misses_nothing)
{
    env e;
    env_open(&e, events_drop);
    dms_exec_request req = request("eev");
    dms_error err = {0};
    ck_assert_int_eq(dms_executor_start(e.ex, &req, &err), 0);
    /* An event is seen (sets the since point), then the stream drops. */
    send_event(e.f, "start", "eev", "");
    usleep(100000);
    pthread_mutex_lock(&e.f->lock);
    int old = e.f->events_fd;
    e.f->events_fd = -1;
    pthread_mutex_unlock(&e.f->lock);
    shutdown(old, SHUT_RDWR);
    close(old);
    wait_events_connections(e.f, 2);
    pthread_mutex_lock(&e.f->lock);
    ck_assert_int_ge(e.f->events_connections, 2);
    ck_assert_msg(strstr(e.f->last_events_path, "since="), "reconnect asks for what it missed: %s",
                  e.f->last_events_path);
    int afd = e.f->attach_fd;
    pthread_mutex_unlock(&e.f->lock);
    /* The job's end arrives on the new stream. */
    frame(afd, 2, "err-line\n");
    shutdown(afd, SHUT_RDWR);
    close(afd);
    send_event(e.f, "die", "eev", "0");
    dms_exec_result res = {0};
    ck_assert_int_eq(dms_executor_wait(e.ex, "eev", 5000, &res, &err), 0);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    ck_assert_int_eq(res.exit_code, 0);
    ck_assert_str_eq(res.stderr_data, "err-line\n");
    dms_exec_result_clear(&res);
    env_close(&e);
}
END_TEST

/* ---- a socket that is not Docker ---- */

static bool garbage(fake *f, conn *c)
{
    respond(c, 404, NULL, "{\"message\":\"page not found\"}");
    return false;
}

static void *silent_main(void *arg)
{
    int lfd = *(int *)arg;
    int fds[8];
    int n = 0;
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    while (n < 8 && poll(&p, 1, 6000) > 0)
        fds[n++] = accept(lfd, NULL, NULL); /* accept and never answer */
    usleep(100000);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return NULL;
}

START_TEST(test_is_installed_says_why_for_a_socket_that_never_answers)
{
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    char sock[108];
    snprintf(sock, sizeof(sock), "%s/s.sock", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    listen(lfd, 8);
    pthread_t t;
    pthread_create(&t, NULL, silent_main, &lfd);
    dms_registry *reg;
    dms_error err = {0};
    ck_assert_int_eq(dms_registry_open(&reg, DMS_BUILD_PLUGIN_DIR, &err), 0);
    char opt[160];
    snprintf(opt, sizeof(opt), "host=unix://%s", sock);
    char *opts[] = {opt, NULL};
    dms_executor_config cfg = {.state_dir = dir, .options = opts};
    dms_executor *ex;
    ck_assert_int_eq(dms_executor_open(&ex, reg, "docker", "silent", &cfg, &err), 0);
    int64_t t0 = dms_mono_ms();
    ck_assert(!dms_executor_is_installed(ex, &err));
    int64_t took = dms_mono_ms() - t0;
    ck_assert_msg(took < 5000, "bounded: %lld ms", (long long)took);
    ck_assert_int_eq(err.code, DMS_E_UNAVAILABLE);
    ck_assert_msg(strstr(err.message, sock), "names the socket: %s", err.message);
    dms_executor_close(ex);
    dms_registry_close(reg);
    pthread_join(t, NULL);
    close(lfd);
    tu_rmtree(dir); /* the socket and the executor's state (docker/silent), which rmdir left behind */
}
END_TEST

START_TEST(test_is_installed_refuses_a_socket_that_answers_but_is_not_docker)
{
    fake *f = fake_start(garbage);
    f->handler_pings = true;
    dms_registry *reg;
    dms_error err = {0};
    ck_assert_int_eq(dms_registry_open(&reg, DMS_BUILD_PLUGIN_DIR, &err), 0);
    char opt[160];
    snprintf(opt, sizeof(opt), "host=unix://%s", f->sock);
    char *opts[] = {opt, NULL};
    dms_executor_config cfg = {.state_dir = f->dir, .options = opts};
    dms_executor *ex;
    ck_assert_int_eq(dms_executor_open(&ex, reg, "docker", "garbage", &cfg, &err), 0);
    ck_assert(!dms_executor_is_installed(ex, &err));
    ck_assert_int_eq(err.code, DMS_E_UNAVAILABLE);
    ck_assert_msg(strstr(err.message, "not a Docker engine") && strstr(err.message, f->sock), "%s",
                  err.message);
    dms_executor_close(ex);
    dms_registry_close(reg);
    fake_stop(f);
}
END_TEST

START_TEST(test_is_installed_names_a_missing_socket_and_start_is_unavailable)
{
    dms_registry *reg;
    dms_error err = {0};
    dms_executor *ex;
    ck_assert_int_eq(dms_registry_open(&reg, DMS_BUILD_PLUGIN_DIR, &err), 0);
    char *opts[] = {"host=unix:///tmp/dms-no-such-dir/docker.sock", NULL};
    char st[64];
    tu_mkdtemp(st, sizeof(st));
    dms_executor_config cfg = {.state_dir = st, .options = opts};
    ck_assert_int_eq(dms_executor_open(&ex, reg, "docker", "nosock", &cfg, &err), 0);
    ck_assert(!dms_executor_is_installed(ex, &err));
    ck_assert_msg(strstr(err.message, "/tmp/dms-no-such-dir/docker.sock") &&
                      strstr(err.message, "No such file"),
                  "%s", err.message);
    dms_exec_request req = request("enosock");
    ck_assert_int_eq(dms_executor_start(ex, &req, &err), -DMS_E_UNAVAILABLE);
    ck_assert(err.retryable);
    dms_executor_close(ex);
    dms_registry_close(reg);
    tu_rmtree(st);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("docker_faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_test(tc, test_create_500_is_an_engine_error_and_ends_the_execution);
    tcase_add_test(tc, test_speaks_an_older_engines_api);
    tcase_add_test(tc, test_speaks_its_own_api_to_a_newer_engine);
    tcase_add_test(tc, test_refuses_an_engine_older_than_1_25);
    tcase_add_test(tc, test_pull_error_in_band_is_an_image_error_naming_the_cause);
    tcase_add_test(tc, test_dropped_attach_keeps_the_output_so_far_and_finishes_on_die);
    tcase_add_test(tc, test_event_stream_drop_reconnects_with_since_and_misses_nothing);
    tcase_add_test(tc, test_is_installed_says_why_for_a_socket_that_never_answers);
    tcase_add_test(tc, test_is_installed_refuses_a_socket_that_answers_but_is_not_docker);
    tcase_add_test(tc, test_is_installed_names_a_missing_socket_and_start_is_unavailable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    dms_global_init(NULL);
    return tu_run(suite());
}
