/* executor/docker/loop.h - one event loop thread per executor: it alone owns a curl multi handle and every
 * streaming transfer (the events subscription, each job's attach, log follows) and the asynchronous calls
 * made on behalf of jobs (stop on timeout, delete after the result), plus timers. No thread per job.
 *
 * Other threads talk to it through a mutex-protected command queue and curl_multi_wakeup()
 * (docs/engine-notes.md §9). Callbacks run on the loop thread, must not block, and must not call
 * docker_loop_free(). Every transfer's on_done and every timer's fn is called exactly once (with
 * cancelled=true / rc=-DMS_E_CANCELLED on abort or shutdown), so the user data they hold can be released
 * there. */
#ifndef DOCKER_LOOP_H
#define DOCKER_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"

typedef struct docker_loop docker_loop;

typedef struct docker_xfer_cbs {
    /* Headers of the final response are in (status known). Optional. */
    void (*on_headers)(void *ud, long status);
    /* Body bytes of a 2xx response (not NUL-terminated, any split). Return negative to abort the transfer.
     * Optional: without it the body is collected (capped) and handed to on_done. */
    int (*on_data)(void *ud, const char *data, size_t len);
    /* The end: rc 0 when the transfer completed (any HTTP status), else a negative dms code with err filled.
     * body: the collected body (error bodies always; 2xx bodies when there is no on_data). */
    void (*on_done)(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err);
} docker_xfer_cbs;

int docker_loop_new(docker_loop **out, docker_client *client, const dms_host_services *host, dms_error *err);
/* Stops the thread; pending transfers end with -DMS_E_CANCELLED, timers fire cancelled. */
void docker_loop_free(docker_loop *l);

/* Queues a transfer: method, path under the API prefix, JSON body or NULL, timeout (0 none). Returns a
 * transfer id
 * (> 0), or 0 if it could not be queued (then on_done is NOT called). cbs must stay valid (a static table).
 */
uint64_t docker_loop_add(docker_loop *l, const char *method, const char *path, const char *body,
                         const docker_xfer_cbs *cbs, void *ud, long timeout_ms);
/* Ends a transfer early; its on_done gets -DMS_E_CANCELLED. Unknown or finished ids are ignored. Thread-safe.
 */
void docker_loop_abort(docker_loop *l, uint64_t xfer_id);

/* Runs fn(ud, false) on the loop thread after delay_ms, or fn(ud, true) when cancelled / at shutdown. */
typedef void (*docker_timer_fn)(void *ud, bool cancelled);
uint64_t docker_loop_timer(docker_loop *l, int64_t delay_ms, docker_timer_fn fn, void *ud);
void docker_loop_timer_cancel(docker_loop *l, uint64_t timer_id);

/* Runs fn(ud, false) on the loop thread soon (fn(ud, true) at shutdown). */
void docker_loop_post(docker_loop *l, docker_timer_fn fn, void *ud);

bool docker_loop_on_thread(const docker_loop *l);

#endif
