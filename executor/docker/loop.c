/* loop.c - the executor's event loop: a curl multi handle owned by one thread, fed through a command queue.
 *
 * Why one loop: waits and log follows are long-lived and mostly idle; a thread each would put hundreds of
 * threads in a host tracking hundreds of jobs. Cancelling is curl_multi_remove_handle() on this thread, which
 * is legal at any time outside a libcurl callback and stops only that transfer (docs/engine-notes.md §9). */
#include "loop.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LOOP_MAX_WAIT_MS 1000
#define URL_MAX          4096

typedef struct xfer {
    uint64_t id;
    CURL *h;
    const docker_xfer_cbs *cbs;
    void *ud;
    char *body;
    struct curl_slist *headers;
    long status;
    bool headers_done;
    int data_error;
    dmsu_buf collected;
    char errbuf[CURL_ERROR_SIZE];
    char what[96]; /* "POST /containers/x/attach" for messages */
    struct xfer *next;
} xfer;

typedef struct timer {
    uint64_t id;
    int64_t due_ms;
    docker_timer_fn fn;
    void *ud;
    struct timer *next;
} timer;

typedef enum cmd_kind { CMD_ADD, CMD_ABORT, CMD_TIMER, CMD_TIMER_CANCEL } cmd_kind;

typedef struct cmd {
    cmd_kind kind;
    xfer *x;
    timer *t;
    uint64_t id;
    struct cmd *next;
} cmd;

struct docker_loop {
    docker_client *client;
    const dms_host_services *host;
    CURLM *multi;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t qlock;
    cmd *qhead, *qtail;
    atomic_bool stop;
    atomic_uint_fast64_t next_id;
    xfer *active;
    timer *timers; /* sorted by due_ms */
};

/* ---- queue ---- */

static void push(docker_loop *l, cmd *c)
{
    pthread_mutex_lock(&l->qlock);
    if (l->qtail)
        l->qtail->next = c;
    else
        l->qhead = c;
    l->qtail = c;
    pthread_mutex_unlock(&l->qlock);
    curl_multi_wakeup(l->multi);
}

static cmd *take_all(docker_loop *l)
{
    pthread_mutex_lock(&l->qlock);
    cmd *c = l->qhead;
    l->qhead = l->qtail = NULL;
    pthread_mutex_unlock(&l->qlock);
    return c;
}

/* ---- transfers ---- */

static void xfer_free(xfer *x)
{
    if (!x)
        return;
    if (x->h)
        curl_easy_cleanup(x->h);
    curl_slist_free_all(x->headers);
    free(x->body);
    dmsu_buf_free(&x->collected);
    free(x);
}

static size_t xfer_header_cb(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len == 2 && data[0] == '\r' && data[1] == '\n') {
        long status = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && !x->headers_done) {
            x->status = status;
            x->headers_done = true;
            if (x->cbs->on_headers)
                x->cbs->on_headers(x->ud, status);
        }
    }
    return len;
}

static size_t xfer_write_cb(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->status >= 200 && x->status < 300 && x->cbs->on_data) {
        int r = x->cbs->on_data(x->ud, data, len);
        if (r < 0) {
            x->data_error = r;
            return CURL_WRITEFUNC_ERROR;
        }
        return len;
    }
    if (dmsu_buf_append(&x->collected, data, len) < 0)
        return CURL_WRITEFUNC_ERROR;
    return len;
}

static void finish(docker_loop *l, xfer *x, CURLcode rc)
{
    dms_error err = {0};
    int r = 0;
    long status = x->status;
    if (!status)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->data_error)
        r = dms_error_set(&err, -x->data_error, NULL, "%s: stopped by its consumer", x->what);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        r = dms_error_set(&err, DMS_E_TIMEOUT, NULL, "%s: no answer in time", x->what);
    else if (rc == CURLE_COULDNT_CONNECT) {
        char why[300];
        int e;
        docker_diagnose_socket(l->client, why, sizeof(why), &e);
        r = dms_error_set(&err, DMS_E_UNAVAILABLE, NULL, "cannot reach the Docker engine: %s", why);
    } else if (rc != CURLE_OK)
        r = dms_error_set(&err, DMS_E_ENGINE, NULL, "%s: %s", x->what,
                          x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    x->cbs->on_done(x->ud, r, status, x->collected.data ? x->collected.data : "", x->collected.len,
                    r ? &err : NULL);
}

static void start_xfer(docker_loop *l, xfer *x)
{
    CURLMcode mc = curl_multi_add_handle(l->multi, x->h);
    if (mc != CURLM_OK) {
        dms_error err;
        dms_error_set(&err, DMS_E_INTERNAL, NULL, "%s: curl_multi_add_handle: %s", x->what,
                      curl_multi_strerror(mc));
        x->cbs->on_done(x->ud, -DMS_E_INTERNAL, 0, "", 0, &err);
        xfer_free(x);
        return;
    }
    x->next = l->active;
    l->active = x;
}

static xfer *unlink_xfer(docker_loop *l, uint64_t id, CURL *h)
{
    for (xfer **pp = &l->active; *pp; pp = &(*pp)->next) {
        xfer *x = *pp;
        if ((id && x->id == id) || (h && x->h == h)) {
            *pp = x->next;
            return x;
        }
    }
    return NULL;
}

static void abort_xfer(docker_loop *l, xfer *x)
{
    curl_multi_remove_handle(l->multi, x->h);
    dms_error err;
    dms_error_set(&err, DMS_E_CANCELLED, NULL, "%s: cancelled", x->what);
    x->cbs->on_done(x->ud, -DMS_E_CANCELLED, x->status, "", 0, &err);
    xfer_free(x);
}

uint64_t docker_loop_add(docker_loop *l, const char *method, const char *path, const char *body,
                         const docker_xfer_cbs *cbs, void *ud, long timeout_ms)
{
    char url[URL_MAX];
    char v[16];
    pthread_mutex_lock(&l->client->lock);
    snprintf(v, sizeof(v), "%s", l->client->api_version[0] ? l->client->api_version : DOCKER_API_VERSION_MAX);
    pthread_mutex_unlock(&l->client->lock);
    if (dmsu_snprintf_ok(url, sizeof(url), "http://localhost/v%s%s", v, path) < 0)
        return 0;
    xfer *x = calloc(1, sizeof(*x));
    cmd *c = calloc(1, sizeof(*c));
    if (!x || !c || !(x->h = curl_easy_init())) {
        free(x);
        free(c);
        return 0;
    }
    x->id = atomic_fetch_add(&l->next_id, 1);
    x->cbs = cbs;
    x->ud = ud;
    x->collected.max = DOCKER_ERROR_BODY_MAX_BYTES;
    snprintf(x->what, sizeof(x->what), "%s %s", method, path);
    char *q = strchr(x->what, '?');
    if (q)
        *q = '\0';
    docker_easy_setup(x->h, l->client, x->errbuf);
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, xfer_header_cb);
    curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xfer_write_cb);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    if (timeout_ms > 0)
        curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (strcmp(method, "POST") == 0) {
        x->body = strdup(body ? body : "");
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body)
        x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    if (x->headers)
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
    c->kind = CMD_ADD;
    c->x = x;
    uint64_t id = x->id;
    push(l, c);
    return id;
}

void docker_loop_abort(docker_loop *l, uint64_t xfer_id)
{
    if (!xfer_id)
        return;
    cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->kind = CMD_ABORT;
    c->id = xfer_id;
    push(l, c);
}

/* ---- timers ---- */

static void insert_timer(docker_loop *l, timer *t)
{
    timer **pp = &l->timers;
    while (*pp && (*pp)->due_ms <= t->due_ms)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
}

uint64_t docker_loop_timer(docker_loop *l, int64_t delay_ms, docker_timer_fn fn, void *ud)
{
    timer *t = calloc(1, sizeof(*t));
    cmd *c = calloc(1, sizeof(*c));
    if (!t || !c) {
        free(t);
        free(c);
        fn(ud, true);
        return 0;
    }
    t->id = atomic_fetch_add(&l->next_id, 1);
    t->due_ms = dms_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    t->fn = fn;
    t->ud = ud;
    c->kind = CMD_TIMER;
    c->t = t;
    uint64_t id = t->id;
    push(l, c);
    return id;
}

void docker_loop_timer_cancel(docker_loop *l, uint64_t timer_id)
{
    if (!timer_id)
        return;
    cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->kind = CMD_TIMER_CANCEL;
    c->id = timer_id;
    push(l, c);
}

void docker_loop_post(docker_loop *l, docker_timer_fn fn, void *ud)
{
    docker_loop_timer(l, 0, fn, ud);
}

bool docker_loop_on_thread(const docker_loop *l)
{
    return l->thread_started && pthread_equal(pthread_self(), l->thread);
}

/* ---- the loop ---- */

static void run_commands(docker_loop *l, bool shutting_down)
{
    cmd *c = take_all(l);
    while (c) {
        cmd *next = c->next;
        switch (c->kind) {
        case CMD_ADD:
            if (shutting_down) {
                dms_error err;
                dms_error_set(&err, DMS_E_CANCELLED, NULL, "%s: executor shutting down", c->x->what);
                c->x->cbs->on_done(c->x->ud, -DMS_E_CANCELLED, 0, "", 0, &err);
                xfer_free(c->x);
            } else {
                start_xfer(l, c->x);
            }
            break;
        case CMD_ABORT: {
            xfer *x = unlink_xfer(l, c->id, NULL);
            if (x)
                abort_xfer(l, x);
            break;
        }
        case CMD_TIMER:
            if (shutting_down) {
                c->t->fn(c->t->ud, true);
                free(c->t);
            } else {
                insert_timer(l, c->t);
            }
            break;
        case CMD_TIMER_CANCEL:
            for (timer **pp = &l->timers; *pp; pp = &(*pp)->next)
                if ((*pp)->id == c->id) {
                    timer *t = *pp;
                    *pp = t->next;
                    t->fn(t->ud, true);
                    free(t);
                    break;
                }
            break;
        }
        free(c);
        c = next;
    }
}

static void run_done(docker_loop *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *h = m->easy_handle;
        CURLcode rc = m->data.result;
        xfer *x = unlink_xfer(l, 0, h);
        curl_multi_remove_handle(l->multi, h);
        if (!x)
            continue;
        finish(l, x, rc);
        xfer_free(x);
    }
}

static void run_timers(docker_loop *l)
{
    int64_t now = dms_mono_ms();
    while (l->timers && l->timers->due_ms <= now) {
        timer *t = l->timers;
        l->timers = t->next;
        t->fn(t->ud, false);
        free(t);
    }
}

static void *loop_main(void *arg)
{
    docker_loop *l = arg;
    while (!atomic_load(&l->stop)) {
        run_commands(l, false);
        int running = 0;
        curl_multi_perform(l->multi, &running);
        run_done(l);
        run_timers(l);
        int wait_ms = LOOP_MAX_WAIT_MS;
        if (l->timers) {
            int64_t d = l->timers->due_ms - dms_mono_ms();
            wait_ms = d < 0 ? 0 : d < wait_ms ? (int)d : wait_ms;
        }
        curl_multi_poll(l->multi, NULL, 0, wait_ms, NULL);
    }
    /* Shutdown: every transfer and timer gets its one final call. */
    while (l->active) {
        xfer *x = l->active;
        l->active = x->next;
        abort_xfer(l, x);
    }
    while (l->timers) {
        timer *t = l->timers;
        l->timers = t->next;
        t->fn(t->ud, true);
        free(t);
    }
    run_commands(l, true);
    return NULL;
}

int docker_loop_new(docker_loop **out, docker_client *client, const dms_host_services *host, dms_error *err)
{
    docker_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    l->client = client;
    l->host = host;
    atomic_init(&l->stop, false);
    atomic_init(&l->next_id, 1);
    pthread_mutex_init(&l->qlock, NULL);
    l->multi = curl_multi_init();
    if (!l->multi) {
        free(l);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "curl_multi_init failed");
    }
    int r = pthread_create(&l->thread, NULL, loop_main, l);
    if (r != 0) {
        curl_multi_cleanup(l->multi);
        free(l);
        return dms_error_set_errno(err, DMS_E_INTERNAL, r, "start the executor's event loop");
    }
    l->thread_started = true;
    *out = l;
    return 0;
}

void docker_loop_free(docker_loop *l)
{
    if (!l)
        return;
    atomic_store(&l->stop, true);
    curl_multi_wakeup(l->multi);
    pthread_join(l->thread, NULL);
    /* Commands queued by the final callbacks themselves. */
    l->thread_started = false;
    run_commands(l, true);
    curl_multi_cleanup(l->multi);
    pthread_mutex_destroy(&l->qlock);
    free(l);
}
