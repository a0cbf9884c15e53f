/* detect.c - stack detection and Dockerfile generation (see detect.h). */
#include "detect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"

#define MANIFEST_MAX_BYTES (1024 * 1024) /* package.json, Procfile, requirements.txt are read up to this */

/* From the files dms/build/templates/<stack>.Dockerfile (embed.sh): {name, text} pairs, ending with {NULL,
 * NULL}. */
extern const char *const dms_stack_templates[][2];

typedef struct stack_def {
    const char *name;
    const char *image;
} stack_def;

static const stack_def stacks[] = {
    [STACK_STATIC] = {"static", "dms-stack/busybox:latest"},
    [STACK_SHELL] = {"shell", "dms-stack/busybox:latest"},
    [STACK_NODE] = {"node", "dms-stack/node:latest"},
    [STACK_PYTHON] = {"python", "dms-stack/python:latest"},
};

static const char *const looked_for =
    "package.json (node), requirements.txt or pyproject.toml (python), index.html (static site), "
    "Procfile or start.sh (shell), or a \"language\" of node, python, static or shell";

const char *stack_name(stack_kind s)
{
    return (unsigned)s < DMS_ARRAY_SIZE(stacks) ? stacks[s].name : "unknown";
}

const char *stack_base_image(stack_kind s)
{
    return (unsigned)s < DMS_ARRAY_SIZE(stacks) ? stacks[s].image : NULL;
}

/* The checkout is the user's: every name is resolved beneath it with no symlink on the way (a package.json
 * "main" of "../../etc/x", or a Procfile that links to a host file, must not make us look outside). */
static bool has_file(int dir, const char *name)
{
    _cleanup_close_ int fd = dmsu_open_beneath(dir, name, O_PATH);
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* The file's text (NUL-terminated), or NULL if absent, unreadable, a symlink or not a regular file. Caller
 * frees. */
static char *read_text(int dir, const char *name)
{
    char *text = NULL;
    size_t len = 0;
    if (dmsu_read_file_beneath(dir, name, MANIFEST_MAX_BYTES, &text, &len, NULL) < 0)
        return NULL;
    return text;
}

static const char *first_file(int dir, const char *const *names)
{
    for (size_t i = 0; names[i]; i++)
        if (has_file(dir, names[i]))
            return names[i];
    return NULL;
}

static bool any_py(int dir)
{
    int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        found = n > 3 && strcmp(e->d_name + n - 3, ".py") == 0;
    }
    closedir(d);
    return found;
}

bool detect_procfile_web(const char *text, char *buf, size_t size)
{
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            len--;
        if (len > 4 && strncmp(line, "web:", 4) == 0) {
            const char *cmd = line + 4;
            size_t cl = len - 4;
            while (cl && (*cmd == ' ' || *cmd == '\t')) {
                cmd++;
                cl--;
            }
            if (cl && cl < size) {
                memcpy(buf, cmd, cl);
                buf[cl] = '\0';
                return true;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

static bool procfile_start(int dir, char *buf, size_t size)
{
    _cleanup_free_ char *text = read_text(dir, "Procfile");
    return text && detect_procfile_web(text, buf, size);
}

/* True if any non-blank, non-comment line is there (an empty requirements.txt installs nothing). */
static bool has_requirements(const char *text)
{
    for (const char *p = text; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p && *p != '\n' && *p != '#')
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

static int node_details(int dir, detect_result *r, dms_error *err)
{
    _cleanup_free_ char *text = read_text(dir, "package.json");
    json_error_t jerr;
    _cleanup_json_ json_t *pkg = text ? json_loads(text, 0, &jerr) : NULL;
    if (text && !json_is_object(pkg))
        return dms_error_set(err, DMS_E_BUILD_FAILED, NULL, "package.json is not a JSON object%s%s",
                             pkg ? "" : ": ", pkg ? "" : jerr.text);
    json_t *deps = json_object_get(pkg, "dependencies");
    r->install = json_is_object(deps) && json_object_size(deps) > 0;
    r->has_lockfile = has_file(dir, "package-lock.json") || has_file(dir, "npm-shrinkwrap.json");
    if (procfile_start(dir, r->start, sizeof(r->start)))
        return 0;
    json_t *start = json_object_get(json_object_get(pkg, "scripts"), "start");
    if (json_is_string(start)) {
        snprintf(r->start, sizeof(r->start), "npm start");
        return 0;
    }
    static const char *const mains[] = {"server.js", "index.js", "app.js", "main.js", NULL};
    const char *m = json_string_value(json_object_get(pkg, "main"));
    if (!m || !has_file(dir, m))
        m = first_file(dir, mains);
    if (m) {
        snprintf(r->start, sizeof(r->start), "exec node %s", m);
        return 0;
    }
    return dms_error_set(
        err, DMS_E_BUILD_FAILED, NULL,
        "node: no start command: add a Procfile (web: ...), scripts.start in package.json, or "
        "one of server.js, index.js, app.js, main.js");
}

static int python_details(int dir, detect_result *r, dms_error *err)
{
    _cleanup_free_ char *req = read_text(dir, "requirements.txt");
    r->install = req && has_requirements(req);
    if (procfile_start(dir, r->start, sizeof(r->start)))
        return 0;
    static const char *const mains[] = {"app.py", "main.py", "server.py", NULL};
    const char *m = first_file(dir, mains);
    if (m) {
        snprintf(r->start, sizeof(r->start), "exec python3 %s", m);
        return 0;
    }
    return dms_error_set(err, DMS_E_BUILD_FAILED, NULL,
                         "python: no start command: add a Procfile (web: ...) or one of app.py, main.py, "
                         "server.py");
}

static int shell_details(int dir, detect_result *r, dms_error *err)
{
    if (procfile_start(dir, r->start, sizeof(r->start)))
        return 0;
    if (has_file(dir, "start.sh")) {
        snprintf(r->start, sizeof(r->start), "exec sh start.sh");
        return 0;
    }
    return dms_error_set(err, DMS_E_BUILD_FAILED, NULL,
                         "shell: no start command: add a Procfile (web: ...) or a start.sh");
}

static int details(int dir, detect_result *r, dms_error *err)
{
    switch (r->stack) {
    case STACK_NODE:
        return node_details(dir, r, err);
    case STACK_PYTHON:
        return python_details(dir, r, err);
    case STACK_SHELL:
        return shell_details(dir, r, err);
    default:
        return 0;
    }
}

typedef struct alias {
    const char *name;
    stack_kind stack;
} alias;

static const alias languages[] = {
    {"node", STACK_NODE},     {"nodejs", STACK_NODE},    {"javascript", STACK_NODE}, {"js", STACK_NODE},
    {"python", STACK_PYTHON}, {"python3", STACK_PYTHON}, {"py", STACK_PYTHON},       {"static", STACK_STATIC},
    {"html", STACK_STATIC},   {"shell", STACK_SHELL},    {"sh", STACK_SHELL},        {"busybox", STACK_SHELL},
};

static int detect_in(int dir, const char *language, detect_result *out, dms_error *err)
{
    if (language && *language) {
        for (size_t i = 0; i < DMS_ARRAY_SIZE(languages); i++)
            if (strcmp(languages[i].name, language) == 0) {
                out->stack = languages[i].stack;
                snprintf(out->reason, sizeof(out->reason), "language \"%s\" given", language);
                return details(dir, out, err);
            }
        return dms_error_set(
            err, DMS_E_INVALID, "language",
            "language \"%.32s\" has no stack template here (known: node, python, static, shell; "
            "or add a Dockerfile)",
            language);
    }
    struct {
        const char *marker;
        stack_kind stack;
    } rules[] = {
        {"package.json", STACK_NODE}, {"requirements.txt", STACK_PYTHON}, {"pyproject.toml", STACK_PYTHON},
        {"index.html", STACK_STATIC}, {"Procfile", STACK_SHELL},          {"start.sh", STACK_SHELL},
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(rules); i++) {
        if (!has_file(dir, rules[i].marker))
            continue;
        /* A Procfile next to Python files is a Python app (Heroku's convention), not a shell one. */
        out->stack = rules[i].stack == STACK_SHELL && any_py(dir) ? STACK_PYTHON : rules[i].stack;
        snprintf(out->reason, sizeof(out->reason), "%s found", rules[i].marker);
        return details(dir, out, err);
    }
    if (has_file(dir, "go.mod"))
        return dms_error_set(err, DMS_E_BUILD_FAILED, NULL,
                             "no Dockerfile, and go.mod found but there is no Go stack here; looked for: %s",
                             looked_for);
    return dms_error_set(err, DMS_E_BUILD_FAILED, NULL,
                         "no Dockerfile and no known stack: looked for a Dockerfile, %s", looked_for);
}

int detect_stack(const char *dir, const char *language, detect_result *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open the checkout %s", dir);
    return detect_in(fd, language, out, err);
}

/* Replaces every {{key}} of tpl by its value. */
static int render(const char *tpl, const char *const *kv, char **out, dms_error *err)
{
    dmsu_buf b = {0};
    for (const char *p = tpl; *p;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            dmsu_buf_append(&b, p, strlen(p));
            break;
        }
        dmsu_buf_append(&b, p, (size_t)(open - p));
        const char *close = strstr(open, "}}");
        if (!close) {
            dmsu_buf_free(&b);
            return dms_error_set(err, DMS_E_INTERNAL, NULL, "template: unclosed {{");
        }
        size_t kl = (size_t)(close - open - 2);
        const char *val = NULL;
        for (size_t i = 0; kv[i]; i += 2)
            if (strlen(kv[i]) == kl && strncmp(kv[i], open + 2, kl) == 0)
                val = kv[i + 1];
        if (!val) {
            dmsu_buf_free(&b);
            return dms_error_set(err, DMS_E_INTERNAL, NULL, "template: unknown key {{%.*s}}", (int)kl,
                                 open + 2);
        }
        dmsu_buf_append(&b, val, strlen(val));
        p = close + 2;
    }
    if (dmsu_buf_append(&b, "", 1) < 0) {
        dmsu_buf_free(&b);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    *out = b.data;
    return 0;
}

int detect_render(const detect_result *r, int port, char **out, dms_error *err)
{
    const char *tpl = NULL;
    for (size_t i = 0; dms_stack_templates[i][0]; i++)
        if (strcmp(dms_stack_templates[i][0], stack_name(r->stack)) == 0)
            tpl = dms_stack_templates[i][1];
    if (!tpl)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "no template for stack %s", stack_name(r->stack));
    /* CMD in exec form: a JSON array, so the command needs no escaping by hand. */
    _cleanup_json_ json_t *cmd = json_pack("[s, s, s]", "sh", "-c", r->start);
    _cleanup_free_ char *start = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    const char *install = "# (no dependencies to install)";
    if (r->install && r->stack == STACK_NODE)
        install = r->has_lockfile ? "RUN npm ci --omit=dev --no-audit --no-fund"
                                  : "RUN npm install --omit=dev --no-audit --no-fund";
    else if (r->install && r->stack == STACK_PYTHON)
        install = "RUN python3 -m venv /app/.venv && /app/.venv/bin/pip install --disable-pip-version-check "
                  "--no-input -r requirements.txt";
    if (!start)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    const char *kv[] = {
        "BASE", stack_base_image(r->stack), "PORT", portbuf, "START", start, "INSTALL", install, NULL};
    return render(tpl, kv, out, err);
}
