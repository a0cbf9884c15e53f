/* probe.c - TCP and HTTP probes of a container's address (see probe.h). */
#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common.h"

#define PROBE_REPLY_MAX 64

int probe_parse_addr(const char *addr, struct sockaddr_in *out)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int64_t port = dmsu_parse_i64(colon + 1);
    if (port < 1 || port > 65535)
        return -1;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - dms_mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* A connected socket (caller closes), or -1. */
static int connect_within(const char *addr, int64_t deadline_ms)
{
    struct sockaddr_in sa;
    if (probe_parse_addr(addr, &sa) < 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return fd;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline_ms) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int probe_tcp(const char *addr, int timeout_ms)
{
    int fd = connect_within(addr, dms_mono_ms() + timeout_ms);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int probe_http(const char *addr, const char *host, int timeout_ms, int *status)
{
    int64_t deadline = dms_mono_ms() + timeout_ms;
    _cleanup_close_ int fd = connect_within(addr, deadline);
    if (fd < 0)
        return -1;
    char req[256];
    int n =
        snprintf(req, sizeof(req), "GET / HTTP/1.0\r\nHost: %s\r\nUser-Agent: " PROBE_USER_AGENT "\r\n\r\n",
                 host && *host ? host : addr);
    if (n < 0 || (size_t)n >= sizeof(req) || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    char buf[PROBE_REPLY_MAX + 1];
    size_t got = 0;
    while (got < 12) { /* "HTTP/1.x NNN" */
        if (wait_fd(fd, POLLIN, deadline) < 0)
            return -1;
        ssize_t r = recv(fd, buf + got, PROBE_REPLY_MAX - got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/", 5) != 0 || buf[8] != ' ')
        return -1;
    int64_t code = dmsu_parse_i64_prefix(buf + 9, NULL);
    if (code < 100 || code > 999)
        return -1;
    if (status)
        *status = (int)code;
    return 0;
}
