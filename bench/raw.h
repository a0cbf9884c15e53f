/* bench/raw.h - the floor: a bare Engine API client on the unix socket, as little as a C program can do.
 *
 * One easy handle per thread, reused (keep-alive, no setup per call), blocking calls, no JSON beyond reading
 * an Id or a StatusCode. The containers it makes carry the same labels and HostConfig as the executor's
 * (executor/docker/types.c: docker_container_spec), so the engine does the same work for both. Also: a framed
 * log stream counter, and an events watcher that timestamps container removals. Private to bench/. */
#ifndef BENCH_RAW_H
#define BENCH_RAW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "util.h"

#define RAW_SOCKET          "/var/run/docker.sock"
#define RAW_API             "/v1.41"
#define RAW_CALL_TIMEOUT_MS 60000 /* every blocking call is bounded; wait and log reads included */
#define RAW_BODY_MAX_BYTES  (4 * 1024 * 1024)

typedef struct raw_conn {
    CURL *h;
    char errbuf[CURL_ERROR_SIZE];
    const atomic_bool *cancel; /* may be NULL; once true, a call in progress ends within about a second */
} raw_conn;

int raw_conn_init(raw_conn *c);
void raw_conn_free(raw_conn *c);

/* A blocking call: method, path under /v1.41, JSON body or NULL. Fills *status and the body (capped; caller
 * frees with dmsu_buf_free). Returns 0 when an HTTP answer came, negative (message printed) otherwise. */
int raw_call(raw_conn *c, const char *method, const char *path, const char *json, long timeout_ms,
             long *status, dmsu_buf *body);

/* A streaming call: the 2xx body goes to sink (return non-zero to stop), on_headers (may be NULL) is told the
 * status as soon as it is known; both get ud. */
typedef int (*raw_sink_fn)(void *ud, const char *data, size_t len);
typedef void (*raw_headers_fn)(void *ud, long status);
int raw_stream(raw_conn *c, const char *method, const char *path, long timeout_ms, raw_headers_fn on_headers,
               raw_sink_fn sink, void *ud, long *status);

/* ---- containers the way a bare client makes them ---- */

/* The create body: the executor's spec for `sh -c script` (or `true`) with our labels; log_max_size: the
 * engine's own log file bound ("16m" like the executor's; bigger to keep a whole history). Caller frees. */
char *raw_create_body(const char *image, const char *script, const char *log_max_size,
                      const char *log_max_file);

/* POST /containers/create?name=name; id receives the container id. */
int raw_create(raw_conn *c, const char *name, const char *body, char id[80]);
int raw_start(raw_conn *c, const char *id);
/* POST /containers/{id}/wait?condition=not-running (at once if it has already exited); *exit_code from
 * StatusCode. */
int raw_wait(raw_conn *c, const char *id, int *exit_code);
int raw_delete(raw_conn *c, const char *id);

/* Counts resources carrying io.dms.executor=bench: containers (all states), networks, volumes. */
int raw_count_labelled(raw_conn *c, int *containers, int *networks, int *volumes);
/* The same for io.dms.executor=executor_id. */
int raw_count_labelled_id(raw_conn *c, const char *executor_id, int *containers, int *networks, int *volumes);
/* Removes (force) the containers, then the images, volumes and networks labelled io.dms.executor=executor_id.
 * Carries on past failures; returns how many removals failed. */
int raw_remove_labelled_id(raw_conn *c, const char *executor_id);
/* Running containers without io.dms.executor=bench (other people's work on the machine); -1 on error. */
int raw_count_foreign_running(raw_conn *c);

/* ---- the multiplexed stream (8-byte headers, any split) ---- */
typedef struct raw_demux {
    uint8_t hdr[8];
    size_t hdr_len;
    size_t left; /* payload bytes left in the current frame */
    int stream;
    uint64_t bytes[3]; /* [1] stdout (stdin frames counted here too), [2] stderr */
    uint64_t frames;
    bool systemerr; /* a type-3 frame: the engine reported an error in-band */
} raw_demux;

/* Feeds bytes; returns 0, or -1 on a frame type that does not exist. */
int raw_demux_feed(raw_demux *d, const char *p, size_t n);
/* A raw_sink_fn over a raw_demux. */
int raw_demux_sink(void *ud, const char *data, size_t len);

/* ---- attach before start: the output from its first byte, counted ---- */
typedef struct raw_attach {
    pthread_t thread;
    bool thread_started;
    char path[200];
    long timeout_ms;
    atomic_bool cancel;
    raw_demux demux;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long status; /* the engine's answer to the attach (headers), -1 if none */
    bool done;
    int rc;
    int64_t end_ns; /* bench_mono_ns() at the end of the stream */
} raw_attach;

/* Attaches to created container id on its own thread and connection; returns once the engine has answered
 * (0 for 200, -1 otherwise): a start after this loses no byte. */
int raw_attach_begin(raw_attach *a, const char *id, long timeout_ms);
/* Waits for the end of the stream (the container's output closed); 0 when it ended cleanly. */
int raw_attach_end(raw_attach *a);
/* Ends the attach if still open (a container that never started), joins its thread, frees. Always call it. */
void raw_attach_free(raw_attach *a);

/* ---- the events watcher: when did each container get created, started, die and get removed ---- */
#define RAW_EVENTS_MAX    1024
#define RAW_EVENTS_SEARCH 1024 /* a name is looked up among the newest this many records */

typedef enum raw_action { RAW_CREATE, RAW_ATTACH, RAW_START, RAW_DIE, RAW_DESTROY, RAW_ACTIONS } raw_action;

typedef struct raw_timeline {
    char name[160];
    int64_t ts_ns[RAW_ACTIONS]; /* the engine's timeNano of each, 0 if not seen */
} raw_timeline;

typedef struct raw_events {
    pthread_t thread;
    CURLM *multi;
    CURL *h;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int state; /* 0 connecting, 1 up, -1 ended */
    dmsu_buf line;
    size_t n; /* ring of the last RAW_EVENTS_MAX containers */
    raw_timeline ring[RAW_EVENTS_MAX];
    uint64_t destroyed;
    int64_t last_destroy_ns; /* the latest destroy's engine time */
} raw_events;

/* Subscribes to create/attach/start/die/destroy of containers labelled io.dms.executor=bench and waits until
 * it is in place. own_tid (may be NULL) receives the watcher thread's tid before this returns. */
int raw_events_start(raw_events *ev, pid_t *own_tid);
void raw_events_stop(raw_events *ev);
/* Waits (at most timeout_ms) for `action` of container `name`; *out gets its timeline so far. 0, or -1. */
int raw_events_wait(raw_events *ev, const char *name, raw_action action, int64_t timeout_ms,
                    raw_timeline *out);
/* How many destroys have been seen so far (for "all K removed"). */
uint64_t raw_events_destroyed(raw_events *ev);
/* Waits until destroyed >= target, at most timeout_ms; *last_ts_ns: the engine time of the latest destroy
 * then. 0, or -1 on timeout. */
int raw_events_wait_destroyed(raw_events *ev, uint64_t target, int64_t timeout_ms, int64_t *last_ts_ns);

#endif
