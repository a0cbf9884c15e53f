/* dms/fdlimit.h - file descriptors as a bounded resource: the soft limit raised to the hard one at start, the
 * descriptors in use counted, a create refused before it would run out, and "Too many open files" told apart
 * from a user's fault (issue 23).
 *
 * What a droid costs (measured with /proc/<pid>/fd of a dmsd running busybox droids, docker backend): a
 * running droid holds FDLIMIT_PER_DROID descriptors in dmsd (the executor's attach socket, its waiter's
 * eventfd, the execution's owner.lock and its log file); a compose droid holds as many per service. dmsd
 * itself holds about FDLIMIT_BASE with none. A create needs FDLIMIT_RESERVE more for what runs meanwhile: its
 * build (clone sockets, pack files, build logs, the engine connection), the API's connections and the store.
 *
 * Thread-safe: the limit is read once at start (fdlimit_raise) and read-only afterwards; the counting reads
 * /proc/self/fd with a descriptor of its own.
 */
#ifndef DMSD_FDLIMIT_H
#define DMSD_FDLIMIT_H

#include <stdbool.h>

#include <dms/error.h>

/* Measured (tests/features/dmsd_fdlimit.feature, docker backend): 20 with no droid, 56 with 9 busybox droids
 * running and no build left, i.e. 4.0 per droid; issue 23 measured 19 + 4 per droid up to 150 droids. */
#define FDLIMIT_BASE      20
#define FDLIMIT_PER_DROID 4
/* Headroom a create keeps for in-flight work: a build's clone (libgit2 keeps pack and index files open, plus
 * its socket), its two log files and engine connection, a dozen API connections, SQLite's WAL and shm. */
#define FDLIMIT_RESERVE 64
/* The field a refusal names: what an operator raises (LimitNOFILE= in a systemd unit, ulimit -n). */
#define FDLIMIT_FIELD "limits.open_files"

/* Sets RLIMIT_NOFILE's soft limit to its hard limit (capped at fs.nr_open when the hard one is unlimited) and
 * remembers it. *soft gets the limit now in force, *raised whether it changed. IO when it cannot be read. */
int fdlimit_raise(long *soft, bool *raised, dms_error *err);
/* The soft limit fdlimit_raise took (or read at the first call of fdlimit_check_now, if it never ran). */
long fdlimit_soft(void);
/* How many running droids `soft` descriptors allow: (soft - FDLIMIT_BASE - FDLIMIT_RESERVE) / per droid. */
long fdlimit_droids_allowed(long soft);

/* The descriptors this process has open (entries of /proc/self/fd, not counting the one reading it), counting
 * at most stop_at. -1 when /proc cannot be read, which includes being out of descriptors already. */
long fdlimit_count_open(long stop_at);
/* Whether in_use plus need stays within limit: 0, or UNAVAILABLE (a 503) naming FDLIMIT_FIELD, with both
 * numbers and what to raise. in_use < 0 (unknown: not even /proc could be opened) is refused too. Pure. */
int fdlimit_check(long in_use, long limit, long need, dms_error *err);
/* fdlimit_check with FDLIMIT_RESERVE + need asked for, and as in use the more of: the descriptors counted
 * now, and what `droids` droids will hold once they run (FDLIMIT_BASE + FDLIMIT_PER_DROID each). A droid just
 * created holds nothing until its build ends, so counting alone would let a burst of creates through that
 * runs out later; a stopped droid is counted too (it may be started again). */
int fdlimit_check_now(long droids, long need, dms_error *err);

/* Whether err is the process or the system out of descriptors (EMFILE, ENFILE): its errno, or, for errors
 * that only kept a message (libgit2's, the engine client's), strerror's words in it. Such a failure is ours,
 * never the user's: retry it. */
bool fdlimit_exhausted(const dms_error *err);
/* The same test on a message alone. */
bool fdlimit_exhausted_msg(const char *msg);

#endif
