/* droids/state.h - the droid state machine: the states, their names, and which transitions exist.
 *
 *   pending -> building -> starting -> running,  plus failed and stopped from anywhere they make sense, and
 *   running <-> snoozed: asleep by its snooze schedule (no container; a request wakes it: snoozed ->
 * starting).
 *
 * Pure functions, thread-safe. The store records every transition as an event (time, from, to, reason); the
 * code that changes state asks droid_transition_check() first, so an impossible change is refused, not
 * recorded.
 */
#ifndef DMSD_DROIDS_STATE_H
#define DMSD_DROIDS_STATE_H

#include <stdbool.h>

#include <dms/error.h>

typedef enum droid_state {
    DROID_PENDING = 0,  /* accepted; waiting for a build (or for a retry of one) */
    DROID_BUILDING = 1, /* cloning and building an image */
    DROID_STARTING = 2, /* starting a container (also between crash-loop restarts) */
    DROID_RUNNING = 3,  /* its container runs */
    DROID_FAILED = 4,   /* gave up; reason says why (user's fault, or retries exhausted) */
    DROID_STOPPED = 5,  /* stopped on request (or a build cancelled with nothing to serve) */
    DROID_SNOOZED = 6,  /* asleep (snooze/): no container; its route holds a request and wakes it */
    DROID_STATE_COUNT
} droid_state;

/* Stable lower-case name ("pending", ...); "unknown" for out-of-range values. */
const char *droid_state_name(droid_state s);
/* Parses a name; -1 if it is not one. */
int droid_state_from_name(const char *name);

/* True if from -> to is a transition of the machine. starting -> starting exists (a retry is a new attempt
 * worth an event); other self-transitions do not. */
bool droid_transition_allowed(droid_state from, droid_state to);

/* 0, or -DMS_E_CONFLICT naming both states (and -DMS_E_INVALID for an empty reason: every event says why). */
int droid_transition_check(droid_state from, droid_state to, const char *reason, dms_error *err);

/* True for states in which a container is (meant to be) up: starting, running. */
bool droid_state_is_active(droid_state s);

#endif
