/* router/probe.h - does a container's port answer? Probes go straight to the container's address (never
 * through Caddy), so they never count as a droid's activity and never wake it.
 *
 * Thread-safe; each call blocks at most its timeout.
 */
#ifndef DMSD_ROUTER_PROBE_H
#define DMSD_ROUTER_PROBE_H

#include <netinet/in.h>
#include <stdbool.h>

#define PROBE_USER_AGENT "dmsd-health"

/* "ip:port" (IPv4) into *out; -1 if it is not one. */
int probe_parse_addr(const char *addr, struct sockaddr_in *out);

/* 0 if addr accepts a TCP connection within timeout_ms, else -1 (refused, unreachable or too slow). On the
 * bridge network a refused connection means nothing listens yet: no proxy in between accepts in its place. */
int probe_tcp(const char *addr, int timeout_ms);

/* 0 if "GET / HTTP/1.0" to addr (Host: host) is answered with an HTTP status line within timeout_ms; *status
 * (may be NULL) gets the code. Any status counts: the app answers, what it answers is its own business. */
int probe_http(const char *addr, const char *host, int timeout_ms, int *status);

#endif
