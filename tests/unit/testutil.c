/* tests/unit/testutil.c - the suites' shared helpers (testutil.h). */
#include "testutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <dms/backend.h>

char tu_dir[PATH_MAX];

void tu_mkdtemp(char *dir, size_t size)
{
    /* program_invocation_short_name (GNU) is the suite's binary, so a leftover directory says who left it. */
    int n = snprintf(dir, size, "/tmp/dms-%s-XXXXXX", program_invocation_short_name);
    ck_assert_msg(n > 0 && (size_t)n < size, "tu_mkdtemp: a buffer of %zu bytes is too small", size);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
}

void tu_rmtree(const char *dir)
{
    dms_error err = {0};
    ck_assert_msg(dms_rm_rf(dir, &err) == 0, "remove %s: %s", dir, err.message);
}

void tu_tmpdir_setup(void)
{
    tu_mkdtemp(tu_dir, sizeof(tu_dir));
}

void tu_tmpdir_teardown(void)
{
    tu_rmtree(tu_dir);
}

void tu_write(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    ck_assert_msg(n > 0 && (size_t)n < sizeof(path), "tu_write: path too long: %s/%s", dir, name);
    dms_error err = {0};
    ck_assert_msg(dms_write_file_atomic(path, text, strlen(text), &err) == 0, "write %s: %s", path,
                  err.message);
}

int tu_http_status(const char *head)
{
    static const char prefix[] = "HTTP/1.";
    if (strncmp(head, prefix, sizeof(prefix) - 1) != 0)
        return -1;
    const char *minor = head + sizeof(prefix) - 1, *p = minor;
    while (isdigit((unsigned char)*p))
        p++;
    char *end = NULL;
    long status = p == minor ? -1 : strtol(p, &end, 10);
    return end == NULL || end == p || status < 0 || status > INT_MAX ? -1 : (int)status;
}

void tu_sh(const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0, "tu_sh: out of memory");
    int status = system(cmd);
    int code = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    /* ck_assert_msg does not return on failure: copy the command for its message and free it first, on one
     * path, so no path frees it twice or leaks it. */
    char shown[1024];
    snprintf(shown, sizeof(shown), "%s", cmd);
    free(cmd);
    ck_assert_msg(code == 0, "command failed (exit %d): %s", code, shown);
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
