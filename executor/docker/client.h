/* executor/docker/client.h - a thin Engine API client over the unix socket: blocking calls from the calling
 * thread (one easy handle per call), error mapping, socket diagnosis, API version negotiation.
 * Streaming transfers (attach, events, follows) run on the event loop instead (loop.h). Thread-safe. */
#ifndef DOCKER_CLIENT_H
#define DOCKER_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <dms/backend.h>

#include "util.h"

#define DOCKER_DEFAULT_SOCKET        "/var/run/docker.sock"
#define DOCKER_API_VERSION_MAX       "1.41" /* what we speak; we speak min(this, the daemon's) */
#define DOCKER_API_VERSION_MIN_MINOR 25     /* the oldest we accept (1.25: NanoCpus, Mounts) */
#define DOCKER_SOCKET_PATH_MAX       108    /* sun_path */
#define DOCKER_CONNECT_TIMEOUT_MS    2000
#define DOCKER_SHORT_CALL_TIMEOUT_MS 30000
#define DOCKER_PING_TIMEOUT_MS       2000
#define DOCKER_CREATE_PING_TIMEOUT_MS                                                                        \
    1000 /* at create only a hint (a warning): is_installed gives the verdict */
#define DOCKER_STOP_MARGIN_MS       10000 /* HTTP timeout of stop = grace + this */
#define DOCKER_BODY_MAX_BYTES       (8 * 1024 * 1024)
#define DOCKER_ERROR_BODY_MAX_BYTES (64 * 1024)

typedef struct docker_client {
    char socket_path[DOCKER_SOCKET_PATH_MAX];
    const dms_host_services *host;
    pthread_mutex_t lock;
    char api_version[16]; /* negotiated, e.g. "1.41"; "" until the first successful ping */
} docker_client;

typedef struct docker_response {
    long status;
    dmsu_buf body;
} docker_response;

/* What may abort a long call: any of an in-process flag, a cancel token, or a marker file written by another
 * process (an execution's cancel file). Checked by libcurl's progress callback, about once a second when
 * idle. */
typedef struct docker_abort {
    const atomic_bool *flag;
    const dms_cancel_token *token;
    const char *marker_path;
} docker_abort;
bool docker_abort_requested(const docker_abort *a);

/* Streaming sink for docker_call_stream: raw body bytes of a 2xx response. Return negative to abort. */
typedef int (*docker_sink_fn)(void *ud, const char *data, size_t len);
/* Body source for uploads (the build context): fill buf, return bytes (0 at the end) or negative to abort. */
typedef long (*docker_source_fn)(void *ud, char *buf, size_t len);

/* Resolves the socket from the executor options (host=unix://...) or DOCKER_HOST; INVALID for non-unix hosts.
 */
int docker_client_init(docker_client *c, const dms_host_services *host, dms_error *err);
void docker_client_destroy(docker_client *c);

/* Pings the daemon (bounded by timeout_ms) and negotiates the API version; UNAVAILABLE with the reason. */
int docker_client_ping(docker_client *c, long timeout_ms, dms_error *err);

/* Builds "http://localhost/v<api>/<path>" into out (path starts with '/'). Negotiates the version first if
 * needed. */
int docker_url(docker_client *c, char *out, size_t n, const char *path, dms_error *err);

/* A blocking call. body: JSON text or NULL. timeout_ms 0 = none.
 * Fills resp (caller frees resp->body with dmsu_buf_free) for any HTTP status; returns negative only when no
 * HTTP answer came (UNAVAILABLE, TIMEOUT, CANCELLED, IO). */
int docker_call(docker_client *c, const char *method, const char *path, const char *body, long timeout_ms,
                docker_response *resp, dms_error *err);

/* A blocking call whose 2xx body is streamed to sink (status and error bodies as in docker_call); an optional
 * upload from source with content type. abort (may be NULL) ends it with CANCELLED within about a second. */
int docker_call_stream(docker_client *c, const char *method, const char *path, const char *content_type,
                       docker_source_fn source, void *source_ud, long timeout_ms, const docker_abort *abort,
                       docker_sink_fn sink, void *sink_ud, docker_response *resp, dms_error *err);

/* Maps a non-2xx response to a dms error: 404 NOT_FOUND, 409 CONFLICT, 400 INVALID, else ENGINE; the daemon's
 * {"message"} is passed through after `what` ("create container x: "). Returns -code. */
int docker_error_from_response(const docker_response *resp, const char *what, dms_error *err);

/* The daemon's message from an error body (borrowed into buf). */
const char *docker_response_message(const docker_response *resp, char *buf, size_t n);

/* Parses a 2xx JSON body. New reference, or NULL with err set (PROTOCOL). */
json_t *docker_response_json(const docker_response *resp, const char *what, dms_error *err);

/* Sets up an easy handle for the socket (shared by client and loop). */
void docker_easy_setup(CURL *h, const docker_client *c, char *errbuf);

/* Explains why the socket cannot be used (missing, not a socket, permission, refused), for UNAVAILABLE
 * messages. */
void docker_diagnose_socket(const docker_client *c, char *buf, size_t n, int *errnum);

/* URL-encodes a query value. Caller frees. */
char *docker_escape(const char *s);

#endif
