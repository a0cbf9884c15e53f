/* error.c - the dms_error value: setters that return -code, so a failure is one line. */
#include <dms/error.h>

#include <stdio.h>
#include <string.h>

static const char *const code_names[DMS_E__COUNT] = {
    [DMS_OK] = "OK",
    [DMS_E_INVALID] = "INVALID",
    [DMS_E_NOT_FOUND] = "NOT_FOUND",
    [DMS_E_ALREADY_STARTED] = "ALREADY_STARTED",
    [DMS_E_ALREADY_COMPLETE] = "ALREADY_COMPLETE",
    [DMS_E_IMAGE] = "IMAGE",
    [DMS_E_ENGINE] = "ENGINE",
    [DMS_E_UNAVAILABLE] = "UNAVAILABLE",
    [DMS_E_TIMEOUT] = "TIMEOUT",
    [DMS_E_CANCELLED] = "CANCELLED",
    [DMS_E_BUILD_FAILED] = "BUILD_FAILED",
    [DMS_E_NOT_SUPPORTED] = "NOT_SUPPORTED",
    [DMS_E_PLUGIN] = "PLUGIN",
    [DMS_E_NOMEM] = "NOMEM",
    [DMS_E_IO] = "IO",
    [DMS_E_START_FAILED] = "START_FAILED",
    [DMS_E_CONFLICT] = "CONFLICT",
    [DMS_E_PROTOCOL] = "PROTOCOL",
    [DMS_E_INTERNAL] = "INTERNAL",
    [DMS_E_NOT_OURS] = "NOT_OURS",
    [DMS_E_FORBIDDEN] = "FORBIDDEN",
};

const char *dms_error_code_name(int code)
{
    if (code < 0)
        code = -code;
    if (code >= DMS_E__COUNT || !code_names[code])
        return "UNKNOWN";
    return code_names[code];
}

bool dms_error_code_retryable(int code)
{
    if (code < 0)
        code = -code;
    switch (code) {
    case DMS_E_ENGINE:
    case DMS_E_UNAVAILABLE:
    case DMS_E_TIMEOUT:
    case DMS_E_NOMEM:
    case DMS_E_IO:
    case DMS_E_PROTOCOL:
        return true;
    default:
        return false;
    }
}

int dms_error_setv(dms_error *err, int code, const char *field, const char *fmt, va_list ap)
{
    if (code < 0)
        code = -code;
    if (err) {
        err->code = code;
        err->retryable = dms_error_code_retryable(code);
        err->sys_errno = 0;
        snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
    }
    return -code;
}

int dms_error_set(dms_error *err, int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = dms_error_setv(err, code, field, fmt, ap);
    va_end(ap);
    return r;
}

int dms_error_set_errno(dms_error *err, int code, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = dms_error_setv(err, code, NULL, fmt, ap);
    va_end(ap);
    if (err) {
        size_t n = strlen(err->message);
        if (n < sizeof(err->message))
            snprintf(err->message + n, sizeof(err->message) - n, ": %s", strerror(errnum));
        err->sys_errno = errnum;
    }
    return r;
}

int dms_error_prefix(dms_error *err, const char *fmt, ...)
{
    if (!err)
        return -DMS_E_INTERNAL;
    char prefix[DMS_ERROR_MSG_MAX];
    char old[DMS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof(old));
    snprintf(err->message, sizeof(err->message), "%s%s", prefix, old);
    return -err->code;
}

void dms_error_clear(dms_error *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
}
