/* run/health.h - the health gate of a zero-downtime replacement: what a new container must do before requests
 * go to it (at least what the one it replaces does), and the wait until it does.
 *
 * Probes go straight to the container's address (router/probe.h). Thread-safe; each call blocks at most its
 * timeout. Needs only the executor (to see whether the new container died meanwhile) and a way to ask whether
 * dmsd is stopping.
 */
#ifndef DMSD_RUN_HEALTH_H
#define DMSD_RUN_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/executor.h>

/* The new container must answer an HTTP request on its port within RUN_HEALTH_TIMEOUT_MS before the route
 * moves to it, when the old one answers one (a droid that never served HTTP is replaced as before). One probe
 * waits at most RUN_HEALTH_PROBE_MS (also how long the old container gets to show that it serves HTTP); while
 * waiting, whether the new container died is asked every RUN_EXIT_CHECK_MS. A woken container's port gets
 * RUN_WAKE_PORT_MS. */
#define RUN_HEALTH_TIMEOUT_MS 30000
#define RUN_HEALTH_POLL_MS    20
#define RUN_HEALTH_PROBE_MS   1000
#define RUN_EXIT_CHECK_MS     500
#define RUN_WAKE_PORT_MS      20000

/* What a new container must do before requests go to it: at least what the one it replaces did. */
typedef enum {
    GATE_NONE,    /* nothing to replace, or the old one did not even accept a connection (not a server) */
    GATE_TCP,     /* accept a connection (the old one did, but gave no HTTP answer in time) */
    GATE_HTTP,    /* give any HTTP answer (the old one answered GET / with a 5xx) */
    GATE_HTTP_OK, /* answer GET / below 500, as the old one did */
} gate_mode;

/* The gate for a replacement of the container at old_addr (Host: host), from what it does now (one HTTP
 * probe, then one TCP probe, each at most RUN_HEALTH_PROBE_MS). */
gate_mode health_gate(const char *old_addr, const char *host);

/* The new container whose answer is awaited. Every pointer is borrowed for the call. */
typedef struct health_target {
    dms_executor *ex;
    const char *exec_id;
    const char *addr;           /* "ip:port" it is probed on */
    const char *host;           /* the Host header of an HTTP probe */
    bool (*stopping)(void *ud); /* true once dmsd stops */
    void *ud;
} health_target;

/* Waits until the new container answers on addr (an HTTP status line when http, else a TCP connection), at
 * most timeout_ms; gives up early if it dies. 0 when it answers; -1 with why filled otherwise; -2 when dmsd
 * stops meanwhile (the new run is then left to the next start's reconciliation, which stops runs that are not
 * current). */
int health_wait(const health_target *t, gate_mode mode, int64_t timeout_ms, char *why, size_t size);

#endif
