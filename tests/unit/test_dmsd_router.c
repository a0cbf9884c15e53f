/* test_dmsd_router.c - the router against a real Caddy (no Docker: the "containers" are HTTP servers in this
 * test): routes by name, a deleted droid's route gone, a swap that keeps requests in flight and drains, Caddy
 * restarted with every route after it dies, routes rebuilt from the store, and the wake handler holding a
 * request until the droid is ready and then passing it through. Plus the pure parts: which route a droid
 * gets, the wake header. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/app.h"
#include "../../dms/common.h"
#include "../../dms/router/probe.h"
#include "../../dms/router/router.h"
#include "../../dms/snooze/snooze.h"
#include "../../dms/snooze/tz.h"
#include "../../dms/snooze/wake.h"
#include "testutil.h"

/* ---- pure parts ---- */

static droid *mk(const char *name, droid_state st)
{
    droid *d = droid_new();
    snprintf(d->id, sizeof(d->id), "d0000000000a1");
    d->name = strdup(name);
    d->state = st;
    d->want_running = true;
    return d;
}

START_TEST(test_desired_route_follows_the_droid)
{
    route_spec r;
    droid *d = mk("web", DROID_RUNNING);
    d->run_id = strdup("d0000000000a1-r1-1");
    d->run_addr = strdup("172.18.0.5:8080");
    d->host_port = 32000;
    ck_assert(router_desired(d, "127.0.0.1:999", &r));
    ck_assert_int_eq(r.kind, ROUTE_PROXY);
    ck_assert_str_eq(r.host, "web.localhost");
    ck_assert_str_eq(r.dial, "172.18.0.5:8080");
    /* no address (a run from before routing): the published port */
    free(d->run_addr);
    d->run_addr = NULL;
    ck_assert(router_desired(d, "127.0.0.1:999", &r));
    ck_assert_str_eq(r.dial, "127.0.0.1:32000");
    /* asleep: the wake handler, even while its container is still being stopped */
    d->asleep = true;
    d->state = DROID_SNOOZED;
    ck_assert(router_desired(d, "127.0.0.1:999", &r));
    ck_assert_int_eq(r.kind, ROUTE_WAKE);
    ck_assert_str_eq(r.dial, "127.0.0.1:999");
    /* starting with no container yet: held too */
    d->asleep = false;
    free(d->run_id);
    d->run_id = NULL;
    d->state = DROID_STARTING;
    ck_assert(router_desired(d, "127.0.0.1:999", &r));
    ck_assert_int_eq(r.kind, ROUTE_WAKE);
    /* stopped, failed, building: a 503 that says so */
    d->state = DROID_STOPPED;
    d->want_running = false;
    ck_assert(router_desired(d, "127.0.0.1:999", &r));
    ck_assert_int_eq(r.kind, ROUTE_DOWN);
    ck_assert_ptr_nonnull(strstr(r.message, "web is stopped"));
    d->state = DROID_FAILED;
    ck_assert(router_desired(d, "x", &r));
    ck_assert_ptr_nonnull(strstr(r.message, "failed"));
    d->state = DROID_BUILDING;
    d->want_running = true;
    ck_assert(router_desired(d, "x", &r));
    ck_assert_int_eq(r.kind, ROUTE_DOWN);
    ck_assert_ptr_nonnull(strstr(r.message, "being built"));
    /* deleted: no route */
    d->deleting = true;
    ck_assert(!router_desired(d, "x", &r));
    ck_assert(!router_desired(NULL, "x", &r));
    droid_free(d);
}
END_TEST

START_TEST(test_wake_header_is_found_and_removed)
{
    char head[] =
        "GET /x HTTP/1.1\r\nHost: web.localhost\r\nx-dms-wake:  d0123456789ab \r\nAccept: */*\r\n\r\n";
    size_t len = strlen(head);
    char id[DROID_ID_SIZE];
    ck_assert_int_eq(wake_take_header(head, &len, id, sizeof(id)), 0);
    ck_assert_str_eq(id, "d0123456789ab");
    ck_assert_str_eq(head, "GET /x HTTP/1.1\r\nHost: web.localhost\r\nAccept: */*\r\n\r\n");
    ck_assert_int_eq(len, strlen(head));
    char none[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    len = strlen(none);
    ck_assert_int_eq(wake_take_header(none, &len, id, sizeof(id)), -1);
    char bad[] = "GET / HTTP/1.1\r\nX-Dms-Wake: ../etc\r\n\r\n";
    len = strlen(bad);
    ck_assert_int_eq(wake_take_header(bad, &len, id, sizeof(id)), -1);
    char body_lookalike[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nX-Dms-Wake: d1\r\n";
    len = strlen(body_lookalike);
    ck_assert_int_eq(wake_take_header(body_lookalike, &len, id, sizeof(id)), -1);
}
END_TEST

START_TEST(test_probe_addresses)
{
    struct sockaddr_in sa;
    ck_assert_int_eq(probe_parse_addr("172.18.0.5:8080", &sa), 0);
    ck_assert_int_eq(ntohs(sa.sin_port), 8080);
    ck_assert_int_eq(probe_parse_addr("172.18.0.5", &sa), -1);
    ck_assert_int_eq(probe_parse_addr("172.18.0.5:0", &sa), -1);
    ck_assert_int_eq(probe_parse_addr("host:80", &sa), -1);
    ck_assert_int_eq(probe_parse_addr(":80", &sa), -1);
    ck_assert_int_eq(probe_tcp("127.0.0.1:1", 500), -1); /* nothing listens on port 1 */
}
END_TEST

/* ---- a tiny HTTP server: answers its name; /sleep/<ms> waits first ---- */

typedef struct server {
    int fd;
    int port;
    char name[16];
    char addr[32];
    pthread_t t;
} server;

/* Each server answers with its own name: one thread per connection. */
typedef struct conn_arg {
    int fd;
    const char *name;
} conn_arg;

static void *serve_conn(void *arg)
{
    conn_arg *ca = arg;
    char buf[4096];
    size_t got = 0;
    while (got < sizeof(buf) - 1) {
        ssize_t n = recv(ca->fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    buf[got] = '\0';
    char *sl = strstr(buf, "/sleep/");
    if (sl)
        usleep((useconds_t)strtol(sl + 7, NULL, 10) * 1000);
    /* The app must never see dmsd's wake header. */
    const char *body = strstr(buf, "X-Dms-Wake") || strstr(buf, "x-dms-wake") ? "LEAKED" : ca->name;
    char resp[256];
    int n =
        snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(body), body);
    (void)!send(ca->fd, resp, (size_t)n, MSG_NOSIGNAL);
    close(ca->fd);
    free(ca);
    return NULL;
}

static void *serve(void *arg)
{
    server *s = arg;
    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        conn_arg *ca = malloc(sizeof(*ca));
        ca->fd = fd;
        ca->name = s->name;
        pthread_t t;
        pthread_create(&t, NULL, serve_conn, ca);
        pthread_detach(t);
    }
}

static void server_start(server *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s->fd, 64), 0);
    getsockname(s->fd, (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.sin_port);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
    pthread_create(&s->t, NULL, serve, s);
    pthread_detach(s->t);
}

/* GET http://<host>:<port><path> through Caddy; returns the status, body into out. */
static int get(int port, const char *host, const char *path, char *out, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    (void)!send(fd, req, (size_t)n, MSG_NOSIGNAL);
    char buf[8192];
    size_t got = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    buf[got] = '\0';
    int status = tu_http_status(buf);
    if (status < 0)
        return -1;
    char *b = strstr(buf, "\r\n\r\n");
    snprintf(out, size, "%s", b ? b + 4 : "");
    return status;
}

/* ---- the fixture: a store, core, wake listener, router with its Caddy ---- */

static char dir[64];
static app A;
static server S1, S2;

static pid_t caddy_pid_file(void);

/* A failed check ends the test's process at once, without the teardown: its Caddy (in a session of its own)
 * must not outlive it. */
static bool torn_down;

static bool runs_caddy(pid_t pid)
{
    char p[64], exe[512];
    snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(p, exe, sizeof(exe) - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    return strstr(exe, "caddy") != NULL;
}

static void at_exit(void)
{
    if (torn_down)
        return;
    pid_t pid = caddy_pid_file();
    if (pid > 1 && runs_caddy(pid))
        kill(pid, SIGTERM);
    if (dms_rm_rf(dir, NULL) != 0) /* not tu_rmtree: atexit runs outside any test */
        fprintf(stderr, "could not remove %s\n", dir);
}

static void fixture_up(void)
{
    tu_mkdtemp(dir, sizeof(dir)); /* anew per test: CK_FORK=no shares the process */
    static bool registered;
    if (!registered)
        ck_assert_int_eq(atexit(at_exit), 0);
    registered = true;
    char p[512];
    snprintf(p, sizeof(p), "%s/dms.db", dir);
    dms_error err = {0};
    memset(&A, 0, sizeof(A));
    ck_assert_int_eq(store_open(&A.st, p, &err), 0);
    ck_assert_int_eq(core_open(&A.core, A.st, &err), 0);
    ck_assert_msg(snooze_open(&A.snooze, A.core, &err) == 0, "%s", err.message);
    server_start(&S1, "one");
    server_start(&S2, "two");
}

static void start_router(void)
{
    char state[512];
    snprintf(state, sizeof(state), "%s/caddy", dir);
    router_config rc = {.listen = "127.0.0.1:0", .state_dir = state, .wake_addr = snooze_wake_addr(A.snooze)};
    dms_error err = {0};
    ck_assert_msg(router_start(&A.router, A.core, &rc, &err) == 0, "%s", err.message);
    ck_assert_msg(router_up(A.router), "caddy did not start (is it installed?)");
}

static void fixture_down(void)
{
    torn_down = true;
    snooze_close(A.snooze);
    router_stop(A.router);
    core_close(A.core);
    store_close(A.st);
    tu_rmtree(dir);
    tz_cache_clear();
}

typedef struct run_args {
    const char *addr;
    droid_state state;
    bool asleep;
} run_args;

static int mut_run(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    (void)err;
    run_args *ra = ud;
    dmsd_set_str(&d->run_id, ra->addr ? "x-r1-1" : NULL);
    dmsd_set_str(&d->run_addr, ra->addr);
    d->state = ra->state;
    d->asleep = ra->asleep;
    return 0;
}

static int mut_delete(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)d;
    (void)ud;
    (void)err;
    core_tx_purge(tx);
    return 0;
}

static char *create_droid(const char *name)
{
    json_t *body = json_pack("{s:s, s:s}", "name", name, "repo", "/nowhere");
    droid *d = droid_new(), *out = NULL;
    dms_error err = {0};
    d->user_id = strdup("u");
    ck_assert_int_eq(droid_parse_create(body, d, &err), 0);
    ck_assert_msg(core_create(A.core, d, &out, &err) == 0, "%s", err.message);
    char *id = strdup(out->id);
    droid_free(d);
    droid_free(out);
    json_decref(body);
    return id;
}

static void set_run(const char *id, const char *addr, droid_state st, bool asleep)
{
    run_args ra = {.addr = addr, .state = st, .asleep = asleep};
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(A.core, NULL, id, mut_run, &ra, NULL, &err), 0);
}

static long admin_status(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "curl -s -o /dev/null -w '%%{http_code}' --unix-socket %s/caddy/admin.sock -H 'Host: dms-admin' "
             "http://dms-admin%s",
             dir, path);
    FILE *f = popen(cmd, "r");
    char out[32] = "";
    if (f) {
        if (!fgets(out, sizeof(out), f))
            out[0] = '\0';
        pclose(f);
    }
    return strtol(out, NULL, 10); /* 0 when curl printed nothing */
}

START_TEST(test_routes_by_name_and_a_deleted_droid_has_none)
{
    start_router();
    char *id = create_droid("web");
    set_run(id, S1.addr, DROID_RUNNING, false);
    dms_error err = {0};
    ck_assert_msg(router_sync(A.router, id, &err) == 0, "%s", err.message);
    char body[256];
    int port = router_port(A.router);
    ck_assert_int_eq(get(port, "web.localhost", "/", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "one");
    ck_assert_int_eq(get(port, "WEB.localhost:1234", "/", body, sizeof(body)),
                     200); /* case, port: same host */
    ck_assert_int_eq(get(port, "other.localhost", "/", body, sizeof(body)), 404);
    char path[128];
    snprintf(path, sizeof(path), "/id/dms-%s", id);
    ck_assert_int_eq(admin_status(path), 200);
    /* stopped: a 503 that says so */
    set_run(id, NULL, DROID_STOPPED, false);
    ck_assert_int_eq(router_sync(A.router, id, &err), 0);
    ck_assert_int_eq(get(port, "web.localhost", "/", body, sizeof(body)), 503);
    ck_assert_ptr_nonnull(strstr(body, "stopped"));
    /* deleted: the route is gone from Caddy and the host is unknown */
    ck_assert_int_eq(core_mutate(A.core, NULL, id, mut_delete, NULL, NULL, &err), 0);
    ck_assert_int_eq(router_sync(A.router, id, &err), 0);
    ck_assert_int_eq(admin_status(path), 404);
    ck_assert_int_eq(get(port, "web.localhost", "/", body, sizeof(body)), 404);
    free(id);
}
END_TEST

typedef struct slow_req {
    int port;
    int status;
    char body[64];
} slow_req;

static void *slow_get(void *arg)
{
    slow_req *sr = arg;
    sr->status = get(sr->port, "web.localhost", "/sleep/1500", sr->body, sizeof(sr->body));
    return NULL;
}

START_TEST(test_swap_keeps_requests_in_flight_and_drains_the_old_upstream)
{
    start_router();
    char *id = create_droid("web");
    set_run(id, S1.addr, DROID_RUNNING, false);
    dms_error err = {0};
    ck_assert_int_eq(router_sync(A.router, id, &err), 0);
    int port = router_port(A.router);
    slow_req sr = {.port = port};
    pthread_t t;
    pthread_create(&t, NULL, slow_get, &sr);
    usleep(300 * 1000); /* in flight to "one" */
    int64_t t0 = dms_mono_ms();
    ck_assert_msg(router_swap(A.router, id, S2.addr, S1.addr, &err) == 0, "%s", err.message);
    int64_t swap_ms = dms_mono_ms() - t0;
    char body[64];
    for (int i = 0; i < 20; i++) { /* every new request goes to the new upstream */
        ck_assert_int_eq(get(port, "web.localhost", "/", body, sizeof(body)), 200);
        ck_assert_str_eq(body, "two");
    }
    int64_t waited = router_drain(A.router, S1.addr, 10000);
    ck_assert_msg(waited >= 500, "drained after %lld ms while a 1.5 s request was in flight",
                  (long long)waited);
    pthread_join(t, NULL);
    ck_assert_int_eq(sr.status, 200); /* the request in flight finished on the old upstream */
    ck_assert_str_eq(sr.body, "one");
    ck_assert(swap_ms < 1000);
    /* nothing in flight: drained at once; release drops the old upstream from the route */
    ck_assert_int_lt(router_drain(A.router, S1.addr, 10000), 500);
    set_run(id, S2.addr, DROID_RUNNING, false);
    ck_assert_int_eq(router_release(A.router, id, &err), 0);
    ck_assert_int_eq(get(port, "web.localhost", "/", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "two");
    free(id);
}
END_TEST

static pid_t caddy_pid_file(void)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/caddy/caddy.pid", dir);
    FILE *f = fopen(p, "r");
    char line[32] = "";
    if (f) {
        if (!fgets(line, sizeof(line), f))
            line[0] = '\0';
        (void)fclose(f); /* read only */
    }
    return (pid_t)strtol(line, NULL, 10); /* 0 without a pid file */
}

START_TEST(test_caddy_is_restarted_with_every_route_and_routes_come_from_the_store)
{
    start_router();
    char *a = create_droid("alpha"), *b = create_droid("beta");
    set_run(a, S1.addr, DROID_RUNNING, false);
    set_run(b, S2.addr, DROID_RUNNING, false);
    dms_error err = {0};
    ck_assert_int_eq(router_sync(A.router, a, &err), 0);
    ck_assert_int_eq(router_sync(A.router, b, &err), 0);
    int port = router_port(A.router);
    char body[64];
    pid_t pid = caddy_pid_file();
    ck_assert_int_gt(pid, 1);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int64_t t0 = dms_mono_ms();
    int st = -1;
    while (dms_mono_ms() - t0 < 10000 && (st = get(port, "beta.localhost", "/", body, sizeof(body))) != 200)
        usleep(50 * 1000);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(body, "two");
    ck_assert_int_eq(get(port, "alpha.localhost", "/", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "one");
    ck_assert_int_ne(caddy_pid_file(), pid);
    /* a new router (a dmsd restart) rebuilds every route from the store, with no sync */
    router_stop(A.router);
    A.router = NULL;
    ck_assert_int_eq(get(port, "alpha.localhost", "/", body, sizeof(body)), -1); /* Caddy stopped with it */
    start_router();
    port = router_port(A.router);
    ck_assert_int_eq(get(port, "alpha.localhost", "/", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "one");
    ck_assert_int_eq(get(port, "beta.localhost", "/", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "two");
    free(a);
    free(b);
}
END_TEST

typedef struct wake_req {
    int port;
    int status;
    char body[64];
    int64_t ms;
} wake_req;

static void *wake_get(void *arg)
{
    wake_req *wr = arg;
    int64_t t0 = dms_mono_ms();
    wr->status = get(wr->port, "sleepy.localhost", "/hello", wr->body, sizeof(wr->body));
    wr->ms = dms_mono_ms() - t0;
    return NULL;
}

START_TEST(test_wake_handler_holds_the_request_until_ready_and_passes_it_through)
{
    start_router();
    dms_error err = {0};
    ck_assert_int_eq(snooze_start(A.snooze, A.router, &err), 0);
    char *id = create_droid("sleepy");
    set_run(id, NULL, DROID_SNOOZED, true);
    ck_assert_int_eq(router_sync(A.router, id, &err), 0);
    wake_req wr = {.port = router_port(A.router)};
    pthread_t t;
    pthread_create(&t, NULL, wake_get, &wr);
    /* the request is held: the droid is asked to wake (snoozed -> starting), nothing is answered yet */
    int64_t t0 = dms_mono_ms();
    while (!snooze_waiting(A.snooze, id) && dms_mono_ms() - t0 < 5000)
        usleep(10 * 1000);
    ck_assert(snooze_waiting(A.snooze, id));
    droid *d = NULL;
    for (int i = 0; i < 100; i++) {
        droid_free(d);
        d = core_get_copy(A.core, id);
        if (d->state == DROID_STARTING)
            break;
        usleep(10 * 1000);
    }
    ck_assert_int_eq(d->state, DROID_STARTING);
    ck_assert(!d->asleep);
    ck_assert_str_eq(d->reason, "woken by a request");
    droid_free(d);
    usleep(300 * 1000);
    ck_assert_int_eq(wr.status, 0); /* still held */
    /* the runner's part: the new container answers, then the route moves to it */
    set_run(id, S1.addr, DROID_STARTING, false);
    snooze_ready(A.snooze, id, S1.addr);
    ck_assert_int_eq(router_swap(A.router, id, S1.addr, NULL, &err), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(wr.status, 200);
    ck_assert_str_eq(wr.body, "one"); /* the app's own answer, without the wake header */
    free(id);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_router");
    TCase *t = tcase_create("pure");
    tcase_add_test(t, test_desired_route_follows_the_droid);
    tcase_add_test(t, test_wake_header_is_found_and_removed);
    tcase_add_test(t, test_probe_addresses);
    suite_add_tcase(s, t);
    t = tcase_create("caddy");
    tcase_set_timeout(t, 60);
    tcase_add_checked_fixture(t, fixture_up, fixture_down);
    tcase_add_test(t, test_routes_by_name_and_a_deleted_droid_has_none);
    tcase_add_test(t, test_swap_keeps_requests_in_flight_and_drains_the_old_upstream);
    tcase_add_test(t, test_caddy_is_restarted_with_every_route_and_routes_come_from_the_store);
    tcase_add_test(t, test_wake_handler_holds_the_request_until_ready_and_passes_it_through);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return EXIT_FAILURE;
    return tu_run(suite());
}
