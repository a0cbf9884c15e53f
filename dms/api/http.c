/* http.c - libmicrohttpd glue: routing, auth, bodies, replies, deferred replies, parked streams (see http.h).
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common.h"
#include "auth.h"

#define MAX_BODY_BYTES              (1024 * 1024) /* a create body with a full env fits with room to spare */
#define CONNECTION_LIMIT            1024
#define CONNECTION_IDLE_TIMEOUT_SEC 120
#define LISTEN_BACKLOG              512
#define STREAM_BLOCK_BYTES          (32 * 1024)
#define STREAM_TICK_MS              100  /* parked streams without an fd are retried this often */
#define STREAM_RECHECK_MS           1000 /* and those with one, in case an edge was missed */
#define MAX_PATH_SEGMENTS           8

struct http_server {
    struct MHD_Daemon *daemon;
    http_config cfg;
    int port;
    pthread_mutex_t lock;
    api_pending *pendings; /* deferred requests not yet answered */
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
    dms_error auth_err;
    dms_buf body;
    bool replied;
    api_pending *pending;
};

struct api_pending {
    http_server *srv;
    struct MHD_Connection *conn;
    api_req *r; /* NULL once the request is over */
    int refs;   /* the request's and the worker's */
    bool done;
    unsigned status;
    char *body;
    size_t len;
    api_pending *next;
};

typedef struct stream_ctx {
    http_server *srv;
    struct MHD_Connection *conn;
    const api_stream_ops *ops;
    void *ud;
    bool parked;
    int64_t parked_at_ms;
    struct stream_ctx *next;
} stream_ctx;

/* ---- replies ---- */

unsigned api_status_for(int code)
{
    switch (code) {
    case DMS_E_INVALID:
        return MHD_HTTP_BAD_REQUEST;
    case DMS_E_NOT_FOUND:
        return MHD_HTTP_NOT_FOUND;
    case DMS_E_ALREADY_STARTED:
    case DMS_E_ALREADY_COMPLETE:
    case DMS_E_CONFLICT:
    case DMS_E_CANCELLED:
        return MHD_HTTP_CONFLICT;
    case DMS_E_BUILD_FAILED:
        return MHD_HTTP_UNPROCESSABLE_CONTENT;
    case DMS_E_NOT_SUPPORTED:
        return MHD_HTTP_NOT_IMPLEMENTED;
    case DMS_E_UNAVAILABLE:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case DMS_E_ENGINE:
    case DMS_E_IMAGE:
    case DMS_E_START_FAILED:
    case DMS_E_PROTOCOL:
        return MHD_HTTP_BAD_GATEWAY;
    case DMS_E_TIMEOUT:
        return MHD_HTTP_GATEWAY_TIMEOUT;
    case DMS_E_FORBIDDEN:
        return MHD_HTTP_FORBIDDEN;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

static char *error_body(const char *message, const char *field, size_t *len)
{
    json_t *j = json_pack("{s:s, s:o}", "error", message, "field",
                          field && *field ? json_string(field) : json_null());
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    *len = s ? strlen(s) : 0;
    return s;
}

static void queue(api_req *r, unsigned status, const char *ctype, char *buf, size_t len, const char *header,
                  const char *value)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, buf ? buf : (char *)"", buf ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(buf);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (header && value)
        MHD_add_response_header(resp, header, value);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->replied = true;
}

void api_reply_buf(api_req *r, unsigned status, const char *content_type, char *buf, size_t len,
                   const char *header, const char *value)
{
    queue(r, status, content_type, buf, len, header, value);
}

void api_reply_json(api_req *r, unsigned status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    queue(r, status, "application/json", s, strlen(s), NULL, NULL);
}

void api_reply_errorf(api_req *r, unsigned status, const char *field, const char *fmt, ...)
{
    char msg[DMS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len;
    char *s = error_body(msg, field, &len);
    if (status >= 500)
        log_warn("component=http method=%s url=%s status=%u error=\"%s\"", r->method, r->url, status, msg);
    queue(r, status, "application/json", s, len, NULL, NULL);
}

void api_reply_error(api_req *r, const dms_error *err)
{
    api_reply_errorf(r, api_status_for(err->code), err->field, "%s",
                     err->message[0] ? err->message : "error");
}

/* ---- deferred replies ---- */

static void pending_release(api_pending *p)
{
    http_server *s = p->srv;
    pthread_mutex_lock(&s->lock);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        free(p->body);
        free(p);
    }
}

static void pending_unlink(http_server *s, api_pending *p)
{
    for (api_pending **pp = &s->pendings; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
}

api_pending *api_defer(api_req *r)
{
    api_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return NULL;
    }
    http_server *s = r->srv;
    p->srv = s;
    p->conn = r->conn;
    p->r = r;
    p->refs = 2;
    r->pending = p;
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        p->done = true;
        p->status = MHD_HTTP_SERVICE_UNAVAILABLE;
        p->body = error_body("dmsd is shutting down", NULL, &p->len);
    }
    p->next = s->pendings;
    s->pendings = p;
    pthread_mutex_unlock(&s->lock);
    MHD_suspend_connection(r->conn);
    if (p->done)
        MHD_resume_connection(r->conn);
    return p;
}

/* Under s->lock. */
static void pending_finish_locked(api_pending *p, unsigned status, char *body, size_t len)
{
    p->done = true;
    p->status = status;
    p->body = body;
    p->len = len;
    if (p->r)
        MHD_resume_connection(p->conn);
}

void api_pending_complete(api_pending *p, unsigned status, json_t *body)
{
    if (!p) {
        json_decref(body);
        return;
    }
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    size_t len = s ? strlen(s) : 0;
    http_server *srv = p->srv;
    pthread_mutex_lock(&srv->lock);
    if (!p->done) {
        if (!s && status < 300) {
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            s = error_body("out of memory", NULL, &len);
        }
        pending_finish_locked(p, status, s, len);
        s = NULL;
    }
    pthread_mutex_unlock(&srv->lock);
    free(s);
    pending_release(p);
}

/* ---- streams ---- */

static void wake(http_server *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->wake_fd, &one, sizeof(one));
    (void)n;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_ctx *c = cls;
    (void)pos;
    ssize_t n = c->ops->read(c->ud, buf, max);
    if (n > 0)
        return n;
    if (n == API_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n != API_STREAM_AGAIN)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    http_server *s = c->srv;
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Park: MHD stops polling this connection until the streamer resumes it (data, tick, or stop). */
    c->parked = true;
    c->parked_at_ms = dmsd_mono_ms();
    c->next = s->parked;
    s->parked = c;
    MHD_suspend_connection(c->conn);
    pthread_mutex_unlock(&s->lock);
    wake(s);
    return 0;
}

static void stream_free(void *cls)
{
    stream_ctx *c = cls;
    http_server *s = c->srv;
    pthread_mutex_lock(&s->lock);
    if (c->parked)
        for (stream_ctx **pp = &s->parked; *pp; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
    pthread_mutex_unlock(&s->lock);
    if (c->ops->free)
        c->ops->free(c->ud);
    free(c);
}

void api_reply_stream(api_req *r, unsigned status, const char *content_type, const api_stream_ops *ops,
                      void *ud, const char *header, const char *value)
{
    stream_ctx *c = calloc(1, sizeof(*c));
    struct MHD_Response *resp = c ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_BYTES,
                                                                      stream_read, c, stream_free)
                                  : NULL;
    if (!resp) {
        free(c);
        if (ops->free)
            ops->free(ud);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    c->srv = r->srv;
    c->conn = r->conn;
    c->ops = ops;
    c->ud = ud;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (header && value)
        MHD_add_response_header(resp, header, value);
    MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->replied = true;
}

/* Resumes parked streams whose source may have data: fd readable, or their tick came. */
static void *streamer_main(void *arg)
{
    http_server *s = arg;
    struct pollfd *pfd = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if (s->stopping && !s->parked) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        size_t n = 1;
        for (stream_ctx *c = s->parked; c; c = c->next)
            n++;
        if (n > cap) {
            struct pollfd *np = realloc(pfd, n * sizeof(*pfd));
            if (np) {
                pfd = np;
                cap = n;
            }
        }
        size_t k = 1;
        bool any_tick = false;
        for (stream_ctx *c = s->parked; c && k < cap; c = c->next) {
            int fd = c->ops->fd ? c->ops->fd(c->ud) : -1;
            if (fd < 0) {
                any_tick = true;
                continue;
            }
            pfd[k++] = (struct pollfd){.fd = fd, .events = POLLIN};
        }
        pthread_mutex_unlock(&s->lock);
        pfd[0] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
        int timeout = any_tick ? STREAM_TICK_MS : (k > 1 ? STREAM_RECHECK_MS : -1);
        int rc = poll(pfd, k, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            ssize_t rd = read(s->wake_fd, &v, sizeof(v));
            (void)rd;
        }
        int64_t now = dmsd_mono_ms();
        pthread_mutex_lock(&s->lock);
        for (stream_ctx **pp = &s->parked; *pp;) {
            stream_ctx *c = *pp;
            int fd = c->ops->fd ? c->ops->fd(c->ud) : -1;
            bool ready = s->stopping || fd < 0 || now - c->parked_at_ms >= STREAM_RECHECK_MS;
            for (size_t i = 1; !ready && i < k; i++)
                ready = pfd[i].fd == fd && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR));
            if (ready) {
                *pp = c->next;
                c->parked = false;
                MHD_resume_connection(c->conn);
            } else {
                pp = &c->next;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    free(pfd);
    return NULL;
}

/* ---- requests ---- */

const char *api_user(const api_req *r)
{
    return r->user;
}

typedef struct query_find {
    const char *key;
    const char *value;
    bool found;
} query_find;

static enum MHD_Result find_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    query_find *q = cls;
    (void)kind;
    if (strcmp(key, q->key) == 0) {
        q->found = true;
        q->value = value ? value : "";
        return MHD_NO;
    }
    return MHD_YES;
}

const char *api_query(api_req *r, const char *key)
{
    query_find q = {.key = key};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, find_arg, &q);
    return q.found ? q.value : NULL;
}

int api_query_i64(api_req *r, const char *key, long long max, long long *out, dms_error *err)
{
    const char *v = api_query(r, key);
    if (!v)
        return 1;
    int64_t n = dms_parse_i64(v);
    if (n < 0 || n > max)
        return dms_error_set(err, DMS_E_INVALID, key, "%s must be an integer from 0 to %lld", key, max);
    *out = n;
    return 0;
}

int api_query_bool(api_req *r, const char *key, bool *out, dms_error *err)
{
    const char *v = api_query(r, key);
    if (!v || strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        *out = false;
        return 0;
    }
    if (!*v || strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        *out = true;
        return 0;
    }
    return dms_error_set(err, DMS_E_INVALID, key, "%s must be 1, 0, true or false", key);
}

const char *api_header(api_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *api_body(api_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

json_t *api_body_json(api_req *r, dms_error *err)
{
    if (!r->body.len) {
        dms_error_set(err, DMS_E_INVALID, "body", "a JSON body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        dms_error_set(err, DMS_E_INVALID, "body", "the body is not valid JSON: %s (line %d, column %d)",
                      jerr.text, jerr.line, jerr.column);
    return j;
}

typedef struct query_check {
    const char *const *allowed;
    const char *bad;
} query_check;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    query_check *q = cls;
    (void)kind;
    (void)value;
    for (size_t i = 0; q->allowed && q->allowed[i]; i++)
        if (strcmp(q->allowed[i], key) == 0)
            return MHD_YES;
    q->bad = key;
    return MHD_NO;
}

/* Splits "/a/b/c" into segments (pointers into buf). */
static size_t split_path(char *buf, char **seg, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return max + 1;
        seg[n++] = p;
    }
    return n;
}

/* Whether method and url name a route served without a token (decided before the body is read, since an
 * unauthorized request's body is dropped). */
static bool route_no_auth(http_server *s, const char *method, const char *url)
{
    char path[512], pat[128];
    if (dms_snprintf_ok(path, sizeof(path), "%s", url) < 0)
        return false;
    char *seg[MAX_PATH_SEGMENTS + 1];
    size_t n = split_path(path, seg, MAX_PATH_SEGMENTS);
    for (const api_route *rt = s->cfg.open_routes; rt && rt->method; rt++) {
        if (strcmp(rt->method, method) != 0)
            continue;
        snprintf(pat, sizeof(pat), "%s", rt->pattern);
        char *pseg[MAX_PATH_SEGMENTS + 1];
        size_t pn = split_path(pat, pseg, MAX_PATH_SEGMENTS);
        bool ok = pn == n;
        for (size_t i = 0; ok && i < n; i++)
            ok = strcmp(pseg[i], ":id") == 0 || strcmp(pseg[i], seg[i]) == 0;
        if (ok)
            return true;
    }
    return false;
}

/* The k-th route: the open ones first, then the others; NULL past the end. */
static const api_route *route_at(const http_server *s, size_t k)
{
    const api_route *open = s->cfg.open_routes;
    for (; open && open->method; open++, k--)
        if (k == 0)
            return open;
    return s->cfg.routes[k].method ? &s->cfg.routes[k] : NULL;
}

static void dispatch(http_server *s, api_req *r)
{
    char path[512], pat[128];
    if (dms_snprintf_ok(path, sizeof(path), "%s", r->url) < 0) {
        api_reply_errorf(r, MHD_HTTP_URI_TOO_LONG, NULL, "the path is too long");
        return;
    }
    char *seg[MAX_PATH_SEGMENTS + 1];
    size_t n = split_path(path, seg, MAX_PATH_SEGMENTS);
    bool path_matched = false;
    char allow[64] = "";
    const api_route *rt;
    for (size_t k = 0; (rt = route_at(s, k)) != NULL; k++) {
        snprintf(pat, sizeof(pat), "%s", rt->pattern);
        char *pseg[MAX_PATH_SEGMENTS + 1];
        size_t pn = split_path(pat, pseg, MAX_PATH_SEGMENTS);
        if (pn != n)
            continue;
        const char *id = NULL;
        bool ok = true;
        for (size_t i = 0; ok && i < n; i++) {
            if (strcmp(pseg[i], ":id") == 0)
                id = seg[i];
            else
                ok = strcmp(pseg[i], seg[i]) == 0;
        }
        if (!ok)
            continue;
        path_matched = true;
        if (strcmp(rt->method, r->method) != 0) {
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", rt->method);
            continue;
        }
        query_check q = {.allowed = rt->query};
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &q);
        if (q.bad) {
            api_reply_errorf(r, MHD_HTTP_BAD_REQUEST, q.bad, "unknown query parameter \"%.64s\"", q.bad);
            return;
        }
        rt->fn(s->cfg.app, r, id);
        if (!r->replied && !r->pending)
            api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "no reply from the handler");
        return;
    }
    if (path_matched) {
        size_t len;
        char *body = error_body("method not allowed", NULL, &len);
        queue(r, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", body, len, MHD_HTTP_HEADER_ALLOW, allow);
        return;
    }
    api_reply_errorf(r, MHD_HTTP_NOT_FOUND, NULL, "no route %s %.200s", r->method, r->url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    http_server *s = cls;
    api_req *r = *con_cls;
    (void)version;
    if (!r) {
        /* Nothing is answered on this first call: a reply queued before MHD has read the whole request makes
         * it close the connection, and keep-alive is most of the status route's speed. */
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->body.max = MAX_BODY_BYTES;
        *con_cls = r;
        const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (route_no_auth(s, method, url))
            r->authorized = true; /* no user: the handler checks what the route needs (a hook's secret) */
        else
            r->authorized =
                auth_check_header(h, s->cfg.jwt_secret, r->user, sizeof(r->user), &r->auth_err) == 0;
        return MHD_YES;
    }
    if (*upload_size) {
        /* A body for an unauthorized request is read and dropped, never stored. */
        if (r->authorized)
            dms_buf_append(&r->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->authorized && !r->replied) {
        api_reply_errorf(r, MHD_HTTP_UNAUTHORIZED, "Authorization", "%s", r->auth_err.message);
        return MHD_YES;
    }
    if (r->replied)
        return MHD_YES;
    if (r->pending) {
        api_pending *p = r->pending;
        pthread_mutex_lock(&s->lock);
        bool done = p->done;
        char *body = p->body;
        size_t len = p->len;
        unsigned status = p->status;
        if (done)
            p->body = NULL;
        pthread_mutex_unlock(&s->lock);
        if (done)
            queue(r, status, "application/json", body, len, NULL, NULL);
        return MHD_YES;
    }
    if (r->body.overflow) {
        api_reply_errorf(r, MHD_HTTP_CONTENT_TOO_LARGE, "body", "the body is larger than %d bytes",
                         MAX_BODY_BYTES);
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
    if (r->pending) {
        pthread_mutex_lock(&s->lock);
        r->pending->r = NULL;
        pending_unlink(s, r->pending);
        pthread_mutex_unlock(&s->lock);
        pending_release(r->pending);
    }
    dms_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
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
    int64_t p = dms_parse_i64(port);
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

int http_start(http_server **out, const http_config *cfg, dms_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int r = cfg->has_listen_fd ? 0 : parse_listen(cfg->listen, &ss, &sl, err);
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
    pthread_mutex_init(&s->lock, NULL);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        r = dms_error_set_errno(err, DMS_E_IO, errno, "eventfd");
        goto fail;
    }
    if (pthread_create(&s->streamer, NULL, streamer_main, s) != 0) {
        r = dms_error_set(err, DMS_E_IO, NULL, "cannot start the stream thread");
        goto fail;
    }
    s->streamer_started = true;
    /* MHD_USE_ITC: MHD_quiesce_daemon needs it to hand the listening socket back (http_stop_keep_listener).
     */
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* Either bind the address or serve the socket handed over; the same option list otherwise. */
    struct MHD_OptionItem where[2] = {
        cfg->has_listen_fd ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd, NULL}
                           : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_END, 0, NULL}};
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_ARRAY,
        where, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->threads > 0 ? cfg->threads : 2),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_IDLE_TIMEOUT_SEC, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        r = dms_error_set(err, DMS_E_IO, "listen", "cannot listen on %s (address in use, or not permitted)",
                          cfg->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
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

static int stop_server(http_server *s)
{
    if (!s)
        return -1;
    int fd = -1;
    if (s->daemon) {
        MHD_socket q = MHD_quiesce_daemon(s->daemon);
        fd = q == MHD_INVALID_SOCKET ? -1 : (int)q;
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    /* MHD must not be stopped with suspended connections: answer every deferred request and end every stream.
     */
    for (api_pending *p = s->pendings; p; p = p->next)
        if (!p->done) {
            size_t len;
            char *body = error_body("dmsd is shutting down", NULL, &len);
            pending_finish_locked(p, MHD_HTTP_SERVICE_UNAVAILABLE, body, len);
        }
    for (stream_ctx *c = s->parked; c; c = c->next) {
        c->parked = false;
        MHD_resume_connection(c->conn);
    }
    s->parked = NULL;
    pthread_mutex_unlock(&s->lock);
    if (s->wake_fd >= 0)
        wake(s);
    if (s->streamer_started)
        pthread_join(s->streamer, NULL);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return fd;
}

void http_stop(http_server *s)
{
    int fd = stop_server(s);
    if (fd >= 0)
        close(fd);
}

int http_stop_keep_listener(http_server *s)
{
    return stop_server(s);
}
