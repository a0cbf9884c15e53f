/* reply.c - a handler's replies: a JSON body, a buffer, or an error as {"error", "field"} with the HTTP
 * status of its code (see http.h). A reply is queued on the request's connection, on its MHD thread. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_priv.h"

/* ---- replies ---- */

unsigned api_status_for(int code)
{
    switch (code) {
    case DMS_E_INVALID:
        return MHD_HTTP_BAD_REQUEST;
    case DMS_E_NOT_FOUND:
        return MHD_HTTP_NOT_FOUND;
    case DMS_E_FORBIDDEN:
        return MHD_HTTP_FORBIDDEN;
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
    case DMS_E_QUOTA: /* it clears by itself once the user's work ends: retry later, not "forbidden" */
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case DMS_E_ENGINE:
    case DMS_E_IMAGE:
    case DMS_E_START_FAILED:
    case DMS_E_PROTOCOL:
        return MHD_HTTP_BAD_GATEWAY;
    case DMS_E_TIMEOUT:
        return MHD_HTTP_GATEWAY_TIMEOUT;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

char *http_error_body(const char *message, const char *field, size_t *len)
{
    json_t *j = json_pack("{s:s, s:o}", "error", message, "field",
                          field && *field ? json_string(field) : json_null());
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    *len = s ? strlen(s) : 0;
    return s;
}

void http_queue(api_req *r, unsigned status, const char *ctype, char *buf, size_t len, const char *header,
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
    http_queue(r, status, content_type, buf, len, header, value);
}

void api_reply_json(api_req *r, unsigned status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    http_queue(r, status, "application/json", s, strlen(s), NULL, NULL);
}

/* src for a log line: the URL is the client's (MHD has percent-decoded it), so no control character or quote
 * may reach the log, where it could forge a line or a field. */
static void log_safe(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src && *src && i + 1 < size; src++) {
        char c = *src;
        if ((unsigned char)c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            c = '?';
        dst[i++] = c;
    }
    dst[i] = '\0';
}

void api_reply_errorf(api_req *r, unsigned status, const char *field, const char *fmt, ...)
{
    char msg[DMS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len;
    char *s = http_error_body(msg, field, &len);
    if (status >= 500) {
        char url[256], safe[DMS_ERROR_MSG_MAX];
        log_safe(url, sizeof(url), r->url);
        log_safe(safe, sizeof(safe), msg);
        log_warn("component=http method=%s url=\"%s\" status=%u error=\"%s\"", r->method, url, status, safe);
    }
    http_queue(r, status, "application/json", s, len, NULL, NULL);
}

void api_reply_error(api_req *r, const dms_error *err)
{
    api_reply_errorf(r, api_status_for(err->code), err->field, "%s",
                     err->message[0] ? err->message : "error");
}
