/* lograte.c - one log line per format string per interval (see lograte.h). */
#include "lograte.h"

#include <string.h>

/* The slot of fmt, or the one to reuse for it (empty, else the one used longest ago). */
static lograte_slot *slot_of(lograte *lr, const char *fmt)
{
    lograte_slot *oldest = &lr->slot[0];
    for (size_t i = 0; i < LOGRATE_SLOTS; i++) {
        lograte_slot *s = &lr->slot[i];
        if (s->fmt && (s->fmt == fmt || strcmp(s->fmt, fmt) == 0))
            return s;
        if (!s->fmt) {
            if (oldest->fmt)
                oldest = s;
        } else if (oldest->fmt && s->last_ms < oldest->last_ms) {
            oldest = s;
        }
    }
    return oldest;
}

bool lograte_allow(lograte *lr, const char *fmt, int64_t now_ms, uint64_t *held)
{
    *held = 0;
    if (!fmt)
        return true;
    pthread_mutex_lock(&lr->lock);
    lograte_slot *s = slot_of(lr, fmt);
    bool mine = s->fmt && (s->fmt == fmt || strcmp(s->fmt, fmt) == 0);
    bool allow = !mine || now_ms - s->last_ms >= lr->interval_ms;
    if (!mine) {
        s->fmt = fmt;
        s->held = 0;
    }
    if (allow) {
        *held = s->held;
        s->held = 0;
        s->last_ms = now_ms;
    } else {
        s->held++;
    }
    pthread_mutex_unlock(&lr->lock);
    return allow;
}
