/* logstream.c - the public log stream object: a small vtable so that backends may serve logs their own way;
 * the log store (logstore*.c) is the implementation both bundled backends use. */
#include <dms/backend.h>

#include <stdlib.h>

struct dms_log_stream {
    const dms_log_stream_ops *ops;
    void *ctx;
};

int dms_log_stream_new(const dms_log_stream_ops *ops, void *ctx, dms_log_stream **out, dms_error *err)
{
    dms_log_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        if (ops->free)
            ops->free(ctx);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    s->ops = ops;
    s->ctx = ctx;
    *out = s;
    return 0;
}

int dms_log_stream_next(dms_log_stream *s, int64_t timeout_ms, dms_log_frame *frame, dms_error *err)
{
    return s->ops->next(s->ctx, timeout_ms, frame, err);
}

int dms_log_stream_fd(const dms_log_stream *s)
{
    return s->ops->fd ? s->ops->fd(s->ctx) : -1;
}

void dms_log_stream_free(dms_log_stream *s)
{
    if (!s)
        return;
    if (s->ops->free)
        s->ops->free(s->ctx);
    free(s);
}
