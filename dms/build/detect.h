/* build/detect.h - builds without a Dockerfile: which stack a repository is (by the language the user gave,
 * else by marker files), and the Dockerfile generated for it from the stack's template
 * (dms/build/templates/<stack>.Dockerfile, compiled in).
 *
 * The stacks start FROM local images made by scripts/stack-images (no registry here). Rules, first match:
 *   language given            node|nodejs|javascript, python|py, static|html, shell|sh|busybox
 *   package.json              node    (start: Procfile web:, else scripts.start -> npm start, else
 *                                      server.js|index.js|app.js|main.js)
 *   requirements.txt,         python  (start: Procfile web:, else app.py|main.py|server.py)
 *   pyproject.toml, *.py with a Procfile
 *   index.html                static  (busybox httpd serves the tree)
 *   Procfile, start.sh        shell   (start: Procfile web:, else sh start.sh)
 * A repository none of these fit fails with a message that lists what was looked for. No I/O but reading
 * the directory; thread-safe.
 */
#ifndef DMSD_BUILD_DETECT_H
#define DMSD_BUILD_DETECT_H

#include <stdbool.h>
#include <stddef.h>

#include <dms/error.h>

#define DETECT_START_MAX  1024
#define DETECT_REASON_MAX 256

typedef enum stack_kind {
    STACK_STATIC = 0,
    STACK_SHELL = 1,
    STACK_NODE = 2,
    STACK_PYTHON = 3,
} stack_kind;

typedef struct detect_result {
    stack_kind stack;
    char reason[DETECT_REASON_MAX]; /* "package.json found", "language \"python\" given" */
    char start[DETECT_START_MAX];   /* the start command (sh -c), "" for static */
    bool install;                   /* dependencies to install (package.json dependencies, requirements) */
    bool has_lockfile;              /* package-lock.json / npm-shrinkwrap.json: npm ci */
} detect_result;

const char *stack_name(stack_kind s);
/* The local image the stack starts FROM. Static string. */
const char *stack_base_image(stack_kind s);

/* Looks at dir (a checkout) and the user's language (may be NULL). INVALID (field "language") for a
 * language without a stack; BUILD_FAILED when nothing fits, with the list of what was looked for. */
int detect_stack(const char *dir, const char *language, detect_result *out, dms_error *err);

/* Renders the stack's template for port: caller frees *out. */
int detect_render(const detect_result *r, int port, char **out, dms_error *err);

/* The "web:" command of a Procfile's text (NULL-terminated), into buf; false if there is none. */
bool detect_procfile_web(const char *text, char *buf, size_t size);

#endif
