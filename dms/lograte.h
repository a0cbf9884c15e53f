/* dms/lograte.h - at most one log line per format string per interval, with a count of those held back.
 *
 * A fault that repeats in a tight loop (libmicrohttpd says "Error accepting connection: Too many open files"
 * for every accept it retries, or one line per connection it refuses) must not flood the log: the first line
 * of a format goes out, the same format again within the interval is counted and dropped, and the next one
 * that goes out says how many were dropped. Lines are told apart by their format string, not their text, so
 * that a counter or an address in the text does not make every line new.
 *
 * The table holds LOGRATE_SLOTS formats; a new one takes the slot used longest ago (a count it held is lost:
 * the table is sized so that this needs that many different formats repeating at once).
 *
 * Thread-safe: one mutex per table, held for a few comparisons.
 */
#ifndef DMSD_LOGRATE_H
#define DMSD_LOGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define LOGRATE_SLOTS       32
#define LOGRATE_INTERVAL_MS 1000 /* the target: no line repeats more than once a second */

typedef struct lograte_slot {
    const char *fmt; /* borrowed: a format string lives as long as the program (a literal) */
    int64_t last_ms; /* when a line of it last went out */
    uint64_t held;   /* dropped since */
} lograte_slot;

typedef struct lograte {
    pthread_mutex_t lock;
    int64_t interval_ms;
    lograte_slot slot[LOGRATE_SLOTS];
} lograte;

#define LOGRATE_INIT(ms)                                                                                     \
    {                                                                                                        \
        .lock = PTHREAD_MUTEX_INITIALIZER, .interval_ms = (ms)                                               \
    }

/* Whether a line of fmt may go out at now_ms. When it may, *held gets how many lines of fmt were dropped
 * since the last one that went out (0 if none), and the count starts again. */
bool lograte_allow(lograte *lr, const char *fmt, int64_t now_ms, uint64_t *held);

#endif
