/* api/http.h - dmsd's HTTP layer over libmicrohttpd: routing, bearer auth on every route, bodies, JSON
 * replies and errors ({"error": "...", "field": "..."}), deferred replies (answered later from another
 * thread) and streamed replies (chunked; a follow parks the connection instead of a thread).
 *
 * Threads: MHD runs an epoll thread pool; handlers run on those threads and must not block for long (no
 * engine calls). Work that takes time is handed to the workers and answered through
 * api_defer()/api_pending_complete(). A streamed reply's source is read on the pool threads only when it said
 * it has data (or at a tick).
 */
#ifndef DMSD_API_HTTP_H
#define DMSD_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include <dms/error.h>

#include "auth.h"

typedef struct http_server http_server;
typedef struct api_req api_req;
typedef struct api_pending api_pending;

/* A handler answers through one of the api_reply_* calls, or defers. id is the ":id" path segment or NULL. */
typedef void (*api_handler)(void *app, api_req *r, const char *id);

/* What a route's ":id" names. The dispatcher has http_config.check_id confirm that the caller owns it before
 * the handler runs, so a handler is never called with another user's id (the caller gets the check's answer,
 * 404 like a missing one: existence is not revealed). http_start refuses a table in which a pattern with :id
 * does not say what it names, so a route added later cannot skip the check. */
typedef enum api_id_kind {
    API_ID_NONE = 0, /* the pattern has no :id */
    API_ID_DROID,    /* a droid of the caller */
    API_ID_JOB,      /* a build job of the caller (its id or its deployment id) */
    API_ID_PROJECT,  /* a project of the caller (a name in the caller's own namespace) */
    API_ID_HOOK,     /* open routes only: no user; the handler proves the caller holds the droid's secret */
} api_id_kind;

/* "none", "droid", "job", "project", "hook". */
const char *api_id_kind_name(api_id_kind k);

typedef struct api_route {
    const char *method;  /* "GET", ... */
    const char *pattern; /* "/droids/:id/status" */
    api_handler fn;
    const char *const *query; /* the query keys this route accepts (NULL-terminated); others are refused */
    api_id_kind id;           /* what :id names (API_ID_NONE without one) */
} api_route;

/* Confirms that user owns the id of that kind: 0, or < 0 with err set (NOT_FOUND for another user's id and
 * for a missing one alike). Runs on the HTTP threads before the handler; must not block for long. */
typedef int (*api_id_check)(void *app, api_id_kind kind, const char *user, const char *id, dms_error *err);

/* Connection limits (0: the default). A connection's idle limit is request_timeout_s until a request on it
 * proved a bearer token, then idle_timeout_s: a client that never completes its request holds its connection
 * only briefly, while an authorised follow or deferred reply is not cut. */
#define HTTP_DEFAULT_PER_IP_LIMIT      64  /* connections at once from one address */
#define HTTP_DEFAULT_REQUEST_TIMEOUT_S 10  /* idle limit before a token was shown */
#define HTTP_DEFAULT_IDLE_TIMEOUT_S    120 /* idle limit of an authorised connection */

typedef struct http_config {
    const char *listen;           /* "127.0.0.1:8080", "[::1]:80", ":0" (any free port) */
    int threads;                  /* pool size */
    auth_policy auth;             /* what a bearer token must satisfy */
    const api_route *routes;      /* terminated by an entry with method NULL */
    const api_route *open_routes; /* the same, served without a bearer token (the handler authenticates:
                                   * git push hooks); api_user() is "" there. May be NULL. */
    api_id_check check_id;        /* required when a route has an :id */
    void *app;
    unsigned per_ip_limit;      /* DMS_HTTP_PER_IP_LIMIT */
    unsigned request_timeout_s; /* DMS_HTTP_REQUEST_TIMEOUT_S */
    unsigned idle_timeout_s;
    bool
        has_listen_fd; /* serve listen_fd (a socket from http_stop_keep_listener) instead of binding listen */
    int listen_fd;
    bool handover; /* this server will end with http_stop_keep_listener: it serves through poll(), not epoll
                    * (libmicrohttpd 0.9.75's MHD_quiesce_daemon races its own epoll workers for the listening
                    * socket and aborts the process when it loses; with poll() a quiesce is only a message) */
} http_config;

/* Binds and starts serving. The routes, the policy's strings and app stay borrowed until http_stop(). INVALID
 * (field "routes") for a route table that does not say what an :id names. */
int http_start(http_server **out, const http_config *cfg, dms_error *err);
/* The bound port (useful with ":0"). */
int http_port(const http_server *s);
/* Ends parked streams and answers deferred requests with 503, then stops the daemon and closes its socket. */
void http_stop(http_server *s);
/* Stops accepting first, then the same, but the listening socket stays open and is returned (-1 if MHD could
 * not give it back, or the server was not started with http_config.handover): connections wait in its
 * backlog until a new server serves it (http_config.has_listen_fd). The caller owns it. */
int http_stop_keep_listener(http_server *s);

/* ---- inside a handler ---- */

const char *api_user(const api_req *r);
/* A query value: NULL if absent, "" for a bare key ("?follow", "?build.out"). */
const char *api_query(api_req *r, const char *key);
/* A query value as a non-negative integer: 0 and *out set, 1 if absent, or -DMS_E_INVALID naming the key. */
int api_query_i64(api_req *r, const char *key, long long max, long long *out, dms_error *err);
/* A boolean flag: absent/0/false -> false; ""/1/true -> true; anything else is INVALID. */
int api_query_bool(api_req *r, const char *key, bool *out, dms_error *err);
/* A request header (case-insensitive name), or NULL. Borrowed for the handler's duration. */
const char *api_header(api_req *r, const char *name);
/* The raw body (may be empty; not NUL-terminated): borrowed for the handler's duration. */
const char *api_body(api_req *r, size_t *len);
/* The body parsed as JSON (NULL + INVALID with field "body" when it is not). Caller owns the result. */
json_t *api_body_json(api_req *r, dms_error *err);

void api_reply_json(api_req *r, unsigned status, json_t *body); /* steals body */
void api_reply_error(api_req *r, const dms_error *err);         /* status from err->code */
void api_reply_errorf(api_req *r, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replies with buf (stolen, freed with free()); extra header (name/value) may be NULL. */
void api_reply_buf(api_req *r, unsigned status, const char *content_type, char *buf, size_t len,
                   const char *header, const char *value);
/* HTTP status for an error code. */
unsigned api_status_for(int code);

/* Parks the request; the reply comes later from any thread through api_pending_complete(), which must be
 * called exactly once (it releases the handle). If the server stops first, the client gets 503 and the
 * completion is ignored: a pending never touches its server, so it may be completed after http_stop() has
 * freed it (deferred.c). */
api_pending *api_defer(api_req *r);
void api_pending_complete(api_pending *p, unsigned status, json_t *body); /* steals body */

/* A streamed (chunked) reply. read fills buf: > 0 bytes, API_STREAM_AGAIN (nothing now: the connection is
 * parked until fd is readable or the next tick), API_STREAM_END, API_STREAM_ERROR. fd may return -1 (tick
 * only). free releases ud (called once, on any thread). */
#define API_STREAM_AGAIN 0
#define API_STREAM_END   (-1)
#define API_STREAM_ERROR (-2)
typedef struct api_stream_ops {
    ssize_t (*read)(void *ud, char *buf, size_t max);
    int (*fd)(void *ud);
    void (*free)(void *ud);
} api_stream_ops;
void api_reply_stream(api_req *r, unsigned status, const char *content_type, const api_stream_ops *ops,
                      void *ud, const char *header, const char *value);

#endif
