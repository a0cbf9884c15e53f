/* build/gitstream.h - every TCP connection libgit2 makes for dmsd, through a socket stream of our own.
 *
 * libgit2 1.5 looks its socket stream up in a registry (git_stream_register(GIT_STREAM_STANDARD, ...)) in the
 * HTTP transport, the git:// transport, the SSH transport (which hands the socket to libssh2) and under its
 * mbedTLS stream (https://); tests/unit/test_dmsd_egress.c proves each of the four goes through this one.
 * The stream registered here:
 *  - resolves the host itself, once, checks every address against the egress policy (egress.h), and
 *    connects only to addresses it checked (never a second resolution, so DNS rebinding gains nothing);
 *  - refuses a host with no permitted address without connecting at all, so the answer is the same whatever
 *    listens there (no port scanner);
 *  - gives up on a connection that makes no progress for the timeout: connect waits at most that long in
 *    all, and a watchdog thread shuts down a socket that has carried no data either way for that long
 *    (TCP_INFO's last_data_recv and last_data_sent, which also see what libssh2 does on the socket behind
 *    the stream's back), or whose call's cancel token fired.
 *
 * A caller brackets its libgit2 calls with gitstream_call_begin/_end on its own thread: the record then says
 * whether a connection was refused, timed out or cancelled, and why, for the error its caller sees.
 * install/uninstall: once, at startup and exit (not thread-safe); the rest is thread-safe.
 */
#ifndef DMSD_BUILD_GITSTREAM_H
#define DMSD_BUILD_GITSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <dms/executor.h>

#include "egress.h"

#define GITSTREAM_TIMEOUT_SETTING "DMS_GIT_TIMEOUT_S"
#define GITSTREAM_MESSAGE_MAX     320

typedef struct gitstream_call {
    dms_cancel_token *cancel;            /* borrowed; may be NULL */
    bool refused;                        /* a host had no address the policy permits */
    bool timed_out;                      /* a connection made no progress for the timeout */
    bool cancelled;                      /* a connection was shut down because cancel fired */
    char message[GITSTREAM_MESSAGE_MAX]; /* why, for the user (no resolved address in it) */
} gitstream_call;

/* Registers the stream with libgit2 (after git_libgit2_init) and starts the watchdog. allow[0..n) are the
 * networks the operator permits (copied); timeout_s is the longest a connection may make no progress. */
int gitstream_install(const egress_net *allow, size_t n, int timeout_s, dms_error *err);
/* Unregisters the stream and stops the watchdog; every connection must be closed. NULL-safe, idempotent. */
void gitstream_uninstall(void);
bool gitstream_installed(void);

/* Until _end, connections libgit2 opens on this thread report into c (zeroed here). cancel may be NULL. */
void gitstream_call_begin(gitstream_call *c, dms_cancel_token *cancel);
void gitstream_call_end(gitstream_call *c);

#endif
