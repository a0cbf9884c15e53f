/* joblog.c - a running job's log (see joblog.h). */
#include "joblog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../common.h"
#include "jobs.h"
#include "jobstore.h"

#define LOG_FLUSH_MS    250 /* output is written to the store at least this often */
#define LOG_CHUNK_BYTES (16 * 1024)

void joblog_flush(joblog *w)
{
    if (!w->buf.len)
        return;
    dms_error err = {0};
    if (jobstore_log_append(w->st, w->id, w->seq + 1, dms_now_ns(), w->buf.data, w->buf.len, &err) < 0)
        log_warn("job=%s op=log error=\"%s\"", w->id, err.message);
    else
        w->seq++;
    dmsu_buf_reset(&w->buf);
    w->last_flush_ms = dms_mono_ms();
}

void joblog_write(joblog *w, const char *data, size_t len)
{
    if (w->truncated)
        return;
    if (w->total + len > JOB_LOG_MAX_BYTES) {
        static const char note[] = "\n[dms] the log reached its size limit; further output is not kept\n";
        w->truncated = true;
        dmsu_buf_append(&w->buf, note, sizeof(note) - 1);
        joblog_flush(w);
        return;
    }
    if (w->watch_cache && len >= strlen(JOBLOG_CACHE_WARM_MARK) &&
        memcmp(data, JOBLOG_CACHE_WARM_MARK, strlen(JOBLOG_CACHE_WARM_MARK)) == 0)
        w->cache_warm = true;
    w->total += len;
    dmsu_buf_append(&w->buf, data, len);
    if (w->buf.len >= LOG_CHUNK_BYTES)
        joblog_flush(w);
}

void joblog_tick(joblog *w)
{
    if (w->buf.len && dms_mono_ms() - w->last_flush_ms >= LOG_FLUSH_MS)
        joblog_flush(w);
}

void joblog_say(joblog *w, const char *fmt, ...)
{
    char line[1024] = "[dms] ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 6, sizeof(line) - 7, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    line[n++] = '\n';
    joblog_write(w, line, n);
}
