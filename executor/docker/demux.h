/* executor/docker/demux.h - the Engine API's multiplexed stream, parsed as a state machine.
 *
 * Frame: 8-byte header [type, 0, 0, 0, size as big-endian u32] then size payload bytes (v1.41.yaml
 * ContainerAttach; moby stdcopy.go). Types: 0 stdin (treated as stdout), 1 stdout, 2 stderr, 3 systemerr (an
 * in-band daemon error). Input may be split anywhere, including inside a header; zero-size frames exist. */
#ifndef DOCKER_DEMUX_H
#define DOCKER_DEMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOCKER_FRAME_STDOUT    1
#define DOCKER_FRAME_STDERR    2
#define DOCKER_FRAME_SYSTEMERR 3
#define DOCKER_FRAME_HDR_BYTES 8

/* Receives payload bytes of one frame (possibly in several calls for one frame: `frame_end` is true on the
 * call that completes it). Return negative to stop parsing; that value is returned by docker_demux_feed(). */
typedef int (*docker_demux_fn)(void *ud, int stream, const char *data, size_t len, bool frame_end);

typedef struct docker_demux {
    uint8_t hdr[DOCKER_FRAME_HDR_BYTES];
    size_t hdr_len;
    uint32_t remaining; /* payload bytes left in the current frame */
    int stream;
    bool in_frame;
    bool raw; /* TTY stream: no framing, everything is stdout */
} docker_demux;

/* Feeds bytes; 0, or -1 for a malformed header (type > 3 or non-zero padding), or the callback's negative
 * value. */
int docker_demux_feed(docker_demux *d, const char *data, size_t len, docker_demux_fn fn, void *ud);

/* Forgets any partial frame (a new stream starts). */
void docker_demux_reset(docker_demux *d);

/* True if the stream ended cleanly between frames. */
bool docker_demux_at_boundary(const docker_demux *d);

/* Parses the RFC 3339 timestamp Docker prefixes to log lines with timestamps=1
 * ("2026-11-23T06:57:18.329711234Z ", fraction of 0-9 digits, Z or +hh:mm). Returns the number of bytes
 * consumed including the space, or 0. */
size_t docker_parse_timestamp(const char *s, size_t len, int64_t *ns);

#endif
