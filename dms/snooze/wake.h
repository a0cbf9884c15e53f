/* snooze/wake.h - the wake handler: a loopback listener that Caddy's route of a sleeping droid points at.
 *
 * Caddy forwards the request with the droid's id in X-Dms-Wake, on a connection of its own (keep-alive is off
 * on that route). The handler reads the request head, takes the header out, holds the connection while the
 * droid wakes (snooze_wait_awake), then connects to the new container and splices the two connections byte
 * for byte until both sides are done. The held request therefore reaches the app itself and its client gets
 * the app's real answer (status, headers, streamed body, an upgrade to a WebSocket), not a waiting page and
 * not a retry.
 *
 * One thread per held connection (wakes are rare; at most WAKE_CONNS_MAX at once, the next get a 503).
 */
#ifndef DMSD_SNOOZE_WAKE_H
#define DMSD_SNOOZE_WAKE_H

#include <stddef.h>

#include <dms/error.h>

#define WAKE_CONNS_MAX       256
#define WAKE_HEAD_MAX        (64 * 1024) /* request line and headers; a larger head gets a 431 */
#define WAKE_HEAD_TIMEOUT_MS 10000
#define WAKE_CONNECT_MS      5000
#define WAKE_SPLICE_BUF      (64 * 1024)

struct snooze;
typedef struct wake wake;

/* Binds 127.0.0.1 on a free port. Caller owns *out. */
int wake_open(wake **out, struct snooze *s, dms_error *err);
/* "127.0.0.1:PORT" (borrowed). */
const char *wake_addr(const wake *w);
int wake_start(wake *w, dms_error *err);
/* Stops accepting, ends the open connections (held or spliced), waits for their threads, frees. Accepts NULL.
 */
void wake_close(wake *w);

/* Finds the X-Dms-Wake header in a request head (NUL-terminated, ends with "\r\n\r\n"), copies its value into
 * id and removes the line from head in place; *len is updated. -1 without it (or a bad value). */
int wake_take_header(char *head, size_t *len, char *id, size_t id_size);

#endif
