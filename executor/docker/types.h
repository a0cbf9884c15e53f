/* executor/docker/types.h - the Docker engine spec: a validated dms_exec_request mapped to Engine API JSON.
 */
#ifndef DOCKER_TYPES_H
#define DOCKER_TYPES_H

#include <jansson.h>

#include <dms/request.h>
#include <dms/result.h>

/* Bounded for names: "dms-" + executor id + "-" + execution id. */
#define DOCKER_NAME_MAX (4 + DMS_ID_MAX + 1 + DMS_ID_MAX + 1)

/* Log driver settings of job containers: we capture through attach, so the engine's own copy only serves
 * re-adoption after a restart; "local" is its cheapest driver and these bounds keep it small. */
#define DOCKER_LOG_DRIVER   "local"
#define DOCKER_LOG_MAX_SIZE "16m"
#define DOCKER_LOG_MAX_FILE "2"

/* Deterministic container name: dms-<executor>-<execution>. */
void docker_container_name(char out[DOCKER_NAME_MAX], const char *executor_id, const char *execution_id);

/* The labels object for a resource: managed, executor, backend, and job/execution/role when not NULL. New
 * ref. */
json_t *docker_labels(const char *executor_id, const char *job_id, const char *execution_id,
                      const char *role);

/* The body of POST /containers/create for a request. New reference, NULL on OOM. Docker-specific validation
 * (image required) is done by docker_validate_request(). */
json_t *docker_container_spec(const dms_exec_request *req, const char *executor_id);
int docker_validate_request(const dms_exec_request *req, dms_error *err);

/* The health check's verdict from an inspected container's State object: NONE without a check, for a
 * container that is not running, or for NULL. */
dms_health docker_health_of(json_t *state);

/* Seconds for stop?t= from a grace period in ms, rounded up (the wire takes whole seconds). */
long docker_grace_seconds(int64_t grace_ms);

/* Splits an image reference for POST /images/create: fromImage (name, or name@digest) and tag ("latest"
 * default,
 * "" with a digest). Buffers of at least strlen(ref)+1. */
void docker_split_image_ref(const char *ref, char *name, char *tag);

/* A copy of a Dockerfile with label_line inserted after every FROM instruction and at the end of every stage
 * (where the engine's parser ends instructions); NULL when there is no FROM or the file ends inside an
 * instruction. Caller frees. */
char *docker_label_stages(const char *text, size_t len, const char *label_line);

#endif
