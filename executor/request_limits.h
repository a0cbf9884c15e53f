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
/* A health check: a few words or one shell line; each period at most a day (a longer one is a mistake, not a
 * check); more retries than compose would ever need. */
#define HEALTH_TEST_ITEMS_MAX  256
#define HEALTH_TEST_ITEM_MAX   4096
#define HEALTH_DURATION_MAX_MS (24LL * 3600 * 1000)
#define HEALTH_RETRIES_MAX     1000

#endif
