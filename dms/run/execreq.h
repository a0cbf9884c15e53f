/* run/execreq.h - the request that starts a droid's container: droid + release -> dms_exec_request.
 *
 * A pure function of the droid, the release and dmsd's confinement settings (confine/): no I/O, no state,
 * thread-safe. The request carries the droid's env with $PORT, one named volume per droid volume, its port
 * published on 127.0.0.1 (any free host port), its user's network, its limits and the security part of every
 * droid, the dms.droid/dms.release labels, a stop grace and an init.
 */
#ifndef DMSD_RUN_EXECREQ_H
#define DMSD_RUN_EXECREQ_H

#include <stdint.h>

#include <dms/error.h>
#include <dms/request.h>

#include <jansson.h>

#include "../compose/compose.h"
#include "../confine/confine.h"
#include "../droids/droid.h"

#define DROID_STOP_GRACE_MS 3000 /* SIGTERM to SIGKILL for a droid's container */
#define EXECREQ_LABEL_MAX   64
#define EXECREQ_VOLUME_MAX  (DROID_ID_SIZE + DROID_VOLUME_NAME_MAX + 2)

/* The request and the storage it points into. req points into the struct itself: build it where it stays,
 * never copy it, and clear it once the request was used. */
typedef struct execreq {
    dms_exec_request req;
    char **env; /* owned */
    dms_mount mounts[DROID_VOLUMES_MAX];
    char vol_names[DROID_VOLUMES_MAX][EXECREQ_VOLUME_MAX];
    char label_droid[EXECREQ_LABEL_MAX], label_release[EXECREQ_LABEL_MAX];
    char *labels[3];
    dms_port port;
    char net[CONFINE_NETWORK_MAX];
    /* a compose service's (svcreq.c): owned */
    dms_mount *svc_mounts;
    char **svc_strs;   /* the strings they and the labels point into */
    char **svc_labels; /* dms.* labels and the file's own */
    char *aliases[2];
    dms_healthcheck health;
} execreq;

/* What the request is built from. Every pointer is borrowed and must outlive the request. */
typedef struct execreq_input {
    const droid *d;
    const char *exec_id; /* the execution id of the new run */
    int64_t release;     /* the release it runs (the dms.release label) */
    const char *image;   /* the release's image tag */
    const confine_config *confine;
    const char *executor_id; /* names the user's network (confine_user_network) */
} execreq_input;

/* Fills *out (zeroed first) from in. 0, or NOMEM/INTERNAL (the env, or the network name) with err set; on
 * failure out holds a request that must not be started, and still needs execreq_clear(). */
int execreq_build(execreq *out, const execreq_input *in, dms_error *err);

/* A compose droid's service (run/svcreq.c): what the service says (command, entrypoint, env over the droid's
 * env and its env files, working dir, user, named volumes "<droid id>-<volume>", labels, limits within the
 * droid's, health check), on the droid's own network (confine_droid_network) where its name is an alias, with
 * the dms.service label. routed_port > 0: the routed service, its port published on 127.0.0.1 and $PORT set
 * to it unless the service sets PORT. env_file: the release's lines for it (JSON array, may be NULL). */
typedef struct svcreq_input {
    const compose_service *svc;
    json_t *env_file;
    json_t *binds; /* the release\'s copies of the repository paths it mounts (compose/release.h), or NULL */
    int routed_port;
} svcreq_input;
int execreq_build_service(execreq *out, const execreq_input *in, const svcreq_input *sin, dms_error *err);

/* Frees what execreq_build allocated. Accepts a zeroed struct. */
void execreq_clear(execreq *r);

#endif
