/* randid.c - the random ids dms makes (droids, jobs, dms-exec's executions and builds), from libuuid.
 *
 * An id is a prefix and the first ID_HEX_BYTES bytes of a random (version 4) UUID in lower-case hex. The
 * first six bytes of such a UUID are all random (the version and variant bits come later), so nothing is
 * lost by the cut. Why not the whole UUID: ids appear in URLs, in container and network names and in the
 * labels of hostnames, and twelve hex digits (48 bits) keep them short while a collision stays unlikely
 * below millions of ids, which the store's unique keys catch anyway. Kept in its own object so that only the
 * programs that make ids (dmsd, dms-exec) link libuuid. */
#include "util.h"

#include <stdio.h>
#include <uuid/uuid.h>

#define ID_HEX_BYTES 6

int dmsu_random_id(char *buf, size_t size, const char *prefix)
{
    uuid_t u;
    uuid_generate_random(u);
    return dmsu_snprintf_ok(buf, size, "%s%02x%02x%02x%02x%02x%02x", prefix, u[0], u[1], u[2], u[3], u[4],
                            u[5]);
}
