/* logpage.c - a page of runtime logs and its cursor (see logpage.h). */
#include "logpage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define NS_PER_SECOND 1000000000LL

int64_t logpage_since(int64_t from)
{
    return from > 0 ? from + 1 : 0;
}

void logpage_format(dmsu_buf *b, const dms_log_frame *f, const log_fmt *fmt, bool *at_line_start)
{
    if (fmt->json) {
        size_t len = f->len;
        if (len && f->data[len - 1] == '\n')
            len--;
        char *clean = dmsu_utf8_sanitize(f->data, len, &len);
        json_t *o = json_pack("{s:I, s:s, s:s%, s:b}", "ts", (json_int_t)f->ts_ns, "stream",
                              f->stream == DMS_STREAM_STDERR ? "stderr" : "stdout", "line",
                              clean ? clean : "", len, "partial", f->partial);
        free(clean);
        if (o && fmt->service)
            json_object_set_new(o, "service", json_string(fmt->service));
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (s) {
            dmsu_buf_append(b, s, strlen(s));
            dmsu_buf_append(b, "\n", 1);
            free(s);
        }
        return;
    }
    if (fmt->timestamps && *at_line_start) {
        char when[40];
        time_t sec = (time_t)(f->ts_ns / NS_PER_SECOND);
        struct tm tm;
        gmtime_r(&sec, &tm);
        (void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        dmsu_buf_printf(b, "%s.%09lldZ ", when, (long long)(f->ts_ns % NS_PER_SECOND));
    }
    if (fmt->service && *at_line_start)
        dmsu_buf_printf(b, "[%s] ", fmt->service);
    dmsu_buf_append(b, f->data, f->len);
    *at_line_start = !f->partial;
}

int logpage_read(dms_log_stream *s, long long limit, size_t max_bytes, const log_fmt *fmt, dmsu_buf *b,
                 logpage *pg, dms_error *err)
{
    for (;;) {
        /* Stop only between whole lines. */
        if (pg->at_line_start && ((limit >= 0 && pg->lines >= limit) || b->len >= max_bytes))
            return 0;
        dms_log_frame f;
        int rc = dms_log_stream_next(s, 0, &f, err);
        if (rc == -DMS_E_TIMEOUT)
            return 0; /* nothing more now (a live run) */
        if (rc == 0) {
            pg->ended = true;
            return 0;
        }
        if (rc < 0)
            return rc;
        logpage_format(b, &f, fmt, &pg->at_line_start);
        pg->last_ts = f.ts_ns;
        if (!f.partial)
            pg->lines++;
    }
}
