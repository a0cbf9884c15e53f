/* recipe.c - the Dockerfile of a droid's build: the repository's own or a generated one, checked (see
 * recipe.h). */
#include "recipe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "../fdlimit.h"
#include "dfpolicy.h"
#include "detect.h"

#define SAY_LINE_MAX 1024

static void say(const recipe_in *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const recipe_in *in, const char *fmt, ...)
{
    char line[SAY_LINE_MAX] = "[dms] ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 6, sizeof(line) - 6, fmt, ap);
    va_end(ap);
    in->say(in->ud, line, strlen(line));
}

static bool own_droid(void *ud, const char *droid_id)
{
    const recipe_in *in = ud;
    return in->d->user_id && core_check_owner(in->core, in->d->user_id, droid_id, NULL) == 0;
}

/* No Dockerfile: one from the stack's template, shown in build.out. User faults (nothing detected, an unknown
 * language) are not retryable; a missing stack image is ours to fix (scripts/stack-images), said as such. */
static int generate(const recipe_in *in, char **text, dms_error *err)
{
    detect_result det;
    int r = detect_stack(in->src, in->d->language, &det, err);
    if (r < 0)
        return r;
    const char *image = stack_base_image(det.stack);
    dms_image_info info = {0};
    if (dms_executor_image_info(in->ex, image, &info, NULL) == 0 && !info.present)
        return dms_error_set(err, DMS_E_IMAGE, NULL,
                             "stack %s (%s): its image %s is missing on this machine: make it with "
                             "scripts/stack-images",
                             stack_name(det.stack), det.reason, image);
    if ((r = detect_render(&det, in->d->port, text, err)) < 0)
        return r;
    say(in, "no Dockerfile: stack %s (%s); the generated Dockerfile:", stack_name(det.stack), det.reason);
    for (const char *line = *text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        in->say(in->ud, line, len);
        line += len + (nl ? 1 : 0);
    }
    say(in, "end of the generated Dockerfile");
    return 0;
}

/* The repository's Dockerfile: 1 when there is none (absent, or a directory of that name), 0 with *text. */
static int read_own(int dir, char **text, dms_error *err)
{
    struct stat st;
    if (fstatat(dir, "Dockerfile", &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return 1;
        return dms_error_set_errno(err, DMS_E_IO, errno, "the repository's Dockerfile");
    }
    if (S_ISDIR(st.st_mode))
        return 1;
    if (S_ISLNK(st.st_mode))
        return dms_error_set(
            err, DMS_E_BUILD_FAILED, "dockerfile",
            "the repository's Dockerfile is a symbolic link, which dmsd does not follow: commit "
            "the file itself");
    dms_error e;
    size_t len;
    int r = dmsu_read_file_beneath(dir, "Dockerfile", RECIPE_DOCKERFILE_MAX_BYTES, text, &len, &e);
    if (r < 0 && fdlimit_exhausted(&e)) /* dmsd's trouble, not the file's: keep the errno */
        return dms_error_set_errno(err, DMS_E_IO, e.sys_errno, "the repository's Dockerfile");
    if (r < 0)
        return dms_error_set(err, DMS_E_BUILD_FAILED, "dockerfile", "the repository's Dockerfile: %s",
                             e.message);
    if (strlen(*text) != len) /* the text goes on as a C string: what is checked must be all of it */
        return dms_error_set(err, DMS_E_BUILD_FAILED, "dockerfile",
                             "the repository's Dockerfile has a NUL byte");
    return 0;
}

int recipe_dockerfile(const recipe_in *in, char **text, dms_error *err)
{
    *text = NULL;
    _cleanup_close_ int dir = open(in->src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open the checkout %s", in->src);
    int r = read_own(dir, text, err);
    if (r == 1)
        r = generate(in, text, err);
    dfp_policy policy = {.allowed = in->allowed_images, .own_droid = own_droid, .ud = (void *)in};
    if (r == 0)
        r = dfp_check(*text, strlen(*text), &policy, err);
    if (r < 0) {
        free(*text);
        *text = NULL;
        if (err) /* the user's to mend, unless dmsd ran out of descriptors (fdlimit.h) */
            err->retryable = fdlimit_exhausted(err);
    }
    return r;
}
