/* cli/dmsctl_http.h - dmsctl's HTTP client: one request to dmsd, JSON in and out, or a streamed body. */
#ifndef DMSCTL_HTTP_H
#define DMSCTL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct ctl_conn {
    char *url;   /* DMS_URL, no trailing slash */
    char *token; /* bearer token */
} ctl_conn;

typedef struct ctl_resp {
    long status;
    char *body; /* NUL-terminated; may be empty */
    size_t len;
    char last_log_nano[32]; /* X-Last-Log-Nano, if sent */
    char next_cursor[128];  /* X-Next-Cursor, if sent: where the next page of a list starts */
    char error[256];        /* transport error (no status), else "" */
} ctl_resp;

/* path includes the query. body may be NULL. stream: write the body to stdout as it arrives (not kept). */
int ctl_request(const ctl_conn *c, const char *method, const char *path, const char *body, bool stream,
                ctl_resp *out);
void ctl_resp_clear(ctl_resp *r);
/* URL-encodes s for a query value. Caller frees. */
char *ctl_escape(const char *s);

#endif
