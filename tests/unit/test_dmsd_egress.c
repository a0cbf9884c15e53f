/* test_dmsd_egress.c - where dmsd's git may connect: the address policy as a table (every special-purpose
 * range, IPv4 carried in IPv6, the operator's CIDRs), DMS_GIT_ALLOW_NETS parsing, and the guarded socket
 * stream against real listeners on loopback: http://, https://, ssh:// (and scp-like) and git:// are all
 * refused by default without a connection (the same answer for an open and a closed port; `localhost` too),
 * and once 127.0.0.0/8 is permitted each of them really reaches the listener through the stream (for SSH,
 * that proves libssh2 gets the stream's socket); a listener that stalls fails the call after the timeout,
 * and a cancel ends a stalled clone at once. */
#include <arpa/inet.h>
#include <check.h>
#include <git2.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../dms/build/egress.h"
#include "../../dms/build/git.h"
#include "../../dms/common.h"
#include "testutil.h"

#define STALL_TIMEOUT_S 1    /* DMS_GIT_TIMEOUT_S of the stall tests */
#define ACCEPT_WAIT_MS  5000 /* how long a listener waits for its one connection */
#define QUIET_MS        300  /* a recording listener hangs up once the client is quiet this long */
#define STALL_MAX_MS    15000
#define GOT_MAX         512

/* libgit2 1.5.1 (Debian 12) leaks pcre2 match data on every clone (fixed upstream by libgit2 PR #6382). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libpcre2-8.so\n";
}

/* libgit2 1.5.1 leaks 32 bytes when an SSH handshake fails after the TCP connection (reproduced with its own
 * socket stream, without dmsd's): LeakSanitizer ignores what such a call allocates. The guarded stream's own
 * allocations stay checked: the other transports run the same code. */
void __lsan_disable(void) __attribute__((weak));
void __lsan_enable(void) __attribute__((weak));

static int ls_remote_of(const char *url, dms_error *err)
{
    bool ssh = strncmp(url, "ssh://", 6) == 0;
    if (ssh && __lsan_disable)
        __lsan_disable();
    gitx_remote_info info;
    int r = gitx_ls_remote(url, &info, err);
    if (ssh && __lsan_enable)
        __lsan_enable();
    if (r == 0)
        gitx_remote_info_clear(&info);
    return r;
}

/* ---- the address policy ---- */

typedef struct addr_case {
    const char *ip;
    const char *kind; /* NULL: allowed */
} addr_case;

START_TEST(test_special_purpose_addresses_are_refused_and_public_ones_allowed)
{
    static const addr_case cases[] = {
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"10.1.2.3", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"192.168.1.1", "private"},
        {"169.254.169.254", "link-local"}, /* cloud metadata */
        {"100.64.0.1", "shared address space"},
        {"0.0.0.0", "this network"},
        {"0.1.2.3", "this network"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"255.255.255.255", "reserved"},
        {"240.0.0.1", "reserved"},
        {"192.0.2.1", "documentation"},
        {"198.18.0.1", "benchmarking"},
        {"192.0.0.8", "IETF protocol assignments"},
        {"::", "unspecified"},
        {"::1", "loopback"},
        {"fe80::1", "link-local"},
        {"febf::1", "link-local"},
        {"fec0::1", "site-local"},
        {"fc00::1", "unique local (private)"},
        {"fd12:3456::1", "unique local (private)"},
        {"ff02::1", "multicast"},
        {"2001:db8::1", "documentation"},
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
        {"64:ff9b:1::1", "local-use NAT64"},
        {"100::1", "discard"},
        /* IPv4 carried in IPv6: judged as the IPv4 address */
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:169.254.169.254", "link-local"},
        {"::ffff:0:10.0.0.1", "private"}, /* IPv4-translated */
        {"64:ff9b::7f00:1", "loopback"},  /* NAT64 of 127.0.0.1 */
        {"2002:c0a8:0101::1", "private"}, /* 6to4 of 192.168.1.1 */
        {"::127.0.0.1", "loopback"},      /* IPv4-compatible */
        {"::ffff:8.8.8.8", NULL},
        {"64:ff9b::808:808", NULL},
        {"2002:0808:0808::1", NULL},
        /* public */
        {"8.8.8.8", NULL},
        {"1.1.1.1", NULL},
        {"172.32.0.1", NULL},
        {"172.15.255.255", NULL},
        {"100.128.0.1", NULL},
        {"169.255.0.1", NULL},
        {"2606:4700:4700::1111", NULL},
        {"2a00:1450:4001::1", NULL},
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(cases); i++) {
        const char *got = egress_refusal_text(cases[i].ip, NULL, 0);
        if (cases[i].kind)
            ck_assert_msg(got && strcmp(got, cases[i].kind) == 0, "%s: want %s, got %s", cases[i].ip,
                          cases[i].kind, got ? got : "allowed");
        else
            ck_assert_msg(!got, "%s: want allowed, got %s", cases[i].ip, got);
    }
    ck_assert_str_eq(egress_refusal_text("example.com", NULL, 0), "not an IP address");
}
END_TEST

START_TEST(test_the_operators_networks_win_over_every_refusal)
{
    egress_net *nets = NULL;
    size_t n = 0;
    dms_error err = {0};
    ck_assert_msg(egress_parse_nets(" 127.0.0.0/8 , fd00::/8,10.1.2.3", &nets, &n, &err) == 0, "%s",
                  err.message);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_null(egress_refusal_text("127.0.0.1", nets, n));
    ck_assert_ptr_null(egress_refusal_text("::ffff:127.0.0.1", nets, n)); /* mapped: the IPv4 rule */
    ck_assert_ptr_null(egress_refusal_text("64:ff9b::7f00:1", nets, n));
    ck_assert_ptr_null(egress_refusal_text("fd00::5", nets, n));
    ck_assert_ptr_null(egress_refusal_text("10.1.2.3", nets, n)); /* a bare address is one host */
    ck_assert_str_eq(egress_refusal_text("10.1.2.4", nets, n), "private");
    ck_assert_str_eq(egress_refusal_text("::1", nets, n), "loopback"); /* 127/8 is not ::1 */
    ck_assert_str_eq(egress_refusal_text("fc00::1", nets, n), "unique local (private)");
    ck_assert_str_eq(egress_refusal_text("169.254.169.254", nets, n), "link-local");
    free(nets);
}
END_TEST

START_TEST(test_allow_nets_that_are_not_networks_are_refused_naming_the_setting)
{
    static const char *const bad[] = {"127.0.0.1/8", "localhost", "10.0.0.0/33", "::1/129",
                                      "1.2.3.4/",    "1.2.3.4/x", "fd00::1/8",   "10.0.0.0/-1"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad); i++) {
        egress_net *nets = NULL;
        size_t n = 0;
        dms_error err = {0};
        ck_assert_msg(egress_parse_nets(bad[i], &nets, &n, &err) == -DMS_E_INVALID, "%s accepted", bad[i]);
        ck_assert_str_eq(err.field, EGRESS_ALLOW_NETS_SETTING);
        ck_assert_msg(strstr(err.message, bad[i]) != NULL, "%s", err.message);
        ck_assert_ptr_null(nets);
    }
    egress_net *nets = NULL;
    size_t n = 9;
    dms_error err = {0};
    ck_assert_int_eq(egress_parse_nets("", &nets, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(egress_parse_nets(" , ", &nets, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(egress_parse_nets("0.0.0.0/0,::/0", &nets, &n, &err), 0);
    ck_assert_ptr_null(egress_refusal_text("127.0.0.1", nets, n));
    ck_assert_ptr_null(egress_refusal_text("::1", nets, n));
    free(nets);
}
END_TEST

/* ---- listeners on loopback ---- */

typedef enum { L_IDLE, L_RECORD, L_STALL } listen_mode;

typedef struct listener {
    int fd;
    int port;
    listen_mode mode;
    pthread_t thread;
    atomic_bool accepted;
    atomic_bool stop;
    atomic_bool gave_up; /* a stall ended by the listener's own limit, not by the client */
    char got[GOT_MAX];
    size_t n;
} listener;

static void *listener_main(void *arg)
{
    listener *l = arg;
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    if (poll(&p, 1, ACCEPT_WAIT_MS) != 1)
        return NULL;
    int c = accept(l->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    atomic_store(&l->accepted, true);
    int64_t end = dms_mono_ms() + STALL_MAX_MS;
    /* Record: until the client is quiet. Stall: read and never answer, until told to stop. */
    while (!atomic_load(&l->stop) && dms_mono_ms() < end) {
        struct pollfd q = {.fd = c, .events = POLLIN};
        int r = poll(&q, 1, QUIET_MS);
        if (r == 0 && l->mode == L_RECORD)
            break;
        if (r == 1) {
            char buf[GOT_MAX];
            ssize_t k = read(c, buf, sizeof(buf));
            if (k <= 0)
                break;
            size_t room = sizeof(l->got) - 1 - l->n;
            memcpy(l->got + l->n, buf, (size_t)k < room ? (size_t)k : room);
            l->n += (size_t)k < room ? (size_t)k : room;
        }
    }
    if (dms_mono_ms() >= end)
        atomic_store(&l->gave_up, true);
    close(c);
    return NULL;
}

static void listener_open(listener *l, listen_mode mode)
{
    memset(l, 0, sizeof(*l));
    l->mode = mode;
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(l->fd, 4), 0);
    socklen_t len = sizeof(a);
    getsockname(l->fd, (struct sockaddr *)&a, &len);
    l->port = ntohs(a.sin_port);
    if (mode != L_IDLE)
        ck_assert_int_eq(pthread_create(&l->thread, NULL, listener_main, l), 0);
}

/* Nobody connected: no connection is waiting in the backlog. */
static bool listener_untouched(listener *l)
{
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0 && !atomic_load(&l->accepted);
}

static void listener_close(listener *l)
{
    atomic_store(&l->stop, true);
    if (l->mode != L_IDLE)
        pthread_join(l->thread, NULL);
    close(l->fd);
}

/* A port nothing listens on (bound and closed again). */
static int closed_port(void)
{
    listener l;
    listener_open(&l, L_IDLE);
    int port = l.port;
    listener_close(&l);
    return port;
}

static void init_git(const char *allow, int timeout_s)
{
    dms_error err = {0};
    git_libgit2_init();
    gitx_config cfg = {.allow_nets = allow, .timeout_s = timeout_s};
    ck_assert_msg(gitx_init(&cfg, &err) == 0, "%s", err.message);
}

static void fini_git(void)
{
    gitx_shutdown();
    git_libgit2_shutdown();
}

/* ---- refused by default ---- */

/* The transports, and other spellings of loopback that the resolver turns into it. */
static const char *const schemes[] = {
    "http://127.0.0.1:%d/x.git",       "https://127.0.0.1:%d/x.git", "ssh://git@127.0.0.1:%d/x.git",
    "git://127.0.0.1:%d/x.git",        "http://[::1]:%d/x.git",      "http://2130706433:%d/x.git",
    "http://0x7f000001:%d/x.git",      "http://127.1:%d/x.git",      "http://0177.0.0.1:%d/x.git",
    "http://[::ffff:7f00:1]:%d/x.git", "http://0.0.0.0:%d/x.git",
};

/* message with the URL taken out: what must not differ between an open and a closed port */
static void without(char *message, const char *url)
{
    char *p = strstr(message, url);
    if (p)
        memmove(p, p + strlen(url), strlen(p + strlen(url)) + 1);
}

START_TEST(test_every_transport_is_refused_without_a_connection_whether_the_port_is_open_or_not)
{
    init_git(NULL, GITX_DEFAULT_TIMEOUT_S);
    for (size_t i = 0; i < DMS_ARRAY_SIZE(schemes); i++) {
        listener open_one;
        listener_open(&open_one, L_IDLE);
        char url_open[128], url_closed[128];
        snprintf(url_open, sizeof(url_open), schemes[i], open_one.port);
        snprintf(url_closed, sizeof(url_closed), schemes[i], closed_port());
        gitx_remote_info info;
        dms_error e_open = {0}, e_closed = {0};
        ck_assert_int_eq(gitx_ls_remote(url_open, &info, &e_open), -DMS_E_FORBIDDEN);
        ck_assert_int_eq(gitx_ls_remote(url_closed, &info, &e_closed), -DMS_E_FORBIDDEN);
        ck_assert_msg(listener_untouched(&open_one), "%s: the listener was connected to", url_open);
        listener_close(&open_one);
        ck_assert_str_eq(e_open.field, "repo");
        ck_assert(!e_open.retryable);
        ck_assert_msg(strstr(e_open.message, "DMS_GIT_ALLOW_NETS"), "%s", e_open.message);
        without(e_open.message, url_open);
        without(e_closed.message, url_closed);
        ck_assert_str_eq(e_open.message, e_closed.message);
    }
    fini_git();
}
END_TEST

START_TEST(test_scp_like_ssh_and_a_name_that_resolves_to_loopback_are_refused)
{
    init_git(NULL, GITX_DEFAULT_TIMEOUT_S);
    listener l;
    listener_open(&l, L_IDLE);
    char url[128];
    snprintf(url, sizeof(url), "http://localhost:%d/x.git", l.port);
    gitx_remote_info info;
    dms_error err = {0};
    ck_assert_int_eq(gitx_ls_remote(url, &info, &err), -DMS_E_FORBIDDEN);
    /* the user sees the name they gave, not the address it resolved to */
    ck_assert_msg(strstr(err.message, "localhost") && !strstr(err.message, "127.0.0.1"), "%s", err.message);
    ck_assert(listener_untouched(&l));
    listener_close(&l);
    ck_assert_int_eq(gitx_ls_remote("git@127.0.0.1:x.git", &info, &err), -DMS_E_FORBIDDEN);
    char dst[64], sha[GIT_SHA_HEX + 1];
    tu_mkdtemp(dst, sizeof(dst));
    rmdir(dst);
    ck_assert_int_eq(gitx_clone("http://169.254.169.254/x.git", NULL, NULL, dst, NULL, sha, &err),
                     -DMS_E_FORBIDDEN);
    ck_assert_int_eq(gitx_branch_head("http://[::ffff:127.0.0.1]:1/x.git", NULL, sha, NULL, &err),
                     -DMS_E_FORBIDDEN);
    fini_git();
}
END_TEST

/* ---- permitted: each transport really goes through the stream ---- */

START_TEST(test_each_transport_reaches_a_permitted_listener_through_the_stream)
{
    static const struct {
        const char *url;
        const char *starts; /* what the client sends first */
    } cases[] = {
        {"http://127.0.0.1:%d/x.git", "GET /x.git/info/refs?service=git-upload-pack"},
        {"git://127.0.0.1:%d/x.git", "git-upload-pack /x.git"}, /* after a 4-digit length */
        {"ssh://git@127.0.0.1:%d/x.git", "SSH-2.0-"},           /* libssh2's banner: it has our socket */
        {"https://127.0.0.1:%d/x.git", "\x16\x03"},             /* a TLS record: mbedTLS over our stream */
        {"http://localhost:%d/x.git", "GET /x.git/info/refs"},
    };
    init_git("127.0.0.0/8", GITX_DEFAULT_TIMEOUT_S);
    for (size_t i = 0; i < DMS_ARRAY_SIZE(cases); i++) {
        listener l;
        listener_open(&l, L_RECORD);
        char url[128];
        snprintf(url, sizeof(url), cases[i].url, l.port);
        dms_error err = {0};
        ck_assert_int_lt(ls_remote_of(url, &err), 0); /* the listener hangs up */
        ck_assert_msg(err.code != DMS_E_FORBIDDEN, "%s: %s", url, err.message);
        listener_close(&l);
        const char *got = l.got;
        if (strncmp(cases[i].url, "git://", 6) == 0 && l.n >= 4)
            got += 4;
        size_t len = strlen(cases[i].starts);
        ck_assert_msg(l.n >= len && memcmp(got, cases[i].starts, len) == 0,
                      "%s: the listener got %zu bytes: %.60s", url, l.n, l.got);
    }
    fini_git();
}
END_TEST

/* ---- stalls and cancels ---- */

START_TEST(test_a_remote_that_stalls_fails_after_the_timeout)
{
    static const char *const urls[] = {"http://127.0.0.1:%d/x.git", "ssh://git@127.0.0.1:%d/x.git",
                                       "git://127.0.0.1:%d/x.git"};
    init_git("127.0.0.0/8", STALL_TIMEOUT_S);
    for (size_t i = 0; i < DMS_ARRAY_SIZE(urls); i++) {
        listener l;
        listener_open(&l, L_STALL);
        char url[128];
        snprintf(url, sizeof(url), urls[i], l.port);
        dms_error err = {0};
        int r = ls_remote_of(url, &err);
        listener_close(&l);
        ck_assert_msg(!atomic_load(&l.gave_up), "%s: the call outlasted the listener", url);
        ck_assert_msg(r == -DMS_E_UNAVAILABLE && err.retryable, "%s: %d %s", url, r, err.message);
        ck_assert_msg(strstr(err.message, "DMS_GIT_TIMEOUT_S"), "%s: %s", url, err.message);
    }
    fini_git();
}
END_TEST

typedef struct clone_args {
    char url[128];
    char dst[64];
    dms_cancel_token *cancel;
    int rc;
    dms_error err;
} clone_args;

static void *clone_main(void *arg)
{
    clone_args *c = arg;
    char sha[GIT_SHA_HEX + 1];
    c->rc = gitx_clone(c->url, NULL, NULL, c->dst, c->cancel, sha, &c->err);
    return NULL;
}

START_TEST(test_a_cancel_ends_a_clone_that_waits_on_a_silent_remote)
{
    init_git("127.0.0.0/8", GITX_DEFAULT_TIMEOUT_S); /* far longer than the test: only the cancel ends it */
    listener l;
    listener_open(&l, L_STALL);
    clone_args c = {0};
    snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%d/x.git", l.port);
    tu_mkdtemp(c.dst, sizeof(c.dst));
    rmdir(c.dst);
    dms_error err = {0};
    ck_assert_int_eq(dms_cancel_token_new(&c.cancel, &err), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, clone_main, &c), 0);
    for (int64_t end = dms_mono_ms() + ACCEPT_WAIT_MS; !atomic_load(&l.accepted) && dms_mono_ms() < end;)
        usleep(10000);
    ck_assert(atomic_load(&l.accepted));
    dms_cancel_token_cancel(c.cancel);
    pthread_join(t, NULL);
    listener_close(&l);
    ck_assert_msg(!atomic_load(&l.gave_up), "the clone outlasted the listener");
    ck_assert_msg(c.rc == -DMS_E_CANCELLED, "%d %s", c.rc, c.err.message);
    dms_cancel_token_free(c.cancel);
    tu_rmtree(c.dst);
    fini_git();
}
END_TEST

START_TEST(test_git_refuses_to_run_unguarded)
{
    git_libgit2_init();
    gitx_remote_info info;
    dms_error err = {0};
    ck_assert_int_eq(gitx_ls_remote("https://example.com/x.git", &info, &err), -DMS_E_INTERNAL);
    git_libgit2_shutdown();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_egress");
    TCase *policy = tcase_create("policy");
    tcase_add_test(policy, test_special_purpose_addresses_are_refused_and_public_ones_allowed);
    tcase_add_test(policy, test_the_operators_networks_win_over_every_refusal);
    tcase_add_test(policy, test_allow_nets_that_are_not_networks_are_refused_naming_the_setting);
    suite_add_tcase(s, policy);
    TCase *stream = tcase_create("stream");
    tcase_set_timeout(stream, 60);
    tcase_add_test(stream, test_git_refuses_to_run_unguarded);
    tcase_add_test(stream,
                   test_every_transport_is_refused_without_a_connection_whether_the_port_is_open_or_not);
    tcase_add_test(stream, test_scp_like_ssh_and_a_name_that_resolves_to_loopback_are_refused);
    tcase_add_test(stream, test_each_transport_reaches_a_permitted_listener_through_the_stream);
    tcase_add_test(stream, test_a_remote_that_stalls_fails_after_the_timeout);
    tcase_add_test(stream, test_a_cancel_ends_a_clone_that_waits_on_a_silent_remote);
    suite_add_tcase(s, stream);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
