/* wake.c - the wake handler: hold, wake, splice (see wake.h). */
#include "wake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common.h"
#include "../droids/droid.h"
#include "../router/caddycfg.h"
#include "../router/probe.h"
#include "snooze.h"

#define WAKE_LISTEN_BACKLOG 128

typedef struct conn {
    wake *w;
    int fd; /* from Caddy */
    int up; /* to the container, or -1 */
    struct conn *next;
} conn;

struct wake {
    struct snooze *s;
    int lfd;
    int stop_fd; /* eventfd: readable once stopping */
    char addr[32];
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t done;
    conn *conns;
    int n_conns;
    bool stopping;
};

int wake_open(wake **out, struct snooze *s, dms_error *err)
{
    wake *w = calloc(1, sizeof(*w));
    if (!w)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    w->s = s;
    w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->done, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (w->stop_fd < 0 || w->lfd < 0 || bind(w->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(w->lfd, WAKE_LISTEN_BACKLOG) < 0 || getsockname(w->lfd, (struct sockaddr *)&sa, &len) < 0) {
        int e = errno;
        wake_close(w);
        return dms_error_set_errno(err, DMS_E_IO, e, "wake listener on 127.0.0.1");
    }
    snprintf(w->addr, sizeof(w->addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    *out = w;
    return 0;
}

const char *wake_addr(const wake *w)
{
    return w->addr;
}

/* ---- the request head ---- */

int wake_take_header(char *head, size_t *len, char *id, size_t id_size)
{
    static const char name[] = CADDY_WAKE_HEADER ":";
    char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r') {
        char *start = line + 2;
        char *end = strstr(start, "\r\n");
        if (!end)
            return -1;
        if (strncasecmp(start, name, sizeof(name) - 1) == 0) {
            const char *v = start + sizeof(name) - 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = (size_t)(end - v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n == 0 || n >= id_size)
                return -1;
            memcpy(id, v, n);
            id[n] = '\0';
            for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
                    return -1;
            /* Drop the line: the app never sees dmsd's header. */
            size_t cut = (size_t)(end + 2 - start);
            memmove(start, end + 2, *len - (size_t)(end + 2 - head) + 1);
            *len -= cut;
            return 0;
        }
        line = end;
    }
    return -1;
}

/* ---- one connection ---- */

static void reply(int fd, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply(int fd, int status, const char *reason, const char *fmt, ...)
{
    char body[600], msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n%s",
                     status, reason, strlen(body), status == 503 ? "Retry-After: 1\r\n" : "", body);
    if (n > 0)
        (void)!send(fd, msg, (size_t)(n < (int)sizeof(msg) ? n : (int)sizeof(msg) - 1), MSG_NOSIGNAL);
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads until the end of the head; returns its length, with any bytes after it (a body's start) counted in
 * *total. 0 on a closed or slow connection, -1 when the head is too large. */
static size_t read_head(wake *w, int fd, char *buf, size_t cap, size_t *total)
{
    int64_t deadline = dms_mono_ms() + WAKE_HEAD_TIMEOUT_MS;
    size_t got = 0;
    for (;;) {
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *total = got;
            return (size_t)(end + 4 - buf);
        }
        if (got + 1 >= cap)
            return (size_t)-1;
        int64_t left = deadline - dms_mono_ms();
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = w->stop_fd, .events = POLLIN}};
        if (left <= 0 || poll(p, 2, (int)left) <= 0 || (p[1].revents & POLLIN))
            return 0;
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
}

/* Copies both ways until both directions are closed (half-closes are passed on) or stop. */
static void splice_both(wake *w, int a, int b)
{
    char *buf = malloc(WAKE_SPLICE_BUF);
    if (!buf)
        return;
    bool open_ab = true, open_ba = true;
    while (open_ab || open_ba) {
        struct pollfd p[3] = {{.fd = open_ab ? a : -1, .events = POLLIN},
                              {.fd = open_ba ? b : -1, .events = POLLIN},
                              {.fd = w->stop_fd, .events = POLLIN}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[2].revents & POLLIN)
            break;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int from = i == 0 ? a : b, to = i == 0 ? b : a;
            ssize_t n = recv(from, buf, WAKE_SPLICE_BUF, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n > 0 && send_all(to, buf, (size_t)n) == 0)
                continue;
            if (n != 0) { /* a reset, or a write the other side refused: nothing more goes either way */
                open_ab = open_ba = false;
                break;
            }
            shutdown(to, SHUT_WR); /* EOF: pass the half-close on */
            if (i == 0)
                open_ab = false;
            else
                open_ba = false;
        }
    }
    free(buf);
}

static int connect_up(const char *addr)
{
    struct sockaddr_in sa;
    if (probe_parse_addr(addr, &sa) < 0)
        return -1;
    int64_t deadline = dms_mono_ms() + WAKE_CONNECT_MS;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return fd;
        }
        close(fd);
        if (dms_mono_ms() >= deadline)
            return -1;
        usleep(10 *
               1000); /* the port answered the runner's probe; this is only a race with its listen queue */
    }
}

static void handle(conn *c)
{
    wake *w = c->w;
    char *head = malloc(WAKE_HEAD_MAX);
    size_t total = 0;
    size_t hlen = head ? read_head(w, c->fd, head, WAKE_HEAD_MAX, &total) : 0;
    char id[DROID_ID_SIZE], addr[ROUTE_DIAL_MAX];
    if (hlen == (size_t)-1) {
        reply(c->fd, 431, "Request Header Fields Too Large", "the request head is larger than %d bytes\n",
              WAKE_HEAD_MAX);
    } else if (hlen > 0) {
        /* The head is NUL-terminated at its end for the header search; what follows it is kept aside. */
        size_t rest = total - hlen;
        char *after = NULL;
        if (rest && (after = malloc(rest)))
            memcpy(after, head + hlen, rest);
        head[hlen] = '\0';
        size_t len = hlen;
        dms_error err = {0};
        int64_t t0 = dms_mono_ms();
        if (wake_take_header(head, &len, id, sizeof(id)) < 0) {
            reply(c->fd, 400, "Bad Request", "no droid named in " CADDY_WAKE_HEADER "\n");
        } else if (snooze_wait_awake(w->s, id, SNOOZE_WAKE_TIMEOUT_MS, addr, sizeof(addr), &err) < 0) {
            log_warn("droid=%s op=wake error=\"%s\"", id, err.message);
            if (err.code == DMS_E_NOT_FOUND)
                reply(c->fd, 404, "Not Found", "%s\n", err.message);
            else
                reply(c->fd, 503, "Service Unavailable", "droid could not be woken: %s\n", err.message);
        } else if ((c->up = connect_up(addr)) < 0) {
            reply(c->fd, 502, "Bad Gateway", "droid woke but its port %s does not answer\n", addr);
        } else {
            log_info("droid=%s op=wake action=forward addr=%s held_ms=%lld", id, addr,
                     (long long)(dms_mono_ms() - t0));
            snooze_conn_open(w->s, id);
            if (send_all(c->up, head, len) == 0 && (!rest || (after && send_all(c->up, after, rest) == 0)))
                splice_both(w, c->fd, c->up);
            snooze_conn_close(w->s, id);
        }
        free(after);
    }
    free(head);
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    wake *w = c->w;
    handle(c);
    pthread_mutex_lock(&w->lock);
    for (conn **pp = &w->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    w->n_conns--;
    close(c->fd);
    if (c->up >= 0)
        close(c->up);
    pthread_cond_broadcast(&w->done);
    pthread_mutex_unlock(&w->lock);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    wake *w = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = w->lfd, .events = POLLIN}, {.fd = w->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents & POLLIN)
            break;
        int fd = accept4(w->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn *c = calloc(1, sizeof(*c));
        pthread_mutex_lock(&w->lock);
        bool full = w->n_conns >= WAKE_CONNS_MAX || w->stopping;
        if (c && !full) {
            c->w = w;
            c->fd = fd;
            c->up = -1;
            c->next = w->conns;
            w->conns = c;
            w->n_conns++;
        }
        pthread_mutex_unlock(&w->lock);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (c && !full && pthread_create(&t, &attr, conn_main, c) == 0) {
            pthread_attr_destroy(&attr);
            continue;
        }
        pthread_attr_destroy(&attr);
        if (c && !full) {
            pthread_mutex_lock(&w->lock);
            w->conns = c->next;
            w->n_conns--;
            pthread_mutex_unlock(&w->lock);
        }
        reply(fd, 503, "Service Unavailable", "too many requests are waiting for droids to wake\n");
        close(fd);
        free(c);
    }
    return NULL;
}

int wake_start(wake *w, dms_error *err)
{
    if (pthread_create(&w->thread, NULL, accept_main, w) != 0)
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the wake listener's thread");
    w->started = true;
    return 0;
}

void wake_close(wake *w)
{
    if (!w)
        return;
    if (w->stop_fd >= 0) {
        uint64_t one = 1;
        (void)!write(w->stop_fd, &one, sizeof(one));
    }
    if (w->started)
        pthread_join(w->thread, NULL);
    /* Held and spliced connections see stop_fd and end; wait for their threads. */
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    while (w->n_conns > 0)
        pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (w->lfd >= 0)
        close(w->lfd);
    if (w->stop_fd >= 0)
        close(w->stop_fd);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->done);
    free(w);
}
