/* gitstream.c - libgit2's socket stream, replaced by one that checks where it connects and gives up on a
 * connection that stalls (see gitstream.h). */
#include "gitstream.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common.h"

#define WATCH_TICK_MS 250 /* how often the watchdog looks at the open connections */
#define MS_PER_SEC    1000

enum { VERDICT_NONE, VERDICT_TIMED_OUT, VERDICT_CANCELLED };

/* The first members are libgit2 1.5's git_socket_stream (src/libgit2/streams/socket.h), in its order: its
 * SSH transport takes any registered standard stream for one and gives libssh2 the socket in `s`. */
typedef struct guarded_stream {
    git_stream parent;
    char *host;
    char *port;
    int s;
    /* ours */
    struct guarded_stream *next; /* in watch.head while connected */
    bool watched;
    atomic_int verdict;       /* VERDICT_*: set by the watchdog */
    dms_cancel_token *cancel; /* the call's, borrowed */
    gitstream_call *call;     /* the call that opened it (only touched while it is this thread's current) */
} guarded_stream;

typedef struct lg2_socket_stream_layout {
    git_stream parent;
    char *host;
    char *port;
    int s;
} lg2_socket_stream_layout;
_Static_assert(offsetof(guarded_stream, s) == offsetof(lg2_socket_stream_layout, s),
               "libgit2's SSH transport reads the socket at git_socket_stream's offset of s");

/* Written by install only, before any connection; a fixed array, so a straggling connection at exit never
 * reads freed memory. */
static struct {
    egress_net allow[EGRESS_NETS_MAX];
    size_t n_allow;
    int timeout_s;
    atomic_bool installed;
} cfg;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    guarded_stream *head;
    bool stop;
    bool running;
    pthread_t thread;
} watch = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local gitstream_call *current;

void gitstream_call_begin(gitstream_call *c, dms_cancel_token *cancel)
{
    memset(c, 0, sizeof(*c));
    c->cancel = cancel;
    current = c;
}

void gitstream_call_end(gitstream_call *c)
{
    if (current == c)
        current = NULL;
}

/* The call that opened st, if it is still running on this thread. */
static gitstream_call *call_of(guarded_stream *st)
{
    return st->call && st->call == current ? st->call : NULL;
}

/* ---- the watchdog ---- */

/* Milliseconds since the socket last carried data either way (the kernel's own account, so it sees what
 * libssh2 reads and writes on it too). */
static int64_t idle_ms(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;
    return ti.tcpi_last_data_recv < ti.tcpi_last_data_sent ? ti.tcpi_last_data_recv : ti.tcpi_last_data_sent;
}

static void watch_one(guarded_stream *st)
{
    if (atomic_load(&st->verdict) != VERDICT_NONE)
        return;
    int v = VERDICT_NONE;
    if (st->cancel && dms_cancel_token_cancelled(st->cancel))
        v = VERDICT_CANCELLED;
    else if (idle_ms(st->s) >= (int64_t)cfg.timeout_s * MS_PER_SEC)
        v = VERDICT_TIMED_OUT;
    if (v == VERDICT_NONE)
        return;
    atomic_store(&st->verdict, v);
    /* Whoever waits on the socket (our read, or libssh2's poll) wakes up to an end of stream. The fd stays
     * open until the stream's close, which first takes it off this list under the same lock. */
    shutdown(st->s, SHUT_RDWR);
}

static void *watch_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watch.lock);
    while (!watch.stop) {
        for (guarded_stream *st = watch.head; st; st = st->next)
            watch_one(st);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)WATCH_TICK_MS * NS_PER_MS;
        until.tv_sec += until.tv_nsec / NS_PER_SEC;
        until.tv_nsec %= NS_PER_SEC;
        pthread_cond_timedwait(&watch.wake, &watch.lock, &until);
    }
    pthread_mutex_unlock(&watch.lock);
    return NULL;
}

static void watch_add(guarded_stream *st)
{
    pthread_mutex_lock(&watch.lock);
    st->next = watch.head;
    watch.head = st;
    st->watched = true;
    pthread_mutex_unlock(&watch.lock);
}

static void watch_remove(guarded_stream *st)
{
    pthread_mutex_lock(&watch.lock);
    for (guarded_stream **pp = &watch.head; st->watched && *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    st->watched = false;
    pthread_mutex_unlock(&watch.lock);
}

/* ---- errors ---- */

/* Records a refusal or a stop in the stream's call and as libgit2's error; returns -1. */
static int fail_with(guarded_stream *st, int verdict, bool refused, const char *msg)
{
    gitstream_call *c = call_of(st);
    if (c) {
        c->refused |= refused;
        c->timed_out |= verdict == VERDICT_TIMED_OUT;
        c->cancelled |= verdict == VERDICT_CANCELLED;
        snprintf(c->message, sizeof(c->message), "%s", msg);
    }
    git_error_set_str(GIT_ERROR_NET, msg);
    return -1;
}

static void stop_message(const guarded_stream *st, int verdict, char *buf, size_t size)
{
    if (verdict == VERDICT_CANCELLED)
        snprintf(buf, size, "cancelled while talking to %s", st->host);
    else
        snprintf(buf, size, "%s sent or took no data for %d s: gave up (%s)", st->host, cfg.timeout_s,
                 GITSTREAM_TIMEOUT_SETTING);
}

/* The watchdog stopped this connection: say why. */
static int stopped(guarded_stream *st)
{
    int v = atomic_load(&st->verdict);
    char msg[GITSTREAM_MESSAGE_MAX];
    stop_message(st, v, msg, sizeof(msg));
    return fail_with(st, v, false, msg);
}

static int refused(guarded_stream *st)
{
    char msg[GITSTREAM_MESSAGE_MAX];
    snprintf(
        msg, sizeof(msg),
        "connection to %s refused: it is (or resolves to) a loopback, private, link-local or other "
        "special-purpose address, which dmsd does not connect to unless the operator permits the network "
        "in %s",
        st->host, EGRESS_ALLOW_NETS_SETTING);
    return fail_with(st, VERDICT_NONE, true, msg);
}

/* ---- connecting ---- */

/* A connected blocking socket to one address within the deadline, or -1 with errno set. */
static int connect_one(const struct addrinfo *ai, int64_t deadline_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
    while (r < 0 && (errno == EINPROGRESS || errno == EINTR)) {
        int64_t left = deadline_ms - dms_mono_ms();
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (n == 0)
            soerr = ETIMEDOUT;
        else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        r = soerr ? -1 : 0;
        errno = soerr;
        break;
    }
    if (r == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0)
        return fd;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static void log_refusal(const guarded_stream *st, const struct addrinfo *ai, const char *kind)
{
    char addr[NI_MAXHOST] = "?";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
    log_info("component=git op=egress host=%s port=%s addr=%s kind=\"%s\" verdict=refused note=\"%s permits "
             "a network\"",
             st->host, st->port, addr, kind, EGRESS_ALLOW_NETS_SETTING);
}

static int gs_connect(git_stream *stream)
{
    guarded_stream *st = (guarded_stream *)stream;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(st->host, st->port, &hints, &res);
    if (rc != 0) {
        git_error_set(GIT_ERROR_NET, "cannot resolve %s: %s", st->host,
                      rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    /* One deadline for every address: a name with many silent addresses gets no more time than one. */
    int64_t deadline = dms_mono_ms() + (int64_t)cfg.timeout_s * MS_PER_SEC;
    int fd = -1, last_errno = 0;
    size_t permitted = 0;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        const char *kind = egress_refusal(ai->ai_addr, cfg.allow, cfg.n_allow);
        if (kind) {
            log_refusal(st, ai, kind);
            continue;
        }
        permitted++;
        if ((fd = connect_one(ai, deadline)) < 0)
            last_errno = errno;
    }
    freeaddrinfo(res);
    if (!permitted)
        return refused(st);
    if (fd < 0) {
        git_error_set(GIT_ERROR_OS, "cannot connect to %s:%s: %s", st->host, st->port, strerror(last_errno));
        return -1;
    }
    st->s = fd;
    watch_add(st);
    return 0;
}

/* ---- reading, writing, closing ---- */

static ssize_t gs_read(git_stream *stream, void *data, size_t len)
{
    guarded_stream *st = (guarded_stream *)stream;
    ssize_t n;
    do
        n = recv(st->s, data, len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0 && atomic_load(&st->verdict) != VERDICT_NONE)
        return stopped(st);
    if (n < 0) {
        git_error_set(GIT_ERROR_NET, "cannot read from %s: %s", st->host, strerror(errno));
        return -1;
    }
    return n;
}

static ssize_t gs_write(git_stream *stream, const char *data, size_t len, int flags)
{
    guarded_stream *st = (guarded_stream *)stream;
    (void)flags; /* always 0 in libgit2 1.5 */
    ssize_t n;
    do
        n = send(st->s, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && atomic_load(&st->verdict) != VERDICT_NONE)
        return stopped(st);
    if (n < 0) {
        git_error_set(GIT_ERROR_NET, "cannot write to %s: %s", st->host, strerror(errno));
        return -1;
    }
    return n;
}

static int gs_close(git_stream *stream)
{
    guarded_stream *st = (guarded_stream *)stream;
    watch_remove(st);
    gitstream_call *c = call_of(st);
    int v = atomic_load(&st->verdict);
    /* libssh2 does its own reads: the record learns of a stop here, when libgit2 closes the stream. */
    if (c && v != VERDICT_NONE && !c->timed_out && !c->cancelled) {
        c->timed_out = v == VERDICT_TIMED_OUT;
        c->cancelled = v == VERDICT_CANCELLED;
        stop_message(st, v, c->message, sizeof(c->message));
    }
    if (st->s >= 0)
        close(st->s);
    st->s = -1;
    return 0;
}

static void gs_free(git_stream *stream)
{
    guarded_stream *st = (guarded_stream *)stream;
    if (st->s >= 0)
        gs_close(stream);
    free(st->host);
    free(st->port);
    free(st);
}

static int gs_init(git_stream **out, const char *host, const char *port)
{
    guarded_stream *st = calloc(1, sizeof(*st));
    if (!st || !(st->host = strdup(host)) || !(st->port = strdup(port))) {
        if (st)
            free(st->host);
        free(st);
        git_error_set_oom();
        return -1;
    }
    st->parent.version = GIT_STREAM_VERSION;
    st->parent.connect = gs_connect;
    st->parent.read = gs_read;
    st->parent.write = gs_write;
    st->parent.close = gs_close;
    st->parent.free = gs_free;
    st->s = -1;
    atomic_init(&st->verdict, VERDICT_NONE);
    st->call = current;
    st->cancel = current ? current->cancel : NULL;
    *out = &st->parent;
    return 0;
}

/* ---- installing ---- */

int gitstream_install(const egress_net *allow, size_t n, int timeout_s, dms_error *err)
{
    if (atomic_load(&cfg.installed))
        return 0;
    if (n > EGRESS_NETS_MAX)
        return dms_error_set(err, DMS_E_INVALID, EGRESS_ALLOW_NETS_SETTING, "more than %d networks",
                             EGRESS_NETS_MAX);
    if (n)
        memcpy(cfg.allow, allow, n * sizeof(*allow));
    cfg.n_allow = n;
    cfg.timeout_s = timeout_s;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&watch.wake, &ca);
    pthread_condattr_destroy(&ca);
    watch.stop = false;
    git_stream_registration reg = {.version = GIT_STREAM_VERSION, .init = gs_init};
    if (git_stream_register(GIT_STREAM_STANDARD, &reg) < 0 ||
        pthread_create(&watch.thread, NULL, watch_main, NULL) != 0) {
        const git_error *e = git_error_last();
        git_stream_register(GIT_STREAM_STANDARD, NULL);
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "cannot install dmsd's git socket stream: %s",
                             e && e->message ? e->message : "no watchdog thread");
    }
    watch.running = true;
    atomic_store(&cfg.installed, true);
    return 0;
}

void gitstream_uninstall(void)
{
    if (!atomic_load(&cfg.installed))
        return;
    git_stream_register(GIT_STREAM_STANDARD, NULL);
    pthread_mutex_lock(&watch.lock);
    watch.stop = true;
    pthread_cond_signal(&watch.wake);
    pthread_mutex_unlock(&watch.lock);
    if (watch.running)
        pthread_join(watch.thread, NULL);
    watch.running = false;
    pthread_cond_destroy(&watch.wake);
    atomic_store(&cfg.installed, false);
}

bool gitstream_installed(void)
{
    return atomic_load(&cfg.installed);
}
