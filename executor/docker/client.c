/* client.c - blocking Engine API calls over the unix socket, and what their failures mean to a user.
 *
 * docs/engine-notes.md §1: CURLOPT_UNIX_SOCKET_PATH plus a URL that still names a host; never
 * CURLOPT_FAILONERROR (the daemon's {"message"} is the error users need); status from CURLINFO_RESPONSE_CODE;
 * every body capped. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define UNIX_PREFIX "unix://"

int docker_client_init(docker_client *c, const dms_host_services *host, dms_error *err)
{
    memset(c, 0, sizeof(*c));
    c->host = host;
    pthread_mutex_init(&c->lock, NULL);
    const char *h = dmsu_kv_get(host->options, "host");
    const char *from = "option host";
    if (!h || !*h) {
        h = getenv("DOCKER_HOST");
        from = "DOCKER_HOST";
    }
    if (!h || !*h) {
        snprintf(c->socket_path, sizeof(c->socket_path), "%s", DOCKER_DEFAULT_SOCKET);
        return 0;
    }
    if (strncmp(h, UNIX_PREFIX, strlen(UNIX_PREFIX)) != 0)
        return dms_error_set(err, DMS_E_INVALID, "host",
                             "%s=%s: the docker backend talks to a local engine over a unix socket "
                             "(unix:///var/run/docker.sock); tcp and ssh hosts are not supported",
                             from, h);
    const char *path = h + strlen(UNIX_PREFIX);
    if (strlen(path) >= sizeof(c->socket_path) || path[0] != '/')
        return dms_error_set(err, DMS_E_INVALID, "host",
                             "%s=%s: the socket path must be absolute and shorter than %d bytes", from, h,
                             DOCKER_SOCKET_PATH_MAX);
    snprintf(c->socket_path, sizeof(c->socket_path), "%s", path);
    return 0;
}

void docker_client_destroy(docker_client *c)
{
    pthread_mutex_destroy(&c->lock);
}

void docker_diagnose_socket(const docker_client *c, char *buf, size_t n, int *errnum)
{
    struct stat st;
    *errnum = 0;
    if (stat(c->socket_path, &st) != 0) {
        *errnum = errno;
        snprintf(buf, n, "socket %s: %s (is dockerd running? start it with scripts/docker-up)",
                 c->socket_path, strerror(errno));
        return;
    }
    if (!S_ISSOCK(st.st_mode)) {
        *errnum = ENOTSOCK;
        snprintf(buf, n, "%s is not a socket", c->socket_path);
        return;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->socket_path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        *errnum = errno;
        if (errno == EACCES)
            snprintf(buf, n, "socket %s: permission denied (run as root or join the docker group)",
                     c->socket_path);
        else
            snprintf(buf, n, "socket %s: %s (a stale socket? is dockerd running? scripts/docker-up)",
                     c->socket_path, strerror(errno));
    } else {
        snprintf(buf, n, "socket %s accepts connections but does not answer as a Docker engine",
                 c->socket_path);
    }
    if (fd >= 0)
        close(fd);
}

char *docker_escape(const char *s)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    char *e = curl_easy_escape(h, s, 0);
    char *out = e ? strdup(e) : NULL;
    curl_free(e);
    curl_easy_cleanup(h);
    return out;
}

void docker_easy_setup(CURL *h, const docker_client *c, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)DOCKER_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    errbuf[0] = '\0';
}

/* ---- one blocking transfer ---- */

typedef struct call_ctx {
    docker_response *resp;
    docker_sink_fn sink;
    void *sink_ud;
    docker_source_fn source;
    void *source_ud;
    const docker_abort *abort;
    int sink_error;
    bool headers_done;
    CURL *h;
} call_ctx;

static size_t header_cb(char *data, size_t size, size_t n, void *ud)
{
    call_ctx *cc = ud;
    size_t len = size * n;
    if (len == 2 && data[0] == '\r' && data[1] == '\n') {
        long status = 0;
        curl_easy_getinfo(cc->h, CURLINFO_RESPONSE_CODE, &status);
        /* Skip "100 Continue" interim headers. */
        if (status >= 200) {
            cc->resp->status = status;
            cc->headers_done = true;
        }
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
    call_ctx *cc = ud;
    size_t len = size * n;
    bool ok = cc->resp->status >= 200 && cc->resp->status < 300;
    if (ok && cc->sink) {
        int r = cc->sink(cc->sink_ud, data, len);
        if (r < 0) {
            cc->sink_error = r;
            return CURL_WRITEFUNC_ERROR;
        }
        return len;
    }
    if (dmsu_buf_append(&cc->resp->body, data, len) < 0)
        return CURL_WRITEFUNC_ERROR;
    return len;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *ud)
{
    call_ctx *cc = ud;
    long r = cc->source(cc->source_ud, buf, size * n);
    if (r < 0)
        return CURL_READFUNC_ABORT;
    return (size_t)r;
}

bool docker_abort_requested(const docker_abort *a)
{
    if (!a)
        return false;
    return (a->flag && atomic_load(a->flag)) || dms_cancel_token_cancelled(a->token) ||
           (a->marker_path && access(a->marker_path, F_OK) == 0);
}

static int xferinfo_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    call_ctx *cc = ud;
    return docker_abort_requested(cc->abort) ? 1 : 0;
}

static int perform(docker_client *c, const char *method, const char *url, const char *body,
                   const char *content_type, docker_source_fn source, void *source_ud, long timeout_ms,
                   const docker_abort *abort, docker_sink_fn sink, void *sink_ud, docker_response *resp,
                   struct curl_slist *extra_headers, dms_error *err)
{
    memset(resp, 0, sizeof(*resp));
    resp->body.max = sink ? DOCKER_ERROR_BODY_MAX_BYTES : DOCKER_BODY_MAX_BYTES;
    CURL *h = curl_easy_init();
    if (!h)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "curl_easy_init failed");
    char errbuf[CURL_ERROR_SIZE];
    docker_easy_setup(h, c, errbuf);
    call_ctx cc = {.resp = resp,
                   .sink = sink,
                   .sink_ud = sink_ud,
                   .source = source,
                   .source_ud = source_ud,
                   .abort = abort,
                   .h = h};
    struct curl_slist *headers = extra_headers;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &cc);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &cc);
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (abort) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &cc);
    }
    if (strcmp(method, "GET") != 0) {
        if (source) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
            curl_easy_setopt(h, CURLOPT_READDATA, &cc);
            headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
            headers = curl_slist_append(headers, "Expect:");
        } else if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
        } else {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
            if (body) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
            }
        }
        if (body)
            headers = curl_slist_append(headers, "Content-Type: application/json");
        else if (content_type) {
            char ct[128];
            snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
            headers = curl_slist_append(headers, ct);
        }
    }
    if (headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status)
        resp->status = status;
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK)
        return 0;
    if (cc.sink_error)
        return cc.sink_error;
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return dms_error_set(err, DMS_E_CANCELLED, NULL, "%s %s: cancelled", method,
                             url + strlen("http://localhost"));
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return dms_error_set(err, DMS_E_TIMEOUT, NULL,
                             "%s %s: no answer from the Docker engine within %ld ms", method,
                             url + strlen("http://localhost"), timeout_ms);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_GOT_NOTHING ||
        rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_WEIRD_SERVER_REPLY) {
        char why[300];
        int e;
        if (resp->status > 0 && (rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)) {
            int r = dms_error_set(
                err, DMS_E_ENGINE, NULL, "%s %s: the Docker engine dropped the connection (%s)", method,
                url + strlen("http://localhost"), errbuf[0] ? errbuf : curl_easy_strerror(rc));
            if (err)
                err->retryable = true;
            return r;
        }
        docker_diagnose_socket(c, why, sizeof(why), &e);
        int r = dms_error_set(err, DMS_E_UNAVAILABLE, NULL, "cannot reach the Docker engine: %s", why);
        if (err)
            err->sys_errno = e;
        return r;
    }
    return dms_error_set(err, DMS_E_IO, NULL, "%s %s: %s", method, url + strlen("http://localhost"),
                         errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/* ---- API version ---- */

typedef struct ping_ctx {
    char version[16];
    CURL *h;
} ping_ctx;

static size_t ping_header_cb(char *data, size_t size, size_t n, void *ud)
{
    ping_ctx *pc = ud;
    size_t len = size * n;
    static const char key[] = "api-version:";
    if (len > sizeof(key) && strncasecmp(data, key, sizeof(key) - 1) == 0) {
        const char *v = data + sizeof(key) - 1;
        while (*v == ' ')
            v++;
        size_t vl = 0;
        while (v + vl < data + len && v[vl] != '\r' && v[vl] != '\n' && vl < sizeof(pc->version) - 1)
            vl++;
        memcpy(pc->version, v, vl);
        pc->version[vl] = '\0';
    }
    return len;
}

static size_t discard_cb(char *data, size_t size, size_t n, void *ud)
{
    dmsu_buf *b = ud;
    dmsu_buf_append(b, data, size * n);
    return size * n;
}

/* "1.41" -> 41; -1 if not 1.x */
static int api_minor(const char *v)
{
    if (strncmp(v, "1.", 2) != 0)
        return -1;
    int64_t m = dmsu_parse_i64(v + 2);
    return m < 0 || m > 1000 ? -1 : (int)m;
}

int docker_client_ping(docker_client *c, long timeout_ms, dms_error *err)
{
    CURL *h = curl_easy_init();
    if (!h)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "curl_easy_init failed");
    char errbuf[CURL_ERROR_SIZE];
    ping_ctx pc = {.h = h};
    dmsu_buf body = {.max = 1024};
    docker_easy_setup(h, c, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, "http://localhost/_ping");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, ping_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &pc);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    char why[300];
    int e = 0;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        dmsu_buf_free(&body);
        return dms_error_set(
            err, DMS_E_UNAVAILABLE, NULL,
            "socket %s did not answer /_ping within %ld ms: not a Docker engine, or a hung one",
            c->socket_path, timeout_ms);
    }
    if (rc != CURLE_OK) {
        dmsu_buf_free(&body);
        docker_diagnose_socket(c, why, sizeof(why), &e);
        int r = dms_error_set(err, DMS_E_UNAVAILABLE, NULL, "cannot reach the Docker engine: %s", why);
        if (err)
            err->sys_errno = e;
        return r;
    }
    bool ok = status == 200 && body.data && strncmp(body.data, "OK", 2) == 0;
    dmsu_buf_free(&body);
    if (!ok || !pc.version[0])
        return dms_error_set(
            err, DMS_E_UNAVAILABLE, NULL,
            "socket %s answered /_ping with HTTP %ld and no Api-Version: not a Docker engine", c->socket_path,
            status);
    int theirs = api_minor(pc.version), ours = api_minor(DOCKER_API_VERSION_MAX);
    if (theirs < DOCKER_API_VERSION_MIN_MINOR)
        return dms_error_set(err, DMS_E_UNAVAILABLE, NULL,
                             "the Docker engine at %s speaks API %s; dms needs at least 1.%d (Docker 1.13)",
                             c->socket_path, pc.version, DOCKER_API_VERSION_MIN_MINOR);
    pthread_mutex_lock(&c->lock);
    if (theirs < ours) {
        if (strcmp(c->api_version, pc.version) != 0)
            dms_logf(c->host, DMS_LOG_WARN,
                     "op=ping engine_api=%s our_api=%s msg=\"speaking the engine's older API\"", pc.version,
                     DOCKER_API_VERSION_MAX);
        snprintf(c->api_version, sizeof(c->api_version), "%s", pc.version);
    } else {
        snprintf(c->api_version, sizeof(c->api_version), "%s", DOCKER_API_VERSION_MAX);
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int docker_url(docker_client *c, char *out, size_t n, const char *path, dms_error *err)
{
    char v[16];
    pthread_mutex_lock(&c->lock);
    snprintf(v, sizeof(v), "%s", c->api_version);
    pthread_mutex_unlock(&c->lock);
    if (!v[0]) {
        int r = docker_client_ping(c, DOCKER_PING_TIMEOUT_MS, err);
        if (r < 0)
            return r;
        pthread_mutex_lock(&c->lock);
        snprintf(v, sizeof(v), "%s", c->api_version);
        pthread_mutex_unlock(&c->lock);
    }
    if (dmsu_snprintf_ok(out, n, "http://localhost/v%s%s", v, path) < 0)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "URL too long: %.80s", path);
    return 0;
}

#define URL_MAX 4096

int docker_call(docker_client *c, const char *method, const char *path, const char *body, long timeout_ms,
                docker_response *resp, dms_error *err)
{
    char url[URL_MAX];
    memset(resp, 0, sizeof(*resp));
    int r = docker_url(c, url, sizeof(url), path, err);
    if (r < 0)
        return r;
    return perform(c, method, url, body, NULL, NULL, NULL, timeout_ms, NULL, NULL, NULL, resp, NULL, err);
}

int docker_call_stream(docker_client *c, const char *method, const char *path, const char *content_type,
                       docker_source_fn source, void *source_ud, long timeout_ms, const docker_abort *abort,
                       docker_sink_fn sink, void *sink_ud, docker_response *resp, dms_error *err)
{
    char url[URL_MAX];
    memset(resp, 0, sizeof(*resp));
    int r = docker_url(c, url, sizeof(url), path, err);
    if (r < 0)
        return r;
    return perform(c, method, url, NULL, content_type, source, source_ud, timeout_ms, abort, sink, sink_ud,
                   resp, NULL, err);
}

const char *docker_response_message(const docker_response *resp, char *buf, size_t n)
{
    buf[0] = '\0';
    if (!resp->body.data || !resp->body.len)
        return buf;
    json_error_t jerr;
    json_t *j = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    if (m)
        snprintf(buf, n, "%s", m);
    else
        snprintf(buf, n, "%.*s", (int)(resp->body.len > 300 ? 300 : resp->body.len), resp->body.data);
    json_decref(j);
    /* One line: the daemon's messages may end with a newline. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return buf;
}

int docker_error_from_response(const docker_response *resp, const char *what, dms_error *err)
{
    char msg[DMS_ERROR_MSG_MAX];
    docker_response_message(resp, msg, sizeof(msg));
    int code;
    switch (resp->status) {
    case 400:
        code = DMS_E_INVALID;
        break;
    case 404:
        code = DMS_E_NOT_FOUND;
        break;
    case 409:
        code = DMS_E_CONFLICT;
        break;
    default:
        code = DMS_E_ENGINE;
    }
    return dms_error_set(err, code, NULL, "%s: %s (HTTP %ld)", what, msg[0] ? msg : "no message",
                         resp->status);
}

json_t *docker_response_json(const docker_response *resp, const char *what, dms_error *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &jerr);
    if (!j)
        dms_error_set(err, DMS_E_PROTOCOL, NULL, "%s: the engine answered something that is not JSON: %s",
                      what, jerr.text);
    return j;
}
