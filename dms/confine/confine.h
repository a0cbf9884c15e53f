/* confine/confine.h - how dmsd confines the containers it runs for users (issue 13): default limits and the
 * operator's ceilings, the one security part every droid and job container gets, and the network of each
 * user.
 *
 * Pure functions of the configuration and the droid: no I/O, no state, thread-safe. The runner (droids) and
 * the jobs module (job steps) build their requests from them; the API checks a droid's own limits here. */
#ifndef DMSD_CONFINE_H
#define DMSD_CONFINE_H

#include <stddef.h>
#include <stdint.h>

#include <dms/request.h>
#include <jansson.h>

#include "../droids/droid.h"

/* Defaults (the settings of dms/README.md, DMS_DROID_* / DMS_JOB_* / DMS_USER_*). */
#define CONFINE_DROID_MEMORY_MB      512
#define CONFINE_DROID_CPU_MILLIS     1000
#define CONFINE_DROID_PIDS           256
#define CONFINE_DROID_MEMORY_MAX_MB  2048
#define CONFINE_DROID_CPU_MAX_MILLIS 2000
#define CONFINE_DROID_PIDS_MAX       1024
#define CONFINE_JOB_MEMORY_MB        2048 /* npm/pip installs and bundlers need more than a web app */
#define CONFINE_JOB_CPU_MILLIS       2000
#define CONFINE_JOB_PIDS             1024
#define CONFINE_USER_MAX_DROIDS      20
#define CONFINE_USER_MAX_DISK_MB     10240

/* The smallest limits a container can start with: runc refuses less than 6 MiB; the engine a CPU share
 * below 0.01 core (NanoCpus 10^7); the init, a shell and the app need a few pids. The largest are what the
 * executor accepts. */
#define CONFINE_MEMORY_MIN_MB  6
#define CONFINE_CPU_MIN_MILLIS 10
#define CONFINE_PIDS_MIN       8
#define CONFINE_MEMORY_MAX_MB  (1024 * 1024)
#define CONFINE_CPU_MAX_MILLIS (1024 * 1000)
#define CONFINE_PIDS_MAX       (4 * 1024 * 1024)

/* A network name fits an identifier of the executor (dms_id_valid). */
#define CONFINE_NETWORK_MAX (DMS_ID_MAX + 1)

typedef struct confine_limits {
    int memory_mb;
    int cpu_millis;
    int pids;
} confine_limits;

typedef struct confine_config {
    confine_limits droid; /* DMS_DROID_MEMORY_MB, DMS_DROID_CPU_MILLIS, DMS_DROID_PIDS: what a droid gets */
    confine_limits droid_max; /* DMS_DROID_*_MAX*: the most a droid may ask for */
    confine_limits job;       /* DMS_JOB_MEMORY_MB, DMS_JOB_CPU_MILLIS, DMS_JOB_PIDS: every job step */
    int user_max_droids;      /* DMS_USER_MAX_DROIDS */
    int user_max_disk_mb;     /* DMS_USER_MAX_DISK_MB */
} confine_config;

/* Every default above. */
void confine_config_defaults(confine_config *c);
/* A default above its ceiling cannot be right: INVALID naming both settings. */
int confine_config_check(const confine_config *c, dms_error *err);

/* A droid's own limits within the ceilings: INVALID naming resources.memory_mb (cpu_millis, pids) and the
 * setting that bounds it. */
int confine_check_resources(const confine_config *c, const droid_resources *r, dms_error *err);
/* What the droid's container gets: its own limits or the defaults, never above today's ceilings (a droid that
 * asked under higher ones is held to the new ones). */
confine_limits confine_droid_limits(const confine_config *c, const droid_resources *r);
/* The executor's form of limits. */
dms_resources confine_resources(confine_limits l);
/* {"memory_mb", "cpu_millis", "pids"}. New reference; NULL on OOM. */
json_t *confine_limits_json(confine_limits l);

/* The security part of every droid and job container: no new privileges, every capability dropped but the few
 * an ordinary web app or build needs as root in its own container (see confine.c). Static, never NULL. */
const dms_security *confine_security(void);

/* The network of a compose droid's services: "droid-net[-<executor id>]-<droid id>" (the executor id hashed
 * when that would not fit an identifier). Its services reach each other by name on it, and nothing else runs
 * there; the runner removes it with the droid. */
int confine_droid_network(const char *executor_id, const char *droid_id, char *buf, size_t size,
                          dms_error *err);
/* The network of a user's containers: "droid-net[-<executor id>]-u<16 hex of sha256(user id)>", or with the
 * executor id hashed too when that would not fit an identifier. Every user of one dmsd gets another network,
 * and so does the same user of another dmsd. 0, or INTERNAL. */
int confine_user_network(const char *executor_id, const char *user_id, char *buf, size_t size,
                         dms_error *err);
/* The one network every droid shared before (droid-net, or droid-net-<executor id>): droids adopted from then
 * keep it until their next start. */
void confine_legacy_network(const char *executor_id, char *buf, size_t size);

#endif
