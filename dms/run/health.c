/* health.c - the health gate of a zero-downtime replacement (see health.h). */
#include "health.h"

#include <stdio.h>
#include <unistd.h>

#include "../common.h"
#include "../router/probe.h"

gate_mode health_gate(const char *old_addr, const char *host)
{
    int old_status = 0;
    if (probe_http(old_addr, host, RUN_HEALTH_PROBE_MS, &old_status) == 0)
        return old_status < 500 ? GATE_HTTP_OK : GATE_HTTP;
    if (probe_tcp(old_addr, RUN_HEALTH_PROBE_MS) == 0)
        return GATE_TCP;
    return GATE_NONE;
}

int health_wait(const health_target *t, gate_mode mode, int64_t timeout_ms, char *why, size_t size)
{
    int64_t t0 = dms_mono_ms(), next_check = t0 + RUN_EXIT_CHECK_MS;
    for (;;) {
        int status = 0;
        int rc = mode == GATE_TCP ? probe_tcp(t->addr, RUN_HEALTH_PROBE_MS)
                                  : probe_http(t->addr, t->host, RUN_HEALTH_PROBE_MS, &status);
        if (rc == 0 && mode == GATE_HTTP_OK && status >= 500)
            rc = -1;
        int64_t now = dms_mono_ms();
        if (rc == 0) {
            log_info("exec=%s op=health addr=%s answered_ms=%lld", t->exec_id, t->addr,
                     (long long)(now - t0));
            return 0;
        }
        if (now - t0 >= timeout_ms) {
            if (status >= 500)
                snprintf(why, size, "it answered %d on %s for %llds", status, t->addr,
                         (long long)(timeout_ms / 1000));
            else
                snprintf(why, size, "it did not answer on %s within %llds", t->addr,
                         (long long)(timeout_ms / 1000));
            return -1;
        }
        if (t->stopping(t->ud)) {
            snprintf(why, size, "dmsd is stopping");
            return -2;
        }
        if (now >= next_check) {
            dms_exec_status st;
            if (dms_executor_status(t->ex, t->exec_id, &st, NULL) == 0 && st.state == DMS_STATE_FINISHED) {
                snprintf(why, size, "it exited before answering on %s", t->addr);
                return -1;
            }
            next_check = now + RUN_EXIT_CHECK_MS;
        }
        usleep(RUN_HEALTH_POLL_MS * 1000);
    }
}
