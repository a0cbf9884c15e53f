/* dms/result.h - the result of an execution, its status, and log frames. */
#ifndef DMS_RESULT_H
#define DMS_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* How an execution ended. Exactly one applies. */
typedef enum dms_exec_outcome {
    DMS_OUTCOME_NONE = 0,       /* not finished */
    DMS_OUTCOME_EXITED = 1,     /* exited by itself; exit_code says how (0 = success) */
    DMS_OUTCOME_SIGNALED = 2,   /* killed by a signal it did not get from us; signal says which */
    DMS_OUTCOME_OOM_KILLED = 3, /* killed for exceeding its memory limit (engine state or oom event) */
    DMS_OUTCOME_CANCELLED = 4,  /* stopped by cancel */
    DMS_OUTCOME_TIMED_OUT = 5,  /* stopped because its run timeout passed */
    DMS_OUTCOME_LOST = 6,       /* its container/process vanished behind our back */
    DMS_OUTCOME_FAILED = 7, /* could not be run at all (bad entrypoint, image missing...); error says why */
    DMS_OUTCOME_ENGINE_ERROR =
        8, /* the engine failed to start it or while it ran (ours, not the workload's); error says how */
} dms_exec_outcome;

/* Stable lower-case name ("exited", "oom_killed", ...); never NULL. */
const char *dms_outcome_name(dms_exec_outcome o);

/* The result of a finished execution. Caller-owned value; its buffers are released by
 * dms_exec_result_clear(). */
typedef struct dms_exec_result {
    dms_exec_outcome outcome;
    int exit_code;         /* -1 when there is none (never ran, lost) */
    int signal;            /* the signal that ended it, 0 if none */
    bool oom_killed;       /* the memory limit was hit (also set when outcome is CANCELLED by coincidence) */
    int64_t started_at_ns; /* wall clock, 0 if it never ran */
    int64_t finished_at_ns;
    char *stdout_data; /* the last bytes of stdout, at most limits.result_output_bytes; NUL-terminated */
    size_t stdout_len;
    bool stdout_truncated; /* more was written than the excerpt holds (the capture file has the rest) */
    char *stderr_data;
    size_t stderr_len;
    bool stderr_truncated;
    char error[DMS_ERROR_MSG_MAX]; /* for FAILED / ENGINE_ERROR / LOST: why; else "" */
} dms_exec_result;

/* Frees the buffers of a result and zeroes it. Accepts NULL. */
void dms_exec_result_clear(dms_exec_result *r);
/* Deep copy into *dst (which must be cleared or zeroed). */
int dms_exec_result_copy(dms_exec_result *dst, const dms_exec_result *src, dms_error *err);
/* JSON form: {"outcome","exit_code","signal","oom_killed","started_at_ns","finished_at_ns",
 * "stdout","stdout_truncated","stderr","stderr_truncated","error"}. Caller frees. NULL on OOM. */
char *dms_exec_result_to_json(const dms_exec_result *r);
int dms_exec_result_from_json(const char *json, size_t len, dms_exec_result *out, dms_error *err);
/* Replaces one excerpt with a copy of data (len bytes, any content). stream: 1 stdout, 2 stderr. */
int dms_exec_result_set_output(dms_exec_result *r, int stream, const char *data, size_t len, bool truncated);

/* Where an execution stands (status op and list). */
typedef enum dms_exec_state {
    DMS_STATE_UNKNOWN = 0,
    DMS_STATE_PREPARING = 1, /* registered; pulling/creating */
    DMS_STATE_RUNNING = 2,
    DMS_STATE_STOPPING = 3, /* cancel in progress */
    DMS_STATE_FINISHED = 4, /* a result is available */
} dms_exec_state;

const char *dms_state_name(dms_exec_state s);

#define DMS_STATUS_MAX_PORTS 16

/* What the workload's health check says (ABI 7). */
typedef enum dms_health {
    DMS_HEALTH_NONE = 0, /* no check (none asked for, none in the image, or the backend has none) */
    DMS_HEALTH_STARTING, /* checked, no verdict yet */
    DMS_HEALTH_HEALTHY,
    DMS_HEALTH_UNHEALTHY,
} dms_health;

/* "none", "starting", "healthy", "unhealthy" ("unknown" out of range). Static string. */
const char *dms_health_name(dms_health h);

typedef struct dms_exec_status {
    char execution_id[DMS_ERROR_FIELD_MAX];
    char job_id[DMS_ERROR_FIELD_MAX];
    dms_exec_state state;
    dms_exec_outcome outcome; /* when FINISHED */
    int exit_code;            /* when FINISHED, else -1 */
    int64_t started_at_ns;
    int64_t finished_at_ns;
    char handle[80]; /* backend's own handle: Docker container id, process pid, ... */
    size_t n_ports;  /* published ports as bound (Docker) */
    struct {
        uint16_t container_port;
        uint16_t host_port;
        char protocol[4];
    } ports[DMS_STATUS_MAX_PORTS];
    char ip_address[48]; /* address on its network, "" if none */
    dms_health health;   /* ABI 7: the health check's verdict while it runs */
} dms_exec_status;

/* One chunk of a workload's output: normally one line (with its '\n'); a line longer than the frame limit
 * comes as several frames, all but the last flagged partial. */
typedef enum dms_stream_type {
    DMS_STREAM_STDOUT = 1,
    DMS_STREAM_STDERR = 2,
} dms_stream_type;

typedef struct dms_log_frame {
    dms_stream_type stream;
    bool partial;     /* the line continues in the next frame of this stream */
    int64_t ts_ns;    /* wall clock when captured; strictly increasing within one execution */
    const char *data; /* borrowed: valid until the next call on the stream */
    size_t len;
} dms_log_frame;

typedef struct dms_log_options {
    int64_t tail_lines; /* < 0: all history; N >= 0: only the last N lines of history (0: none) */
    int64_t since_ns;   /* only frames with ts_ns >= since_ns (0: no bound) */
    bool follow;        /* after history, wait for new frames until the execution ends */
    bool no_stdout;     /* leave stdout out */
    bool no_stderr;     /* leave stderr out */
} dms_log_options;

#define DMS_LOG_OPTIONS_INIT                                                                                 \
    {                                                                                                        \
        .tail_lines = -1, .since_ns = 0, .follow = false, .no_stdout = false, .no_stderr = false             \
    }

/* What cleanup removed; counts of resources carrying this executor's labels. */
typedef struct dms_cleanup_report {
    int containers; /* or processes */
    int networks;
    int volumes;
    int images;
    int state_dirs; /* execution state directories removed */
    int errors;     /* removals that failed (see err of the call for the first) */
} dms_cleanup_report;

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
