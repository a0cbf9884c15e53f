/* executor/request_limits.h - private: the bounds of a request that both its validation (request.c) and its
 * JSON form (request_json.c) enforce, so that the two cannot drift apart. */
#ifndef DMS_REQUEST_LIMITS_H
#define DMS_REQUEST_LIMITS_H

#define ARGV_MAX_ITEMS          4096
#define ENV_MAX_ITEMS           4096
#define MOUNTS_MAX              64
#define PORTS_MAX               64
#define LABELS_MAX              64
#define RESULT_OUTPUT_MAX_BYTES (16LL * 1024 * 1024)
#define LOG_FILE_MIN_BYTES      (64LL * 1024)
#define STOP_GRACE_MAX_MS       (3600LL * 1000)
#define CPU_MILLIS_MAX          (1024LL * 1000)

#endif
