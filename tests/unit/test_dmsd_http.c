/* test_dmsd_http.c - dmsd's HTTP layer (api/http.c, deferred.c, routetable.c) on a real libmicrohttpd server
 * with a route table of its own: a deferred reply completed after the server was stopped and freed touches
 * nothing of it (under valgrind, `make valgrind`, any read of the freed server is an error: the server's lock
 * is only ever touched inside glibc, which ASan does not instrument), the ownership check that runs before
 * every handler with an :id, the refusal of a route table that does not say what an :id names, the short idle
 * limit of a connection that never shows a token, the long one of an authorised deferred reply, the
 * per-address connection limit, bodies cut early (an endless one without a token, an announced one too
 * large), repeated query keys. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../dms/api/auth.h"
#include "../../dms/api/http.h"
#include "../../dms/common.h"
#include "testutil.h"

#define SECRET          "http-test-secret-0123456789abcdef0123456789"
#define ANSWER_WAIT_MS  10000 /* generous: an answer that is due comes long before */
#define SHORT_TIMEOUT_S 1

static http_server *srv;
static int port;
static char *token;

/* ---- the routes under test ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static api_pending *parked; /* the last deferred request */
static int handler_calls;   /* handlers that ran */
static char last_id[64];    /* the :id the last owned handler saw */

static void on_deferred(void *app, api_req *r, const char *id)
{
    (void)app;
    (void)id;
    api_pending *p = api_defer(r);
    pthread_mutex_lock(&lock);
    parked = p;
    handler_calls++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void on_owned(void *app, api_req *r, const char *id)
{
    (void)app;
    pthread_mutex_lock(&lock);
    handler_calls++;
    snprintf(last_id, sizeof(last_id), "%s", id);
    pthread_mutex_unlock(&lock);
    api_reply_json(r, 200, json_pack("{s:s, s:s}", "id", id, "user", api_user(r)));
}

static void on_plain(void *app, api_req *r, const char *id)
{
    (void)app;
    (void)id;
    api_reply_json(r, 200, json_pack("{s:s}", "q", api_query(r, "q") ? api_query(r, "q") : ""));
}

/* Only "mine-<user>" belongs to <user>. */
static int check_id(void *app, api_id_kind kind, const char *user, const char *id, dms_error *err)
{
    (void)app;
    char mine[160];
    snprintf(mine, sizeof(mine), "mine-%s", user);
    if (kind == API_ID_DROID && strcmp(id, mine) == 0)
        return 0;
    return dms_error_set(err, DMS_E_NOT_FOUND, "id", "droid %s not found", id);
}

static const char *const q_none[] = {NULL};
static const char *const q_q[] = {"q", NULL};

static const api_route routes[] = {
    {"GET", "/deferred", on_deferred, q_none, API_ID_NONE},
    {"POST", "/plain", on_plain, q_q, API_ID_NONE},
    {"GET", "/plain", on_plain, q_q, API_ID_NONE},
    {"GET", "/things/:id", on_owned, q_none, API_ID_DROID},
    {"DELETE", "/things/:id", on_owned, q_none, API_ID_DROID},
    {NULL, NULL, NULL, NULL, API_ID_NONE},
};

static http_config config(void)
{
    return (http_config){.listen = "127.0.0.1:0",
                         .threads = 2,
                         .auth = {.secret = SECRET, .require_exp = true},
                         .routes = routes,
                         .check_id = check_id,
                         .per_ip_limit = 4,
                         .request_timeout_s = SHORT_TIMEOUT_S,
                         .idle_timeout_s = 60};
}

static void setup(void)
{
    dms_error err = {0};
    http_config hc = config();
    ck_assert_msg(http_start(&srv, &hc, &err) == 0, "http_start: %s", err.message);
    port = http_port(srv);
    auth_policy pol = {.secret = SECRET};
    ck_assert_int_eq(auth_mint(&pol, "alice", 600, &token, &err), 0);
    parked = NULL;
    handler_calls = 0;
    last_id[0] = '\0';
}

static void teardown(void)
{
    http_stop(srv);
    srv = NULL;
    free(token);
}

/* ---- raw sockets: the tests need half-sent requests and a chosen source address ---- */

static int connect_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %s: %s", src, strerror(errno));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ck_assert_msg(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}

/* Reads until the peer closes or deadline_ms passes: the bytes read into buf (NUL-terminated), and whether
 * the connection was closed (EOF or reset). */
static bool read_until_closed(int fd, char *buf, size_t size, int deadline_ms)
{
    size_t used = 0;
    int64_t end = dms_mono_ms() + deadline_ms;
    for (;;) {
        int left = (int)(end - dms_mono_ms());
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            continue;
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0) {
            buf[used] = '\0';
            return true;
        }
        size_t take = (size_t)n < size - 1 - used ? (size_t)n : size - 1 - used;
        memcpy(buf + used, tmp, take);
        used += take;
    }
    buf[used] = '\0';
    return false;
}

/* Reads one response's head (up to the blank line) within the deadline; returns its status, or -1. */
static int read_status(int fd, int deadline_ms)
{
    char head[8192];
    size_t used = 0;
    int64_t end = dms_mono_ms() + deadline_ms;
    while (used < sizeof(head) - 1) {
        int left = (int)(end - dms_mono_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        ssize_t n = recv(fd, head + used, 1, 0);
        if (n <= 0)
            return -1;
        used++;
        head[used] = '\0';
        if (strstr(head, "\r\n\r\n"))
            break;
    }
    return tu_http_status(head);
}

/* A whole request on a new connection; the response's status (the connection is closed after). */
static int request(const char *method, const char *path, const char *tok)
{
    int fd = connect_from("127.0.0.1");
    char req[2048];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%sContent-Length: 0\r\n\r\n", method, path,
             tok ? "Authorization: Bearer " : "", tok ? tok : "", tok ? "\r\n" : "");
    send_all(fd, req);
    int status = read_status(fd, ANSWER_WAIT_MS);
    close(fd);
    return status;
}

/* ---- a deferred reply that outlives its server ---- */

typedef struct client {
    int status;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    c->status = request("GET", "/deferred", token);
    return NULL;
}

static void wait_parked(void)
{
    pthread_mutex_lock(&lock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ANSWER_WAIT_MS / 1000;
    while (!parked && pthread_cond_timedwait(&cond, &lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&lock);
    ck_assert_msg(parked != NULL, "the request was never deferred");
}

static void *complete_main(void *arg)
{
    api_pending_complete(arg, 200, json_pack("{s:s}", "late", "yes"));
    return NULL;
}

START_TEST(test_a_deferred_reply_completed_after_the_server_was_freed_touches_nothing_of_it)
{
    client c = {0};
    pthread_t t, done;
    ck_assert_int_eq(pthread_create(&t, NULL, client_main, &c), 0);
    wait_parked();
    /* The engine-retry restart and the shutdown both do this while a git check is still running. */
    http_stop(srv);
    srv = NULL;
    pthread_join(t, NULL);
    ck_assert_int_eq(c.status, 503);
    /* The check ends now, on a thread of its own: under ASan, any touch of the freed server fails here. */
    ck_assert_int_eq(pthread_create(&done, NULL, complete_main, parked), 0);
    pthread_join(done, NULL);
    dms_error err = {0};
    http_config hc = config();
    ck_assert_int_eq(http_start(&srv, &hc, &err), 0); /* for the teardown */
}
END_TEST

/* ---- handing the listening socket over (dmsd without an engine, then with one) ---- */

START_TEST(test_a_handover_server_gives_its_socket_to_the_next_server)
{
    dms_error err = {0};
    http_stop(srv); /* the fixture's server: this test starts its own */
    http_config hc = config();
    hc.handover = true;
    ck_assert_int_eq(http_start(&srv, &hc, &err), 0);
    port = http_port(srv);
    ck_assert_int_eq(request("GET", "/plain", token), 200);
    int fd = http_stop_keep_listener(srv);
    srv = NULL;
    ck_assert_int_ge(fd, 0);
    hc = config();
    hc.has_listen_fd = true;
    hc.listen_fd = fd;
    ck_assert_int_eq(http_start(&srv, &hc, &err), 0);
    ck_assert_int_eq(http_port(srv), port);
    ck_assert_int_eq(request("GET", "/plain", token), 200);
}
END_TEST

START_TEST(test_an_epoll_server_does_not_hand_its_socket_over)
{
    /* MHD's quiesce races its epoll workers and aborts the process when it loses: such a server is stopped
     * without one, and says it has no socket to give. */
    ck_assert_int_eq(http_stop_keep_listener(srv), -1);
    dms_error err = {0};
    http_config hc = config();
    ck_assert_int_eq(http_start(&srv, &hc, &err), 0); /* for the teardown */
}
END_TEST

START_TEST(test_a_deferred_reply_is_not_cut_by_the_short_request_timeout)
{
    client c = {0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, client_main, &c), 0);
    wait_parked();
    /* An authorised request earned the long idle limit: it is still open well past the short one. */
    struct timespec nap = {.tv_sec = 3 * SHORT_TIMEOUT_S};
    nanosleep(&nap, NULL);
    api_pending_complete(parked, 200, json_pack("{s:b}", "ok", 1));
    pthread_join(t, NULL);
    ck_assert_int_eq(c.status, 200);
}
END_TEST

/* ---- ownership first ---- */

START_TEST(test_the_owner_check_runs_before_the_handler)
{
    ck_assert_int_eq(request("GET", "/things/mine-alice", token), 200);
    ck_assert_str_eq(last_id, "mine-alice");
    ck_assert_int_eq(handler_calls, 1);
    ck_assert_int_eq(request("GET", "/things/mine-bob", token), 404);
    ck_assert_int_eq(request("DELETE", "/things/mine-bob", token), 404);
    /* A bad query would be a 400: ownership is decided first, so another user's id says nothing more. */
    ck_assert_int_eq(request("GET", "/things/mine-bob?nosuch=1", token), 404);
    ck_assert_int_eq(handler_calls, 1);
    ck_assert_int_eq(request("GET", "/things/mine-alice?nosuch=1", token), 400);
}
END_TEST

START_TEST(test_a_route_table_that_does_not_say_what_an_id_names_is_refused)
{
    static const api_route no_kind[] = {{"GET", "/things/:id", on_owned, q_none, API_ID_NONE},
                                        {NULL, NULL, NULL, NULL, API_ID_NONE}};
    static const api_route kind_without_id[] = {{"GET", "/things", on_owned, q_none, API_ID_JOB},
                                                {NULL, NULL, NULL, NULL, API_ID_NONE}};
    static const api_route hook_with_token[] = {{"POST", "/things/:id/hook", on_owned, q_none, API_ID_HOOK},
                                                {NULL, NULL, NULL, NULL, API_ID_NONE}};
    static const api_route open_droid[] = {{"POST", "/things/:id/hook", on_owned, q_none, API_ID_DROID},
                                           {NULL, NULL, NULL, NULL, API_ID_NONE}};
    const api_route *bad[] = {no_kind, kind_without_id, hook_with_token};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_server *s = NULL;
        dms_error err = {0};
        http_config hc = config();
        hc.routes = bad[i];
        ck_assert_int_eq(http_start(&s, &hc, &err), -DMS_E_INVALID);
        ck_assert_str_eq(err.field, "routes");
        ck_assert_ptr_null(s);
    }
    http_server *s = NULL;
    dms_error err = {0};
    http_config hc = config();
    hc.open_routes = open_droid; /* served without a token: only the handler can check a hook's id */
    ck_assert_int_eq(http_start(&s, &hc, &err), -DMS_E_INVALID);
    hc = config();
    hc.check_id = NULL; /* nobody to ask */
    ck_assert_int_eq(http_start(&s, &hc, &err), -DMS_E_INVALID);
    ck_assert_msg(strstr(err.message, "ownership"), "%s", err.message);
}
END_TEST

/* ---- connections ---- */

START_TEST(test_a_request_never_completed_is_closed_after_the_request_timeout)
{
    int fd = connect_from("127.0.0.2");
    send_all(fd, "GET /plain HTTP/1.1\r\nHost: t\r\nX-Slow: "); /* and never the rest */
    char buf[256];
    ck_assert_msg(read_until_closed(fd, buf, sizeof(buf), ANSWER_WAIT_MS),
                  "a half-sent request still holds its connection");
    close(fd);
}
END_TEST

START_TEST(test_one_address_at_its_limit_leaves_room_for_another)
{
    /* A server whose short idle limit is far beyond the deadline below: a connection closed within it was
     * refused for the limit, not timed out. */
    http_server *own = NULL;
    dms_error err = {0};
    http_config hc = config();
    hc.request_timeout_s = 300;
    ck_assert_int_eq(http_start(&own, &hc, &err), 0);
    int first_port = port;
    port = http_port(own);
    int held[4];
    for (int i = 0; i < 4; i++) {
        held[i] = connect_from("127.0.0.2");
        send_all(held[i], "GET /plain HTTP/1.1\r\n");
    }
    /* The fifth from the same address is closed at once, without an answer. */
    int extra = connect_from("127.0.0.2");
    char buf[256];
    ck_assert_msg(read_until_closed(extra, buf, sizeof(buf), ANSWER_WAIT_MS) && buf[0] == '\0',
                  "a connection over the per-address limit was served: %s", buf);
    close(extra);
    /* Another address is served as usual. */
    ck_assert_int_eq(request("GET", "/plain", token), 200);
    for (int i = 0; i < 4; i++)
        close(held[i]);
    http_stop(own);
    port = first_port;
}
END_TEST

START_TEST(test_an_endless_body_without_a_token_is_answered_and_cut)
{
    int fd = connect_from("127.0.0.1");
    send_all(fd, "POST /plain HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[16 * 1024 + 16];
    int n = snprintf(chunk, sizeof(chunk), "%x\r\n", 16 * 1024);
    memset(chunk + n, 'x', 16 * 1024);
    memcpy(chunk + n + 16 * 1024, "\r\n", 3);
    size_t sent = 0;
    int status = -1;
    /* Send until the server answers; it must do so long before 64 MiB. */
    while (sent < 64u * 1024 * 1024) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0) {
            status = read_status(fd, ANSWER_WAIT_MS);
            break;
        }
        ssize_t w = send(fd, chunk, strlen(chunk), MSG_NOSIGNAL);
        if (w <= 0) {
            status = read_status(fd, ANSWER_WAIT_MS);
            break;
        }
        sent += (size_t)w;
    }
    ck_assert_msg(status == 401, "status %d after %zu bytes", status, sent);
    close(fd);
}
END_TEST

START_TEST(test_a_body_announced_too_large_is_refused_before_it_is_sent)
{
    int fd = connect_from("127.0.0.1");
    char req[2048];
    snprintf(
        req, sizeof(req),
        "POST /plain HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\nContent-Length: 104857600\r\n\r\n",
        token);
    send_all(fd, req);
    ck_assert_int_eq(read_status(fd, ANSWER_WAIT_MS), 413);
    close(fd);
}
END_TEST

START_TEST(test_a_repeated_query_key_is_refused)
{
    ck_assert_int_eq(request("GET", "/plain?q=1", token), 200);
    ck_assert_int_eq(request("GET", "/plain?q=1&q=2", token), 400);
    ck_assert_int_eq(request("GET", "/plain?r=1", token), 400);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_http");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_deferred_reply_completed_after_the_server_was_freed_touches_nothing_of_it);
    tcase_add_test(tc, test_a_deferred_reply_is_not_cut_by_the_short_request_timeout);
    tcase_add_test(tc, test_a_handover_server_gives_its_socket_to_the_next_server);
    tcase_add_test(tc, test_an_epoll_server_does_not_hand_its_socket_over);
    tcase_add_test(tc, test_the_owner_check_runs_before_the_handler);
    tcase_add_test(tc, test_a_route_table_that_does_not_say_what_an_id_names_is_refused);
    tcase_add_test(tc, test_a_request_never_completed_is_closed_after_the_request_timeout);
    tcase_add_test(tc, test_one_address_at_its_limit_leaves_room_for_another);
    tcase_add_test(tc, test_an_endless_body_without_a_token_is_answered_and_cut);
    tcase_add_test(tc, test_a_body_announced_too_large_is_refused_before_it_is_sent);
    tcase_add_test(tc, test_a_repeated_query_key_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
