/* raw.c - the bare Engine API client the executor is measured against (see raw.h). */
#include "raw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common.h"

#define RAW_CONNECT_TIMEOUT_MS 2000
#define RAW_URL_MAX            1024
#define FRAME_HDR_BYTES        8
#define EVENTS_LINE_MAX        (64 * 1024)
#define EVENTS_POLL_MS         1000
#define EVENTS_CONNECT_WAIT_MS 5000

/* Labels and HostConfig as executor/docker/types.c makes them, so the engine's work is the same. */
#define LABEL_EXECUTOR_VALUE BENCH_EXECUTOR_ID

int raw_conn_init(raw_conn *c)
{
    c->h = curl_easy_init();
    c->errbuf[0] = '\0';
    c->cancel = NULL;
    if (!c->h) {
        fprintf(stderr, "bench: curl_easy_init failed\n");
        return -1;
    }
    return 0;
}

void raw_conn_free(raw_conn *c)
{
    if (c->h)
        curl_easy_cleanup(c->h);
    c->h = NULL;
}

typedef struct call_ctx {
    dmsu_buf *body;
    raw_sink_fn sink;
    raw_headers_fn on_headers;
    void *ud;
    CURL *h;
    long status;
    bool stopped;
} call_ctx;

static size_t header_cb(char *data, size_t size, size_t n, void *ud)
{
    call_ctx *cc = ud;
    size_t len = size * n;
    if (len == 2 && data[0] == '\r' && data[1] == '\n') {
        long st = 0;
        curl_easy_getinfo(cc->h, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 200 && !cc->status) {
            cc->status = st;
            if (cc->on_headers)
                cc->on_headers(cc->ud, st);
        }
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
    call_ctx *cc = ud;
    size_t len = size * n;
    if (cc->sink && cc->status >= 200 && cc->status < 300) {
        if (cc->sink(cc->ud, data, len) != 0) {
            cc->stopped = true;
            return CURL_WRITEFUNC_ERROR;
        }
        return len;
    }
    if (cc->body)
        dmsu_buf_append(cc->body, data, len); /* capped: overflow just drops the rest */
    return len;
}

/* libcurl calls this about once a second even while nothing arrives, so a cancel lands that fast. */
static int xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    const atomic_bool *cancel = ud;
    return atomic_load(cancel) ? 1 : 0;
}

static int perform(raw_conn *c, const char *method, const char *path, const char *json, long timeout_ms,
                   call_ctx *cc)
{
    char url[RAW_URL_MAX];
    if (dmsu_snprintf_ok(url, sizeof(url), "http://localhost" RAW_API "%s", path) < 0)
        return -1;
    CURL *h = c->h;
    /* Reset keeps the connection cache: a bare client talks over one kept-alive connection. */
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, RAW_SOCKET);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)RAW_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    if (getenv("BENCH_CURL_VERBOSE"))
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, cc);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, cc);
    if (c->cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)c->cancel);
    }
    struct curl_slist *hdrs = NULL;
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json ? json : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(json ? strlen(json) : 0));
        if (json)
            hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    cc->h = h;
    c->errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (!cc->status)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &cc->status);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return -1; /* cancelled by us: nothing to report */
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && cc->stopped)) {
        fprintf(stderr, "bench: %s %s: %s\n", method, path,
                c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

int raw_call(raw_conn *c, const char *method, const char *path, const char *json, long timeout_ms,
             long *status, dmsu_buf *body)
{
    call_ctx cc = {.body = body};
    int r = perform(c, method, path, json, timeout_ms, &cc);
    *status = cc.status;
    return r;
}

int raw_stream(raw_conn *c, const char *method, const char *path, long timeout_ms, raw_headers_fn on_headers,
               raw_sink_fn sink, void *ud, long *status)
{
    dmsu_buf errbody = {.max = RAW_BODY_MAX_BYTES};
    call_ctx cc = {.body = &errbody, .sink = sink, .on_headers = on_headers, .ud = ud};
    int r = perform(c, method, path, NULL, timeout_ms, &cc);
    *status = cc.status;
    if (r == 0 && (cc.status < 200 || cc.status >= 300))
        fprintf(stderr, "bench: %s %s: status %ld: %.*s\n", method, path, cc.status, (int)errbody.len,
                errbody.data ? errbody.data : "");
    dmsu_buf_free(&errbody);
    return r;
}

/* ---- containers ---- */

char *raw_create_body(const char *image, const char *script, const char *log_max_size,
                      const char *log_max_file)
{
    json_t *cmd = script ? json_pack("[s,s,s]", "sh", "-c", script) : json_pack("[s]", "true");
    json_t *spec = json_pack(
        "{s:s,s:o,s:[],s:b,s:b,s:b,s:b,s:i,s:{s:s,s:s,s:s,s:s},"
        "s:{s:[],s:s,s:{s:s,s:{s:s,s:s}}}}",
        "Image", image, "Cmd", cmd, "Env", "Tty", 0, "OpenStdin", 0, "AttachStdout", 1, "AttachStderr", 1,
        "StopTimeout", 10, "Labels", "io.dms.managed", "true", "io.dms.executor", LABEL_EXECUTOR_VALUE,
        "io.dms.backend", "docker", "io.dms.role", "job", "HostConfig", "Mounts", "NetworkMode", "bridge",
        "LogConfig", "Type", "local", "Config", "max-size", log_max_size, "max-file", log_max_file);
    char *s = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    json_decref(spec);
    return s;
}

static int expect(const char *what, long status, long want, const dmsu_buf *body)
{
    if (status == want)
        return 0;
    fprintf(stderr, "bench: %s: status %ld: %.*s\n", what, status, (int)(body->len > 300 ? 300 : body->len),
            body->data ? body->data : "");
    return -1;
}

int raw_create(raw_conn *c, const char *name, const char *body, char id[80])
{
    char path[256];
    snprintf(path, sizeof(path), "/containers/create?name=%s", name);
    long status = 0;
    dmsu_buf out = {.max = RAW_BODY_MAX_BYTES};
    int r = raw_call(c, "POST", path, body, RAW_CALL_TIMEOUT_MS, &status, &out);
    if (r == 0)
        r = expect("create", status, 201, &out);
    if (r == 0) {
        json_t *j = json_loadb(out.data, out.len, 0, NULL);
        const char *s = json_string_value(json_object_get(j, "Id"));
        if (s)
            snprintf(id, 80, "%s", s);
        else
            r = -1;
        json_decref(j);
    }
    dmsu_buf_free(&out);
    return r;
}

int raw_start(raw_conn *c, const char *id)
{
    char path[160];
    snprintf(path, sizeof(path), "/containers/%s/start", id);
    long status = 0;
    dmsu_buf out = {.max = RAW_BODY_MAX_BYTES};
    int r = raw_call(c, "POST", path, NULL, RAW_CALL_TIMEOUT_MS, &status, &out);
    if (r == 0)
        r = expect("start", status, 204, &out);
    dmsu_buf_free(&out);
    return r;
}

int raw_wait(raw_conn *c, const char *id, int *exit_code)
{
    char path[160];
    snprintf(path, sizeof(path), "/containers/%s/wait?condition=not-running", id);
    long status = 0;
    dmsu_buf out = {.max = RAW_BODY_MAX_BYTES};
    int r = raw_call(c, "POST", path, NULL, RAW_CALL_TIMEOUT_MS, &status, &out);
    if (r == 0)
        r = expect("wait", status, 200, &out);
    if (r == 0) {
        json_t *j = json_loadb(out.data, out.len, 0, NULL);
        json_t *code = json_object_get(j, "StatusCode");
        *exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
        json_decref(j);
    }
    dmsu_buf_free(&out);
    return r;
}

int raw_delete(raw_conn *c, const char *id)
{
    char path[160];
    snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", id);
    long status = 0;
    dmsu_buf out = {.max = RAW_BODY_MAX_BYTES};
    int r = raw_call(c, "DELETE", path, NULL, RAW_CALL_TIMEOUT_MS, &status, &out);
    if (r == 0)
        r = expect("delete", status, 204, &out);
    dmsu_buf_free(&out);
    return r;
}

/* GET a list filtered by a label; n receives the array length (of `key` inside an object when key is set). */
static int count_list(raw_conn *c, const char *what, const char *filters, const char *key, int *n)
{
    char *esc = curl_easy_escape(c->h, filters, 0);
    char path[1024];
    snprintf(path, sizeof(path), "/%s%sfilters=%s", what, strchr(what, '?') ? "&" : "?", esc ? esc : "");
    curl_free(esc);
    long status = 0;
    dmsu_buf out = {.max = RAW_BODY_MAX_BYTES};
    int r = raw_call(c, "GET", path, NULL, RAW_CALL_TIMEOUT_MS, &status, &out);
    if (r == 0)
        r = expect(what, status, 200, &out);
    if (r == 0) {
        json_t *j = json_loadb(out.data, out.len, 0, NULL);
        json_t *a = key ? json_object_get(j, key) : j;
        *n = json_is_array(a) ? (int)json_array_size(a) : (a == NULL || json_is_null(a)) && j ? 0 : -1;
        if (*n < 0)
            r = -1;
        json_decref(j);
    }
    dmsu_buf_free(&out);
    return r;
}

int raw_count_labelled_id(raw_conn *c, const char *executor_id, int *containers, int *networks, int *volumes)
{
    char f[256];
    snprintf(f, sizeof(f), "{\"label\":[\"io.dms.executor=%s\"]}", executor_id);
    if (count_list(c, "containers/json?all=1", f, NULL, containers) < 0 ||
        count_list(c, "networks", f, NULL, networks) < 0 ||
        count_list(c, "volumes", f, "Volumes", volumes) < 0)
        return -1;
    return 0;
}

/* DELETE /<what>/<key> for every element of GET <list> (filtered by the label); failures counted. */
static int remove_listed(raw_conn *c, const char *list, const char *filters, const char *array_key,
                         const char *id_key, const char *what, const char *query)
{
    char *esc = curl_easy_escape(c->h, filters, 0);
    char path[1024];
    snprintf(path, sizeof(path), "/%s%sfilters=%s", list, strchr(list, '?') ? "&" : "?", esc ? esc : "");
    curl_free(esc);
    long status = 0;
    dmsu_buf out = {.max = RAW_BODY_MAX_BYTES};
    int failed = 0;
    if (raw_call(c, "GET", path, NULL, RAW_CALL_TIMEOUT_MS, &status, &out) < 0 || status != 200) {
        dmsu_buf_free(&out);
        return 1;
    }
    json_t *j = json_loadb(out.data, out.len, 0, NULL);
    dmsu_buf_free(&out);
    json_t *a = array_key ? json_object_get(j, array_key) : j;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(a, i), id_key));
        if (!id)
            continue;
        snprintf(path, sizeof(path), "/%s/%s%s", what, id, query);
        dmsu_buf body = {.max = RAW_BODY_MAX_BYTES};
        if (raw_call(c, "DELETE", path, NULL, RAW_CALL_TIMEOUT_MS, &status, &body) < 0 ||
            (status != 200 && status != 204 && status != 404)) {
            fprintf(stderr, "bench: remove %s %s: status %ld: %.*s\n", what, id, status, (int)body.len,
                    body.data ? body.data : "");
            failed++;
        }
        dmsu_buf_free(&body);
    }
    json_decref(j);
    return failed;
}

int raw_remove_labelled_id(raw_conn *c, const char *executor_id)
{
    char f[256];
    snprintf(f, sizeof(f), "{\"label\":[\"io.dms.executor=%s\"]}", executor_id);
    int failed = remove_listed(c, "containers/json?all=1", f, NULL, "Id", "containers", "?force=1&v=1");
    failed += remove_listed(c, "images/json", f, NULL, "Id", "images", "?force=1");
    failed += remove_listed(c, "volumes", f, "Volumes", "Name", "volumes", "");
    failed += remove_listed(c, "networks", f, NULL, "Id", "networks", "");
    return failed;
}

int raw_count_labelled(raw_conn *c, int *containers, int *networks, int *volumes)
{
    return raw_count_labelled_id(c, LABEL_EXECUTOR_VALUE, containers, networks, volumes);
}

int raw_count_foreign_running(raw_conn *c)
{
    int all = 0, ours = 0;
    if (count_list(c, "containers/json", "{}", NULL, &all) < 0 ||
        count_list(c, "containers/json", "{\"label\":[\"io.dms.executor=" LABEL_EXECUTOR_VALUE "\"]}", NULL,
                   &ours) < 0)
        return -1;
    return all - ours;
}

/* ---- demux ---- */

int raw_demux_feed(raw_demux *d, const char *p, size_t n)
{
    while (n > 0) {
        if (d->left == 0 && d->hdr_len < FRAME_HDR_BYTES) {
            size_t take = FRAME_HDR_BYTES - d->hdr_len;
            if (take > n)
                take = n;
            memcpy(d->hdr + d->hdr_len, p, take);
            d->hdr_len += take;
            p += take;
            n -= take;
            if (d->hdr_len < FRAME_HDR_BYTES)
                return 0;
            if (d->hdr[0] > 3)
                return -1;
            d->stream = d->hdr[0] == 0 ? 1 : d->hdr[0];
            d->left = (size_t)d->hdr[4] << 24 | (size_t)d->hdr[5] << 16 | (size_t)d->hdr[6] << 8 | d->hdr[7];
            d->frames++;
            if (d->stream == 3)
                d->systemerr = true;
            if (d->left == 0)
                d->hdr_len = 0; /* frames of size 0 exist */
            continue;
        }
        size_t take = d->left < n ? d->left : n;
        if (d->stream == 1 || d->stream == 2)
            d->bytes[d->stream] += take;
        d->left -= take;
        p += take;
        n -= take;
        if (d->left == 0)
            d->hdr_len = 0;
    }
    return 0;
}

int raw_demux_sink(void *ud, const char *data, size_t len)
{
    return raw_demux_feed(ud, data, len) < 0 ? -1 : 0;
}

/* ---- attach ---- */

static void attach_headers(void *ud, long status)
{
    raw_attach *a = ud;
    pthread_mutex_lock(&a->lock);
    a->status = status;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static int attach_sink(void *ud, const char *data, size_t len)
{
    raw_attach *a = ud;
    return raw_demux_sink(&a->demux, data, len);
}

static void *attach_main(void *arg)
{
    raw_attach *a = arg;
    raw_conn c;
    long status = 0;
    int rc = raw_conn_init(&c);
    c.cancel = &a->cancel;
    if (rc == 0)
        rc = raw_stream(&c, "POST", a->path, a->timeout_ms, attach_headers, attach_sink, a, &status);
    int64_t end = bench_mono_ns();
    raw_conn_free(&c);
    pthread_mutex_lock(&a->lock);
    a->rc = rc < 0 || status != 200 ? -1 : 0;
    a->end_ns = end;
    a->done = true;
    if (!a->status)
        a->status = status ? status : -1;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int raw_attach_begin(raw_attach *a, const char *id, long timeout_ms)
{
    memset(a, 0, sizeof(*a));
    atomic_init(&a->cancel, false);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    a->timeout_ms = timeout_ms;
    snprintf(a->path, sizeof(a->path), "/containers/%s/attach?stream=1&stdout=1&stderr=1", id);
    if (pthread_create(&a->thread, NULL, attach_main, a) != 0)
        return -1;
    a->thread_started = true;
    pthread_mutex_lock(&a->lock);
    while (!a->status)
        pthread_cond_wait(&a->cond, &a->lock); /* bounded: the attach call has its own timeout */
    long st = a->status;
    pthread_mutex_unlock(&a->lock);
    return st == 200 ? 0 : -1;
}

int raw_attach_end(raw_attach *a)
{
    if (!a->thread_started)
        return -1;
    pthread_mutex_lock(&a->lock);
    while (!a->done)
        pthread_cond_wait(&a->cond, &a->lock);
    int rc = a->rc;
    pthread_mutex_unlock(&a->lock);
    return rc;
}

void raw_attach_free(raw_attach *a)
{
    atomic_store(&a->cancel, true);
    if (a->thread_started)
        pthread_join(a->thread, NULL);
    a->thread_started = false;
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
}

/* ---- events ---- */

static const char *const action_names[RAW_ACTIONS] = {"create", "attach", "start", "die", "destroy"};

static raw_timeline *timeline_of(raw_events *ev, const char *name, bool make)
{
    size_t have = ev->n < RAW_EVENTS_SEARCH ? ev->n : RAW_EVENTS_SEARCH;
    for (size_t k = 0; k < have; k++) {
        raw_timeline *t = &ev->ring[(ev->n - 1 - k) % RAW_EVENTS_MAX];
        if (strcmp(t->name, name) == 0)
            return t;
    }
    if (!make)
        return NULL;
    raw_timeline *t = &ev->ring[ev->n++ % RAW_EVENTS_MAX];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    return t;
}

static void events_record(raw_events *ev, json_t *e)
{
    const char *action = json_string_value(json_object_get(e, "Action"));
    const char *name = json_string_value(
        json_object_get(json_object_get(json_object_get(e, "Actor"), "Attributes"), "name"));
    if (!action || !name)
        return;
    int a = 0;
    while (a < RAW_ACTIONS && strcmp(action, action_names[a]) != 0)
        a++;
    if (a == RAW_ACTIONS)
        return;
    int64_t ts = (int64_t)json_integer_value(json_object_get(e, "timeNano"));
    pthread_mutex_lock(&ev->lock);
    raw_timeline *t = timeline_of(ev, name, true);
    if (!t->ts_ns[a])
        t->ts_ns[a] = ts;
    if (a == RAW_DESTROY) {
        ev->destroyed++;
        if (ts > ev->last_destroy_ns)
            ev->last_destroy_ns = ts;
    }
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
}

static void events_set_state(raw_events *ev, int st)
{
    pthread_mutex_lock(&ev->lock);
    ev->state = st;
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
}

static size_t events_header_cb(char *data, size_t size, size_t n, void *ud)
{
    raw_events *ev = ud;
    size_t len = size * n;
    if (len == 2 && data[0] == '\r' && data[1] == '\n') {
        long st = 0;
        curl_easy_getinfo(ev->h, CURLINFO_RESPONSE_CODE, &st);
        events_set_state(ev, st == 200 ? 1 : -1);
    }
    return len;
}

static size_t events_write_cb(char *data, size_t size, size_t n, void *ud)
{
    raw_events *ev = ud;
    size_t len = size * n, done = 0;
    while (done < len) {
        const char *nl = memchr(data + done, '\n', len - done);
        size_t take = nl ? (size_t)(nl - (data + done)) : len - done;
        dmsu_buf_append(&ev->line, data + done, take);
        done += take;
        if (!nl)
            break;
        done++; /* the newline */
        json_t *e = ev->line.overflow ? NULL : json_loadb(ev->line.data, ev->line.len, 0, NULL);
        if (e)
            events_record(ev, e);
        json_decref(e);
        dmsu_buf_reset(&ev->line);
    }
    return len;
}

typedef struct events_boot {
    raw_events *ev;
    pid_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool ready;
} events_boot;

static void *events_main(void *arg)
{
    events_boot *b = arg;
    raw_events *ev = b->ev;
    pthread_mutex_lock(&b->lock);
    b->tid = bench_gettid();
    b->ready = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    int running = 1;
    while (running && !atomic_load(&ev->stop)) {
        curl_multi_perform(ev->multi, &running);
        curl_multi_poll(ev->multi, NULL, 0, EVENTS_POLL_MS, NULL);
    }
    curl_multi_remove_handle(ev->multi, ev->h);
    events_set_state(ev, -1);
    return NULL;
}

int raw_events_start(raw_events *ev, pid_t *own_tid)
{
    memset(ev, 0, sizeof(*ev));
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->cond, NULL);
    atomic_init(&ev->stop, false);
    ev->line.max = EVENTS_LINE_MAX;
    ev->multi = curl_multi_init();
    ev->h = curl_easy_init();
    if (!ev->multi || !ev->h)
        return -1;
    const char *filters =
        "{\"type\":[\"container\"],\"event\":[\"create\",\"attach\",\"start\",\"die\",\"destroy\"],"
        "\"label\":[\"io.dms.executor=" LABEL_EXECUTOR_VALUE "\"]}";
    char *esc = curl_easy_escape(ev->h, filters, 0);
    char url[RAW_URL_MAX];
    snprintf(url, sizeof(url), "http://localhost" RAW_API "/events?filters=%s", esc ? esc : "");
    curl_free(esc);
    curl_easy_setopt(ev->h, CURLOPT_UNIX_SOCKET_PATH, RAW_SOCKET);
    curl_easy_setopt(ev->h, CURLOPT_URL, url);
    curl_easy_setopt(ev->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(ev->h, CURLOPT_CONNECTTIMEOUT_MS, (long)RAW_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(ev->h, CURLOPT_HEADERFUNCTION, events_header_cb);
    curl_easy_setopt(ev->h, CURLOPT_HEADERDATA, ev);
    curl_easy_setopt(ev->h, CURLOPT_WRITEFUNCTION, events_write_cb);
    curl_easy_setopt(ev->h, CURLOPT_WRITEDATA, ev);
    curl_multi_add_handle(ev->multi, ev->h);
    events_boot b = {.ev = ev};
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    if (pthread_create(&ev->thread, NULL, events_main, &b) != 0)
        return -1;
    pthread_mutex_lock(&b.lock);
    while (!b.ready)
        pthread_cond_wait(&b.cond, &b.lock);
    pthread_mutex_unlock(&b.lock);
    if (own_tid)
        *own_tid = b.tid;
    pthread_mutex_destroy(&b.lock);
    pthread_cond_destroy(&b.cond);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += EVENTS_CONNECT_WAIT_MS / 1000;
    pthread_mutex_lock(&ev->lock);
    int rc = 0;
    while (ev->state == 0 && rc == 0)
        rc = pthread_cond_timedwait(&ev->cond, &ev->lock, &deadline);
    int st = ev->state;
    pthread_mutex_unlock(&ev->lock);
    if (st != 1) {
        fprintf(stderr, "bench: the events subscription did not come up\n");
        return -1;
    }
    return 0;
}

void raw_events_stop(raw_events *ev)
{
    atomic_store(&ev->stop, true);
    if (ev->multi) {
        curl_multi_wakeup(ev->multi);
        pthread_join(ev->thread, NULL);
    }
    if (ev->h)
        curl_easy_cleanup(ev->h);
    if (ev->multi)
        curl_multi_cleanup(ev->multi);
    dmsu_buf_free(&ev->line);
    pthread_mutex_destroy(&ev->lock);
    pthread_cond_destroy(&ev->cond);
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    int64_t ns = ts->tv_nsec + (ms % 1000) * 1000000LL;
    ts->tv_sec += ms / 1000 + ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

int raw_events_wait(raw_events *ev, const char *name, raw_action action, int64_t timeout_ms,
                    raw_timeline *out)
{
    struct timespec deadline;
    deadline_in(&deadline, timeout_ms);
    pthread_mutex_lock(&ev->lock);
    int rc = 0;
    for (;;) {
        raw_timeline *t = timeline_of(ev, name, false);
        if (t && t->ts_ns[action]) {
            *out = *t;
            pthread_mutex_unlock(&ev->lock);
            return 0;
        }
        if (rc != 0 || ev->state != 1)
            break;
        rc = pthread_cond_timedwait(&ev->cond, &ev->lock, &deadline);
    }
    pthread_mutex_unlock(&ev->lock);
    return -1;
}

uint64_t raw_events_destroyed(raw_events *ev)
{
    pthread_mutex_lock(&ev->lock);
    uint64_t t = ev->destroyed;
    pthread_mutex_unlock(&ev->lock);
    return t;
}

int raw_events_wait_destroyed(raw_events *ev, uint64_t target, int64_t timeout_ms, int64_t *last_ts_ns)
{
    struct timespec deadline;
    deadline_in(&deadline, timeout_ms);
    pthread_mutex_lock(&ev->lock);
    int rc = 0;
    while (ev->destroyed < target && rc == 0 && ev->state == 1)
        rc = pthread_cond_timedwait(&ev->cond, &ev->lock, &deadline);
    bool ok = ev->destroyed >= target;
    *last_ts_ns = ev->last_destroy_ns;
    pthread_mutex_unlock(&ev->lock);
    return ok ? 0 : -1;
}
