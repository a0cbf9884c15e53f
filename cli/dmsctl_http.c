/* cli/dmsctl_http.c - libcurl requests for dmsctl (see dmsctl_http.h). */
#include "dmsctl_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define CTL_CONNECT_TIMEOUT_MS 5000
#define CTL_BODY_MAX           (64 * 1024 * 1024)

typedef struct sink {
    dmsu_buf buf; /* capped: the answer is kept whole, NUL-terminated */
    bool stream;
} sink;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    sink *s = ud;
    size_t len = sz * n;
    if (s->stream) {
        (void)fwrite(p, 1, len, stdout);
        fflush(stdout);
        return len;
    }
    /* A short count makes libcurl stop with CURLE_WRITE_ERROR; buf.overflow says why. */
    if (dmsu_buf_append(&s->buf, p, len) < 0 || s->buf.overflow)
        return 0;
    return len;
}

/* The value of header line p (len bytes) into out when it is the header name ("Name:"), trimmed; else
 * nothing. */
static void header_value(const char *p, size_t len, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(p, name, n) != 0)
        return;
    const char *v = p + n, *end = p + len;
    while (v < end && *v == ' ')
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, size, "%.*s", (int)(end - v), v);
}

#define STATUS_LINE_SHOWN 64 /* enough of "HTTP/<version> <status> ..." to read the status */

typedef struct hdr_ctx {
    ctl_resp *r;
    sink *s;
} hdr_ctx;

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    hdr_ctx *hc = ud;
    ctl_resp *r = hc->r;
    size_t len = sz * n;
    /* The status line comes first: an error body is collected, not streamed. */
    if (len > 12 && strncmp(p, "HTTP/", 5) == 0) {
        char line[STATUS_LINE_SHOWN]; /* p is not NUL-terminated */
        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
        const char *sp = strchr(line, ' ');
        if (sp && dmsu_parse_i64_prefix(sp, NULL) >= 400)
            hc->s->stream = false;
    }
    header_value(p, len, "X-Next-Cursor:", r->next_cursor, sizeof(r->next_cursor));
    static const char name[] = "X-Last-Log-Nano:";
    if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        const char *v = p + sizeof(name) - 1;
        while (*v == ' ')
            v++;
        size_t vl = 0;
        while (v + vl < p + len && v[vl] >= '0' && v[vl] <= '9' && vl + 1 < sizeof(r->last_log_nano))
            vl++;
        memcpy(r->last_log_nano, v, vl);
        r->last_log_nano[vl] = '\0';
    }
    return len;
}

int ctl_request(const ctl_conn *c, const char *method, const char *path, const char *body, bool stream,
                ctl_resp *out)
{
    memset(out, 0, sizeof(*out));
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(out->error, sizeof(out->error), "curl_easy_init failed");
        return -1;
    }
    size_t ulen = strlen(c->url) + strlen(path) + 1;
    char *url = malloc(ulen);
    snprintf(url, ulen, "%s%s", c->url, path);
    char *auth = malloc(strlen(c->token) + 32);
    sprintf(auth, "Authorization: Bearer %s", c->token);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    /* The body and its NUL stay under CTL_BODY_MAX. */
    sink s = {.buf = {.max = CTL_BODY_MAX - 1}, .stream = stream};
    hdr_ctx hc = {.r = out, .s = &s};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hc);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CTL_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    if (rc != CURLE_OK)
        snprintf(out->error, sizeof(out->error), "%s %s: %s", method, url,
                 s.buf.overflow ? "response too large"
                 : errbuf[0]    ? errbuf
                                : curl_easy_strerror(rc));
    out->body = s.buf.data ? s.buf.data : strdup("");
    out->len = s.buf.len;
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(auth);
    free(url);
    return rc == CURLE_OK ? 0 : -1;
}

void ctl_resp_clear(ctl_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

char *ctl_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? strdup(e) : NULL;
    curl_free(e);
    return copy;
}
