/* tests/unit/testutil.h - what the Check suites share instead of copying it: a private temporary directory
 * per test, a file written in it, a shell command that must succeed, an HTTP status line read, and main().
 *
 *   static void setup(void) { tu_mkdtemp(dir, sizeof(dir)); ... }      or the fixture pair below
 *   int main(void) { return tu_run(util_suite()); }
 *
 * Every function fails the current test (ck_assert) instead of returning an error, so a broken set-up never
 * reads as a failing test body. Linked into every suite by tests/unit/unit.mk. Not thread-safe: call from the
 * test's own thread (a set-up, a teardown or the body). */
#ifndef DMS_TESTUTIL_H
#define DMS_TESTUTIL_H

#include <check.h>
#include <limits.h>
#include <stddef.h>

/* Makes a fresh directory /tmp/dms-<program name>-XXXXXX, mode 0700, and writes its path into dir (size
 * bytes, at least 64). */
void tu_mkdtemp(char *dir, size_t size);

/* Removes dir and everything beneath it, without following a link (dms_rm_rf). A missing dir is fine. */
void tu_rmtree(const char *dir);

/* The checked fixture most suites want: tu_dir is a fresh directory for each test, removed after it. */
extern char tu_dir[PATH_MAX];
void tu_tmpdir_setup(void);
void tu_tmpdir_teardown(void);

/* Writes text to dir/name (a file beneath dir, whose directories exist), replacing what is there: atomically
 * (dms_write_file_atomic: mode 0600, a symlink at name is replaced, not followed). */
void tu_write(const char *dir, const char *name, const char *text);

/* The status code of an HTTP/1.x response head ("HTTP/1.1 200 OK..."), or -1 when head does not start with
 * one. */
int tu_http_status(const char *head);

/* Runs a command (printf format, no length limit) with /bin/sh -c; the test fails, naming the command and its
 * exit status, unless it exits 0. */
void tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs every test of s (CK_NORMAL: Check forks each test unless CK_FORK=no) and frees it. Returns main's
 * exit status: EXIT_SUCCESS when every test passed. */
int tu_run(Suite *s);

#endif
