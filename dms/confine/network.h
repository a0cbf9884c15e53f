/* confine/network.h - giving networks back to the engine: a user's network once they have no droid left, and
 * the network all droids shared before per-user networks, once nothing runs on it. The engine's default
 * address pools hold about 30 bridge networks (network.c of the docker backend), so one network per user who
 * ever had a droid would run out. Thread-safe; call without locks (these call the engine). */
#ifndef DMSD_CONFINE_NETWORK_H
#define DMSD_CONFINE_NETWORK_H

#include <dms/executor.h>

#include "../core/core.h"

/* Removes the user's network if they have no droid in c (being deleted ones aside). A job step or a droid
 * starting on it meanwhile keeps it (CONFLICT) or makes it again at its start; either way nothing fails. ex
 * may be NULL (nothing to give back then). */
void confine_network_release(dms_executor *ex, core *c, const char *user_id);
/* Removes the shared network of older dmsd versions when nothing runs on it any more (at startup, after the
 * runner adopted what runs; an adopted droid moves to its user's network at its next start). */
void confine_network_release_legacy(dms_executor *ex);

#endif
