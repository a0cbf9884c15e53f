/* executor/docker/docker.h - private structures of the Docker backend, shared by executor.c, handler.c,
 * prepare.c, capture.c, finalize.c, events.c, adopt.c and build.c. Not installed; nothing outside
 * executor/docker/ includes it (tests compile it in).
 *
 * Ownership and threads:
 *   - docker_executor: one per executor id (the registry enforces it). `lock` guards the handler list.
 *   - docker_handler: one per execution this process owns (it holds the execution dir's owner.lock and
 * captures the output). Refcounted; `lock` guards its state fields; `writer`, `demux` and the capture fields
 * are touched only by the thread that currently drives the capture: the starting thread until the attach is
 * queued, the loop thread after. No lock is ever held across a call to the engine.
 *   - Executions owned by another live process are not in the list: operations on them go to files and the
 * engine directly ("reader mode"), and take ownership if the owner goes away. */
#ifndef DOCKER_PRIV_H
#define DOCKER_PRIV_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include <dms/backend.h>

#include "client.h"
#include "demux.h"
#include "loop.h"
#include "types.h"

#define DOCKER_EVENTS_CONNECT_WAIT_MS 3000 /* create waits this long for the events subscription */
#define DOCKER_EVENTS_RETRY_MIN_MS    500
#define DOCKER_EVENTS_RETRY_MAX_MS    10000
#define DOCKER_ATTACH_WAIT_MS         10000 /* start waits this long for the attach to be in place */
#define DOCKER_ATTACH_GRACE_MS        2000  /* after die, how long the attach may take to end */
#define DOCKER_LOGS_REPASS_IDLE_MS                                                                           \
    100 /* a /logs pass that brought nothing, job still running: retry after                                 \
         */
#define DOCKER_PULL_IDLE_MS           120000 /* a pull that sends nothing this long is dead */
#define DOCKER_CANCEL_WAIT_EXTRA_MS   30000  /* cancel waits grace + this for the end */
#define DOCKER_FINISHED_KEEP          256 /* finished handlers kept in memory; older ones reload from disk */
#define DOCKER_RESULT_FILE_MAX        (64 * 1024 * 1024)
#define DOCKER_DRAIN_WAIT_MS          10000
#define DOCKER_PERSIST_WAIT_MS        10000 /* remove/cleanup wait this long for a result to be written */
#define DOCKER_START_TIMEOUT_MS       120000 /* POST start under heavy load took over 30 s (measured at K=128) */
#define DOCKER_NETWORK_START_ATTEMPTS 3      /* starts again after its named network was mended (network.c) */
#define DOCKER_RECOVER_SETTLE_MS                                                                             \
    30000 /* recover waits this long for adopted, ended jobs to be finished */ /* destroy waits this long    \
                                                                                  for removals in flight */
#define DOCKER_SPEC_FILE    "spec.json"
#define DOCKER_RESULT_FILE  "result.json"
#define DOCKER_CANCEL_FILE  "cancel"
#define DOCKER_CLAIM_PREFIX ".claim-" /* execution dirs being claimed (see prepare.c claim()) */

typedef struct docker_handler docker_handler;

typedef struct docker_executor {
    char id[DMS_ID_MAX + 1];
    const dms_host_services *host;
    docker_client client;
    docker_loop *loop;
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* events_state changes */
    pthread_mutex_t adopt_lock; /* serialises adoptions, so two threads never race for one execution's lock */
    docker_handler *handlers;   /* under lock */
    size_t n_handlers;
    /* events subscription (loop thread, except the state) */
    int events_state; /* 0 connecting, 1 up, -1 down (under lock) */
    uint64_t events_xfer;
    int64_t events_last_ns; /* timeNano of the last event, for since= on reconnect */
    int64_t events_retry_ms;
    dmsu_buf events_line;
    atomic_bool shutting_down;
    atomic_int pending_removals; /* async deletes in flight: destroy lets them finish (bounded) */
} docker_executor;

struct docker_handler {
    atomic_int refs;
    docker_executor *ex;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char exec_id[DMS_ID_MAX + 1];
    char job_id[DMS_ID_MAX + 1];
    char name[DOCKER_NAME_MAX];
    char container_id[80];
    char dir[PATH_MAX];
    int lock_fd; /* owner.lock, held while capturing */
    dms_exec_state state;
    int64_t started_at_ns, finished_at_ns;
    /* from the request */
    int64_t timeout_ms, grace_ms, result_bytes, log_cap, memory_bytes;
    bool keep_container;
    bool init; /* the workload runs under the engine's init (tini) */
    /* capture */
    dms_logstore_writer *writer;
    docker_demux demux;
    uint64_t capture_xfer; /* attach (fresh start) or logs (adopted) transfer */
    bool capture_headers;  /* its headers arrived */
    long capture_status;
    bool capture_done;
    bool capture_expected;     /* output still to come: the result waits for it (under lock) */
    bool capture_is_logs;      /* adopted: frames carry timestamps, skip what we have */
    uint64_t skip[3];          /* adopted: bytes per stream already captured */
    uint64_t pass_start_bytes; /* adopted: bytes captured when this /logs pass began */
    dmsu_buf frame;            /* adopted: one frame being reassembled */
    /* how it ends (under lock) */
    bool exited;
    bool lost;
    int exit_code;
    bool oom;
    int outside_signal; /* a kill event we did not cause */
    int cancel_reason;  /* 0, DMS_CANCEL_USER, DMS_CANCEL_TIMEOUT */
    bool finalizing;
    bool persisted;         /* result.json written: the dir may be removed (under lock, cond signals) */
    bool inspect_pending;   /* the end waits for State (an oom event may have come before we listened) */
    atomic_bool abort_prep; /* cancel during preparation */
    uint64_t timeout_timer;
    uint64_t grace_timer;
    char cancel_marker[PATH_MAX + 16]; /* <dir>/cancel: another process's cancel during preparation */
    dms_exec_outcome fail_outcome;     /* set when preparation/start failed */
    char fail_msg[DMS_ERROR_MSG_MAX];
    dms_result_cell *cell;
    docker_handler *next;
};

/* ---- executor.c ---- */
docker_handler *docker_handler_find(docker_executor *ex, const char *exec_id); /* ref'd or NULL */
void docker_handler_register(docker_executor *ex, docker_handler *h);          /* takes a ref */
void docker_handler_unregister(docker_executor *ex, docker_handler *h);
void docker_exec_dir(const docker_executor *ex, const char *exec_id, char out[PATH_MAX]);

/* ---- handler.c: the handler object, the run timeout, cancel ---- */
docker_handler *docker_handler_new(docker_executor *ex, const char *exec_id, const char *job_id);
docker_handler *docker_handler_ref(docker_handler *h);
void docker_handler_unref(docker_handler *h);
void docker_handler_arm_timeout(docker_handler *h, int64_t delay_ms);
/* grace_ms: 0 kills at once, < 0 is the execution's own grace period. */
int docker_cancel(docker_executor *ex, const char *exec_id, dms_cancel_reason reason, int64_t grace_ms,
                  dms_error *err);

/* ---- prepare.c: claim, image, network, volumes, create, attach, start ---- */
int docker_start(docker_executor *ex, const dms_exec_request *req, dms_error *err);

/* ---- capture.c: the output into the log store ---- */
/* Starts capturing through an attach (fresh start) or /logs (adopted; follow while it runs). */
int docker_handler_capture(docker_handler *h, bool from_logs, bool follow, dms_error *err);

/* ---- finalize.c: the outcome, the result, the container's removal ---- */
/* Called on the loop thread when something about the end is known; finalizes once everything is in. */
void docker_handler_maybe_finalize(docker_handler *h);
/* Ends the execution now with what is known (or with fail_outcome), publishes and persists the result. */
void docker_handler_finalize(docker_handler *h);
/* Waits (bounded) until a finished handler's result.json is written; true if it is. */
bool docker_handler_wait_persisted(docker_handler *h, int64_t timeout_ms);
/* Async inspect on the loop: learns the exit from State when the events said nothing. */
void docker_handler_inspect_async(docker_handler *h);

/* ---- events.c ---- */
/* Subscribes (on the loop); with wait_for_it, waits a bounded time until the stream is in place. */
void docker_events_start(docker_executor *ex, bool wait_for_it);

/* ---- adopt.c ---- */
/* The owner handler of an execution, adopting it from disk and the engine if this process does not track it
 * yet. Returns 1 with *out (ref'd) when this process owns it, 0 when another live process does (reader mode:
 * *out NULL), -DMS_E_NOT_FOUND when it does not exist. */
int docker_get(docker_executor *ex, const char *exec_id, docker_handler **out, dms_error *err);
int docker_recover(void *cookie, size_t *adopted, dms_error *err);
int docker_status(void *cookie, const char *exec_id, dms_exec_status *out, dms_error *err);
int docker_list(void *cookie, dms_exec_status_fn each, void *userdata, dms_error *err);
/* Inspects a container by name or id; NOT_FOUND when absent. New reference. */
int docker_inspect(docker_executor *ex, const char *name_or_id, json_t **out, dms_error *err);
/* Reads spec.json's request bits (job id, limits, grace) into a handler's fields. */
void docker_load_spec(docker_handler *h);

/* ---- build.c ---- */
int docker_build(void *cookie, const dms_build_request *req, dms_build_output_fn out, void *userdata,
                 dms_cancel_token *cancel, dms_build_result *result, dms_error *err);
int docker_remove_image(void *cookie, const char *image, dms_error *err);
int docker_image_info(void *cookie, const char *image, dms_image_info *out, dms_error *err);
int docker_remove_volume(void *cookie, const char *name, dms_error *err);
/* network.c: a named network made (labelled) unless it exists; removal of one of ours (CONFLICT while in
 * use); whether an answer says a container's network is gone, or that its name matches several (creates that
 * raced); the removal of such duplicates, one always left. */
int docker_ensure_network(docker_executor *ex, const char *name, dms_error *err);
int docker_remove_network(void *cookie, const char *name, dms_error *err);
bool docker_network_missing(const docker_response *resp);
bool docker_network_ambiguous(const docker_response *resp);
int docker_network_dedupe(docker_executor *ex, const char *name, dms_error *err);
/* image.c: an NDJSON body (pull, build) read line by line; each complete line that parses is handed to
 * on_line, whose negative return stops the read. A line longer than line.max is skipped and counted. */
#define NDJSON_LINE_MAX (1024 * 1024) /* an engine message; its "stream" text is at most 32 KiB, escaped */
typedef struct ndjson {
    dmsu_buf line;
    int (*on_line)(void *ud, json_t *j);
    void *ud;
    size_t dropped; /* lines longer than line.max: skipped, so that memory stays bounded */
} ndjson;
int docker_ndjson_feed(void *ud, const char *data, size_t len);
/* Pulls an image (streams progress to the log). IMAGE when no registry answers. */
int docker_pull(docker_executor *ex, const char *ref, const docker_abort *abort, dms_error *err);
/* 1 if the image is present locally, 0 if not. */
int docker_image_present(docker_executor *ex, const char *ref, dms_error *err);

#endif
