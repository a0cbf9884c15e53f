/* state.c - the droid state machine (see state.h). One table, so the rules can be read at a glance. */
#include "state.h"

#include <string.h>

static const char *const names[DROID_STATE_COUNT] = {
    [DROID_PENDING] = "pending", [DROID_BUILDING] = "building", [DROID_STARTING] = "starting",
    [DROID_RUNNING] = "running", [DROID_FAILED] = "failed",     [DROID_STOPPED] = "stopped",
    [DROID_SNOOZED] = "snoozed",
};

/* allowed[from][to]. Why each odd one exists:
 *  building -> running: a rebuild failed or was cancelled while the old container kept serving.
 *  building -> pending: a retryable build failure waits for its retry.
 *  running -> pending/building: a change of code queues a rebuild; the old container keeps serving meanwhile.
 *  running -> starting: a crash (restart with backoff), a restart, or a change of env/port.
 *  starting -> starting: another attempt after a crash or a failed start.
 *  -> running only from starting: nothing runs without being started.
 *  running/starting -> snoozed: its snooze schedule put it to sleep (a window began, or it idled).
 *  snoozed -> starting: a request (or a window's end, a start, a restart) woke it.
 *  snoozed -> pending/building/failed: a rebuild asked for while it sleeps, and how that build went.
 *  building/pending -> snoozed: that rebuild failed or was cancelled; the old release sleeps on. */
static const bool allowed[DROID_STATE_COUNT][DROID_STATE_COUNT] = {
    /*               pending building starting running failed stopped snoozed */
    [DROID_PENDING] = {false, true, true, false, true, true, true},
    [DROID_BUILDING] = {true, false, true, true, true, true, true},
    [DROID_STARTING] = {true, true, true, true, true, true, true},
    [DROID_RUNNING] = {true, true, true, false, true, true, true},
    [DROID_FAILED] = {true, true, true, false, false, true, false},
    [DROID_STOPPED] = {true, true, true, false, false, false, false},
    [DROID_SNOOZED] = {true, true, true, false, true, true, false},
};

const char *droid_state_name(droid_state s)
{
    return (unsigned)s < DROID_STATE_COUNT ? names[s] : "unknown";
}

int droid_state_from_name(const char *name)
{
    for (int i = 0; name && i < DROID_STATE_COUNT; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

bool droid_transition_allowed(droid_state from, droid_state to)
{
    if ((unsigned)from >= DROID_STATE_COUNT || (unsigned)to >= DROID_STATE_COUNT)
        return false;
    return allowed[from][to];
}

int droid_transition_check(droid_state from, droid_state to, const char *reason, dms_error *err)
{
    if (!reason || !*reason)
        return dms_error_set(err, DMS_E_INVALID, "reason", "a state change needs a reason");
    if (!droid_transition_allowed(from, to))
        return dms_error_set(err, DMS_E_CONFLICT, "status", "a droid cannot go from %s to %s",
                             droid_state_name(from), droid_state_name(to));
    return 0;
}

bool droid_state_is_active(droid_state s)
{
    return s == DROID_STARTING || s == DROID_RUNNING;
}
