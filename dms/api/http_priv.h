/* api/http_priv.h - what http.c shares with its replies and request accessors (reply.c, request.c), its
 * route matching (routetable.c) and the two modules that hold its suspended connections: deferred.c
 * (replies answered later from another thread) and stream.c (streamed replies parked while their source has
 * nothing to send). Private to api/: nothing outside those files includes it.
 *
 * Locks: the server's lock guards its lists (pendings, parked) and the stopping flag. A pending has a lock of
 * its own (deferred.c) and may be taken while the server's is held, never the other way round.
 */
#ifndef DMSD_API_HTTP_PRIV_H
#define DMSD_API_HTTP_PRIV_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "../common.h"
#include "auth.h"
#include "http.h"

struct stream_ctx;

struct http_server {
    struct MHD_Daemon *daemon;
    http_config cfg;
    int port;
    pthread_mutex_t lock;
    api_pending *pendings;        /* deferred requests whose connection is still open (deferred.c) */
    pthread_cond_t pendings_gone; /* signalled (under lock) when that list becomes empty */
    struct stream_ctx *parked;
    bool stopping;
    int wake_fd; /* eventfd: a stream was parked, or stop */
    pthread_t streamer;
    bool streamer_started;
};

struct api_req {
    http_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    char user[AUTH_USER_MAX + 1];
    bool authorized;
    bool has_user; /* authorized by a bearer token (not an open route) */
    dms_error auth_err;
    dmsu_buf body;
    size_t dropped; /* body bytes read so far (an unauthorized request's are counted, never stored) */
    bool replied;
    api_pending *pending;
};

/* {"error": message, "field": field|null}, compact; *len its length. Caller frees (NULL on OOM). */
char *http_error_body(const char *message, const char *field, size_t *len);
/* Queues a reply on the request's connection; buf is stolen (may be NULL for an empty body). */
void http_queue(api_req *r, unsigned status, const char *ctype, char *buf, size_t len, const char *header,
                const char *value);

/* ---- routetable.c ---- */

#define HTTP_MAX_PATH_SEGMENTS 8
#define HTTP_PATTERN_MAX       128

/* Splits "/a/b/c" into segments (pointers into buf, which it changes); max + 1 when there are more. */
size_t http_split_path(char *buf, char **seg, size_t max);
/* Whether the pattern matches the path's segments; *id gets the :id segment (or NULL). */
bool http_match_pattern(const char *pattern, char **seg, size_t n, const char **id);
/* Whether method and url name an open route (served without a token). */
bool http_route_no_auth(http_server *s, const char *method, const char *url);
/* The k-th route: the open ones first, then the others; NULL past the end. */
const api_route *http_route_at(const http_server *s, size_t k);
/* INVALID (field "routes") unless every route with an :id says what it names, and has a check for it. */
int http_validate_routes(const http_config *cfg, dms_error *err);

/* ---- deferred.c ---- */

/* On the request's MHD thread, each time its connection is processed while deferred: if the reply has come,
 * queues it and returns true. */
bool deferred_answer(api_req *r);
/* on_completed: the request is over; the pending no longer touches its connection. */
void deferred_request_done(http_server *s, api_req *r);
/* Stop: every pending not yet answered gets 503 and its connection is resumed. Under s->lock. */
void deferred_stop_locked(http_server *s);
/* Then waits (at most max_ms) until those answers have gone out, so that their clients get them before MHD
 * closes every connection. Under s->lock. */
void deferred_drain_locked(http_server *s, int max_ms);

/* ---- stream.c ---- */

int stream_thread_start(http_server *s);
/* Stop: every parked stream is resumed (its next read ends it). Under s->lock. */
void stream_stop_locked(http_server *s);
/* Wakes the stream thread (after stop_locked) and joins it. */
void stream_thread_join(http_server *s);

#endif
