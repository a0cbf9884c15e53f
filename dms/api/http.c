/* http.c - the server (see http.h): libmicrohttpd's daemon and its connection limits, bearer auth before
 * any route, bodies, and the dispatcher that checks a route's :id and query before its handler. Replies are
 * reply.c's, what a handler reads of its request request.c's, deferred replies deferred.c's and parked
 * streams stream.c's. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../lograte.h"
#include "http_priv.h"

#define MAX_BODY_BYTES (1024 * 1024) /* a create body with a full env fits with room to spare */
/* A request without a valid token has its body read and dropped: one that announces more (or is chunked) is
 * answered at once, and past this much the connection is closed, so that no body keeps a connection busy
 * without a token. */
#define UNAUTHORIZED_BODY_DRAIN_BYTES (64 * 1024)
/* The body of a route served without a token (a push hook: a git host's payload, of which only "ref" is read,
 * but all of it is signed): anyone may send one, so it is kept smaller. */
#define OPEN_ROUTE_BODY_MAX_BYTES (256 * 1024)
/* Past MAX_BODY_BYTES a body is read and dropped (the 413 goes out at its end), up to this much in all. */
#define BODY_DRAIN_MAX_BYTES (8 * MAX_BODY_BYTES)
#define CONNECTION_LIMIT     1024
#define STOP_DRAIN_MS        2000 /* at stop, how long deferred requests have to get their 503 */
#define LISTEN_BACKLOG       512

typedef struct query_check {
    const char *const *allowed;
    uint64_t seen; /* bit i: allowed[i] was given */
    const char *bad;
    bool twice;
} query_check;

/* Every key must be one the route accepts, and given once: api_query() reads the first of a repeated key, and
 * a client (or a proxy in front) that reads another must not be able to mean two things with one request. */
static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    query_check *q = cls;
    (void)kind;
    (void)value;
    for (size_t i = 0; q->allowed && q->allowed[i] && i < 64; i++)
        if (strcmp(q->allowed[i], key) == 0) {
            if (!(q->seen & (1ULL << i))) {
                q->seen |= 1ULL << i;
                return MHD_YES;
            }
            q->twice = true;
            break;
        }
    q->bad = key;
    return MHD_NO;
}

/* Ownership first: no handler ever sees an id of another user. Returns false once it has answered. */
static bool owner_checked(http_server *s, api_req *r, const api_route *rt, const char *id)
{
    if (rt->id == API_ID_NONE || rt->id == API_ID_HOOK)
        return true;
    dms_error err = {0};
    if (s->cfg.check_id(s->cfg.app, rt->id, r->user, id, &err) == 0)
        return true;
    if (!err.code)
        dms_error_set(&err, DMS_E_NOT_FOUND, "id", "%s %.64s not found", api_id_kind_name(rt->id), id);
    api_reply_error(r, &err);
    return false;
}

static void run_route(http_server *s, api_req *r, const api_route *rt, const char *id)
{
    if (!owner_checked(s, r, rt, id))
        return;
    query_check q = {.allowed = rt->query};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &q);
    if (q.bad) {
        api_reply_errorf(r, MHD_HTTP_BAD_REQUEST, q.bad, "%s query parameter \"%.64s\"",
                         q.twice ? "repeated" : "unknown", q.bad);
        return;
    }
    rt->fn(s->cfg.app, r, id);
    if (!r->replied && !r->pending)
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no reply from the handler");
}

static void dispatch(http_server *s, api_req *r)
{
    char path[512];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s", r->url) < 0) {
        api_reply_errorf(r, MHD_HTTP_URI_TOO_LONG, NULL, "the path is too long");
        return;
    }
    char *seg[HTTP_MAX_PATH_SEGMENTS + 1];
    size_t n = http_split_path(path, seg, HTTP_MAX_PATH_SEGMENTS);
    bool path_matched = false;
    char allow[64] = "";
    const api_route *rt;
    const char *id;
    for (size_t k = 0; (rt = http_route_at(s, k)) != NULL; k++) {
        if (!http_match_pattern(rt->pattern, seg, n, &id))
            continue;
        path_matched = true;
        if (strcmp(rt->method, r->method) == 0) {
            run_route(s, r, rt, id);
            return;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", rt->method);
    }
    if (path_matched) {
        size_t len;
        char *body = http_error_body("method not allowed", NULL, &len);
        http_queue(r, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", body, len, MHD_HTTP_HEADER_ALLOW,
                   allow);
        return;
    }
    api_reply_errorf(r, MHD_HTTP_NOT_FOUND, NULL, "no route %s %.200s", r->method, r->url);
}

/* The body's length as announced: its Content-Length, LLONG_MAX when it is chunked (no end known), -1 without
 * one (or an invalid one, which MHD refuses itself). */
static long long announced_body(struct MHD_Connection *conn)
{
    if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return LLONG_MAX;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return cl ? dmsu_parse_i64(cl) : -1;
}

/* The first call, once the headers are in: authenticate and set the connection's idle limit. Nothing is
 * answered yet, unless the body announced is one that will not be read: a reply queued before MHD has read
 * the whole request makes it close the connection (keep-alive is most of the status route's speed), and MHD
 * sends a reply queued during the upload only once the body has ended, which a chunked one need never do. */
static api_req *begin_request(http_server *s, struct MHD_Connection *conn, const char *url,
                              const char *method)
{
    api_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->srv = s;
    r->conn = conn;
    r->method = method;
    r->url = url;
    r->body.max = MAX_BODY_BYTES;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (http_route_no_auth(s, method, url)) {
        r->authorized = true; /* no user: the handler checks what the route needs (a hook's secret) */
        r->body.max = OPEN_ROUTE_BODY_MAX_BYTES;
    } else {
        r->authorized = auth_check_header(h, &s->cfg.auth, r->user, sizeof(r->user), &r->auth_err) == 0;
        r->has_user = r->authorized;
    }
    /* Only a request that proved a token earns the long idle limit (a follow, a deferred reply, the next
     * request on a kept-alive connection); anything else keeps the short one. */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              r->has_user ? s->cfg.idle_timeout_s : s->cfg.request_timeout_s);
    long long announced = announced_body(conn);
    if (!r->authorized && announced > UNAUTHORIZED_BODY_DRAIN_BYTES)
        api_reply_errorf(r, MHD_HTTP_UNAUTHORIZED, "Authorization", "%s", r->auth_err.message);
    else if (r->authorized && announced > (long long)r->body.max && announced != LLONG_MAX)
        api_reply_errorf(r, MHD_HTTP_CONTENT_TOO_LARGE, "body", "the body is larger than %zu bytes",
                         r->body.max);
    return r;
}

/* A piece of the body: kept for an authorized request, counted and dropped for another. False when the
 * connection must be closed: an unauthorized body past UNAUTHORIZED_BODY_DRAIN_BYTES, or any body past
 * BODY_DRAIN_MAX_BYTES (a chunked one that goes on and on: its 413 would only be sent after its end). */
static bool take_body(api_req *r, const char *data, size_t len)
{
    r->dropped += len;
    if (!r->authorized)
        return r->dropped <= UNAUTHORIZED_BODY_DRAIN_BYTES;
    if (!r->replied)
        dmsu_buf_append(&r->body, data, len);
    return r->dropped <= BODY_DRAIN_MAX_BYTES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    http_server *s = cls;
    api_req *r = *con_cls;
    (void)version;
    if (!r) {
        *con_cls = r = begin_request(s, conn, url, method);
        return r ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        bool go_on = take_body(r, upload_data, *upload_size);
        *upload_size = 0;
        return go_on ? MHD_YES : MHD_NO;
    }
    if (r->replied)
        return MHD_YES;
    if (r->body.overflow) {
        api_reply_errorf(r, MHD_HTTP_CONTENT_TOO_LARGE, "body", "the body is larger than %zu bytes",
                         r->body.max);
        return MHD_YES;
    }
    if (!r->authorized) {
        api_reply_errorf(r, MHD_HTTP_UNAUTHORIZED, "Authorization", "%s", r->auth_err.message);
        return MHD_YES;
    }
    if (r->pending) {
        deferred_answer(r);
        return MHD_YES;
    }
    dispatch(s, r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    api_req *r = *con_cls;
    (void)conn;
    (void)toe;
    if (!r)
        return;
    if (r->pending)
        deferred_request_done(s, r);
    dmsu_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

/* MHD's own messages, one per format string per second (lograte.h): it says one line per refused connection,
 * and at EMFILE one per accept it retries, in a tight loop. The next line of a format that goes out says how
 * many of it were held back. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static lograte rate = LOGRATE_INIT(LOGRATE_INTERVAL_MS);
    (void)cls;
    uint64_t held = 0;
    if (!lograte_allow(&rate, fmt, dms_mono_ms(), &held))
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (held)
        log_warn("component=http mhd=\"%s\" suppressed=%llu note=\"the same message, held back in the last "
                 "second(s)\"",
                 msg, (unsigned long long)held);
    else
        log_warn("component=http mhd=\"%s\"", msg);
}

/* ---- start/stop ---- */

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, dms_error *err)
{
    char host[256], port[16];
    const char *colon = strrchr(listen, ':');
    if (!colon) {
        snprintf(host, sizeof(host), "127.0.0.1");
        snprintf(port, sizeof(port), "%s", listen);
    } else {
        size_t hl = (size_t)(colon - listen);
        if (hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port))
            return dms_error_set(err, DMS_E_INVALID, "listen", "listen address \"%.64s\" is too long",
                                 listen);
        memcpy(host, listen, hl);
        host[hl] = '\0';
        snprintf(port, sizeof(port), "%s", colon + 1);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
        }
        if (!*host)
            snprintf(host, sizeof(host), "127.0.0.1");
    }
    int64_t p = dmsu_parse_i64(port);
    if (p < 0 || p > 65535)
        return dms_error_set(err, DMS_E_INVALID, "listen", "listen address \"%.64s\": port must be 0-65535",
                             listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai)
        return dms_error_set(err, DMS_E_INVALID, "listen", "listen address \"%.64s\": %s", listen,
                             gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* The connection limits left at 0 get their defaults. */
static void fill_limits(http_config *out)
{
    if (!out->per_ip_limit)
        out->per_ip_limit = HTTP_DEFAULT_PER_IP_LIMIT;
    if (!out->request_timeout_s)
        out->request_timeout_s = HTTP_DEFAULT_REQUEST_TIMEOUT_S;
    if (!out->idle_timeout_s)
        out->idle_timeout_s = HTTP_DEFAULT_IDLE_TIMEOUT_S;
}

static int start_daemon(http_server *s, const struct sockaddr_storage *ss, dms_error *err)
{
    const http_config *cfg = &s->cfg;
    /* MHD_USE_ITC: MHD_quiesce_daemon needs it to hand the listening socket back (http_stop_keep_listener),
     * which only a poll() server may do: see http_config.handover. */
    unsigned flags = (cfg->handover ? MHD_USE_POLL_INTERNAL_THREAD : MHD_USE_EPOLL_INTERNAL_THREAD) |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* Either bind the address or serve the socket handed over; the same option list otherwise. */
    struct MHD_OptionItem where[2] = {
        cfg->has_listen_fd ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd, NULL}
                           : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)ss},
        {MHD_OPTION_END, 0, NULL}};
    /* The default idle limit is the short one: a connection earns the long one by showing a token
     * (begin_request). The per-address limit keeps one client from taking the global one. */
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                                 NULL, MHD_OPTION_ARRAY, where, MHD_OPTION_THREAD_POOL_SIZE,
                                 (unsigned)(cfg->threads > 0 ? cfg->threads : 2), MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                 cfg->per_ip_limit, MHD_OPTION_CONNECTION_TIMEOUT, cfg->request_timeout_s,
                                 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon)
        return dms_error_set(err, DMS_E_IO, "listen",
                             "cannot listen on %s (address in use, or not permitted)",
                             cfg->listen ? cfg->listen : "the socket handed over");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    return 0;
}

int http_start(http_server **out, const http_config *cfg, dms_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int r = http_validate_routes(cfg, err);
    if (r == 0 && !cfg->has_listen_fd)
        r = parse_listen(cfg->listen, &ss, &sl, err);
    if (r < 0)
        return r;
    if (cfg->has_listen_fd) {
        sl = sizeof(ss);
        if (getsockname(cfg->listen_fd, (struct sockaddr *)&ss, &sl) < 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "getsockname");
    }
    http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    s->cfg = *cfg;
    fill_limits(&s->cfg);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->pendings_gone, &ca);
    pthread_condattr_destroy(&ca);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        r = dms_error_set_errno(err, DMS_E_IO, errno, "eventfd");
        goto fail;
    }
    if (stream_thread_start(s) < 0) {
        r = dms_error_set(err, DMS_E_IO, NULL, "cannot start the stream thread");
        goto fail;
    }
    if ((r = start_daemon(s, &ss, err)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    http_stop(s);
    return r;
}

int http_port(const http_server *s)
{
    return s->port;
}

static int stop_server(http_server *s, bool keep_listener)
{
    if (!s)
        return -1;
    int fd = -1;
    if (s->daemon && keep_listener && s->cfg.handover) {
        MHD_socket q = MHD_quiesce_daemon(s->daemon);
        fd = q == MHD_INVALID_SOCKET ? -1 : (int)q;
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    /* MHD must not be stopped with suspended connections: answer every deferred request and end every stream.
     * A deferred reply that comes later finds its pending answered and detached from this server. */
    deferred_stop_locked(s);
    stream_stop_locked(s);
    deferred_drain_locked(s, STOP_DRAIN_MS);
    pthread_mutex_unlock(&s->lock);
    stream_thread_join(s);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_cond_destroy(&s->pendings_gone);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return fd;
}

void http_stop(http_server *s)
{
    stop_server(s, false);
}

int http_stop_keep_listener(http_server *s)
{
    return stop_server(s, true);
}
