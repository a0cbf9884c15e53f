/* router/caddy.h - the Caddy process of one dmsd and its admin API.
 *
 * dmsd runs `caddy run --config <state>/caddy.json --pidfile <state>/caddy.pid` (Debian's caddy;
 * DMS_CADDY_BIN) in its own session, with its admin API on a unix socket in the state dir (or the loopback
 * address given), and talks to it over that API only. Caddy gets SIGTERM when dmsd dies (parent-death signal,
 * set by setpriv). If something already answers on the admin address when dmsd starts (a Caddy of an earlier
 * dmsd that could not be given a parent-death signal), dmsd takes it over: it loads its config into it (POST
 * /load, which Caddy applies gracefully) instead of starting a second one.
 *
 * Threads: caddy_admin() may be called from any thread (one curl handle per call); start/stop/alive are
 * called by the router's owner under its lock.
 */
#ifndef DMSD_ROUTER_CADDY_H
#define DMSD_ROUTER_CADDY_H

#include <stdbool.h>
#include <sys/types.h>

#include <dms/error.h>

#include "util.h"

#define CADDY_START_TIMEOUT_MS 10000 /* caddy run until its admin API and its listener answer */
#define CADDY_STOP_GRACE_MS    5000  /* SIGTERM to SIGKILL: Caddy waits for open connections on SIGTERM */
#define CADDY_ADMIN_TIMEOUT_MS                                                                               \
    10000 /* one admin call; a config change reloads Caddy's servers (~10 ms here) */
#define CADDY_ADMIN_CONNECT_MS 1000
#define CADDY_ADMIN_RESP_MAX   (1024 * 1024)
#define CADDY_DEFAULT_BIN      "caddy"

typedef struct caddy caddy;

typedef struct caddy_config {
    const char *bin;       /* the caddy executable (a name is looked up on PATH) */
    const char *state_dir; /* caddy.json, caddy.pid, caddy.out (its stdout/stderr), logs, storage */
    const char *admin;     /* Caddy's admin listen address: "unix//path.sock" or "127.0.0.1:PORT" */
} caddy_config;

/* Nothing is started yet. Caller owns *out; free with caddy_free() (which leaves the process alone). */
int caddy_new(caddy **out, const caddy_config *cfg, dms_error *err);
void caddy_free(caddy *c);

/* Makes a Caddy run with config_json: loads it into one that answers on the admin address (*adopted true), or
 * starts one and waits until its admin API and listen_addr ("127.0.0.1:8000") answer. UNAVAILABLE with
 * Caddy's own last words (e.g. "address already in use") when it exits or does not come up in time. */
int caddy_ensure(caddy *c, const char *config_json, const char *listen_addr, bool *adopted, dms_error *err);

/* False once the Caddy we run or adopted has gone (a child is reaped here). */
bool caddy_alive(caddy *c);
pid_t caddy_pid(const caddy *c);

/* One admin API call. body may be NULL (no body). *status: the HTTP status; resp (may be NULL) gets the body.
 * UNAVAILABLE when nothing answers on the admin address. */
int caddy_admin(caddy *c, const char *method, const char *path, const char *body, long *status,
                dmsu_buf *resp, dms_error *err);

/* Stops the Caddy we run or adopted: SIGTERM, SIGKILL after CADDY_STOP_GRACE_MS. */
void caddy_stop(caddy *c);

#endif
