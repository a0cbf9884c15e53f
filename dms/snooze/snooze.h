/* snooze/snooze.h - puts droids to sleep by their schedule and wakes them on a request.
 *
 * Sleeping: a droid with a schedule (schedule.h) sleeps when a window begins and nothing is connected to it,
 * or when it has been idle for idle_timeout_s (inside a window after a request woke it; at any time when it
 * has no windows). Asleep, it has no container (the runner stops it through the executor) and its route
 * points at the wake handler. At a window's end it is woken on schedule.
 *
 * Activity is open connections, not request starts: a request counts while it is in flight through Caddy (its
 * upstream's num_requests, polled) and until the moment it ended (Caddy's access log), so a long download or
 * a WebSocket keeps a droid awake and short requests between two polls are not missed. dmsd's own health
 * checks go to the container directly and never count.
 *
 * Waking: the first request to a sleeping droid reaches the wake handler (wake.h), which holds it, wakes the
 * droid (snoozed -> starting), waits until the runner says its new container's port answers (snooze_ready)
 * and then splices the held connection to it, so the client gets the app's real answer.
 *
 * Thread-safe. One tick thread; the wake handler's connection threads call snooze_wait_awake().
 */
#ifndef DMSD_SNOOZE_SNOOZE_H
#define DMSD_SNOOZE_SNOOZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

#include "../core/core.h"
#include "../router/router.h"

#define SNOOZE_TICK_MS 500 /* schedules and activity are looked at this often */
#define SNOOZE_WAKE_TIMEOUT_MS                                                                               \
    30000 /* a held request waits this long for its droid to wake, then gets a 503 */
#define SNOOZE_WAIT_POLL_MS 50

typedef struct snooze snooze;

/* Binds the wake listener on 127.0.0.1 (a free port); no thread runs yet. c (borrowed, outlives the snooze)
 * holds the droids it puts to sleep and wakes. Caller owns *out. */
int snooze_open(snooze **out, core *c, dms_error *err);
/* "127.0.0.1:PORT" of the wake listener (borrowed). */
const char *snooze_wake_addr(const snooze *s);
/* Starts the tick thread and the wake listener. rt (borrowed; stopped only after snooze_close; NULL: no
 * activity is seen and no schedule acted on) is the router whose access log and upstreams the tick thread
 * reads. It is given here, not to snooze_open, because the router is started after the wake listener its
 * wake routes point at (main.c), and before this thread starts, which reads it without a lock. The runner
 * acts on what the tick thread decides (through core's hooks). */
int snooze_start(snooze *s, router *rt, dms_error *err);
/* Stops both and frees. Accepts NULL. */
void snooze_close(snooze *s);

/* ---- for the wake handler ---- */

/* Wakes the droid if it sleeps and waits, at most timeout_ms, until it serves; addr gets where ("ip:port").
 * NOT_FOUND (no such droid), CONFLICT (stopped or failed: it will not wake), TIMEOUT. */
int snooze_wait_awake(snooze *s, const char *droid_id, int64_t timeout_ms, char *addr, size_t size,
                      dms_error *err);
/* A connection spliced to the droid opened/closed: activity like a request in flight. */
void snooze_conn_open(snooze *s, const char *droid_id);
void snooze_conn_close(snooze *s, const char *droid_id);

/* ---- for the runner ---- */

/* True while requests are held for the droid: the runner waits for its new container's port before routing.
 */
bool snooze_waiting(snooze *s, const char *droid_id);
/* The droid's new container answers at addr: held requests go there now. */
void snooze_ready(snooze *s, const char *droid_id, const char *addr);

/* ---- for the API ---- */

/* PUT /droids/:id/snooze: validates (INVALID naming the field) and stores the schedule; an empty one clears
 * it (and wakes the droid if it sleeps). *out (may be NULL): the droid as committed. */
int snooze_set(snooze *s, const char *user, const char *droid_id, json_t *body, droid **out, dms_error *err);
/* Adds to a droid's public JSON "snooze": {windows, idle_timeout_s, asleep, in_window, next_sleep_at,
 * next_wake_at, idle_for_s} (or null). Called under core's read lock: takes only the snooze lock. */
void snooze_describe(snooze *s, const droid *d, json_t *obj);
/* The status body's summary: sets "snooze": {"asleep","in_window","next_wake_at","next_sleep_at"} when the
 * droid has a schedule, null when not. Called under core's read lock. */
void snooze_status(snooze *s, const droid *d, json_t *obj);

#endif
