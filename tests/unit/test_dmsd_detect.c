/* test_dmsd_detect.c - builds without a Dockerfile: which stack a checkout is (marker files, the user's
 * language), its start command, and the Dockerfile rendered from the stack's template. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/build/detect.h"
#include "testutil.h"

static detect_result detect_ok(const char *language)
{
    detect_result r;
    dms_error err = {0};
    int rc = detect_stack(tu_dir, language, &r, &err);
    ck_assert_msg(rc == 0, "detect failed: %s", err.message);
    return r;
}

static char *render_ok(const detect_result *r, int port)
{
    char *text = NULL;
    dms_error err = {0};
    ck_assert_msg(detect_render(r, port, &text, &err) == 0, "render failed: %s", err.message);
    ck_assert_msg(!strstr(text, "{{"), "placeholder left in:\n%s", text);
    return text;
}

START_TEST(test_procfile_web_line_is_the_start_command)
{
    char buf[256];
    ck_assert(detect_procfile_web("worker: ./w\nweb: ./serve --port $PORT\r\n", buf, sizeof(buf)));
    ck_assert_str_eq(buf, "./serve --port $PORT");
    ck_assert(detect_procfile_web("web:python3 app.py", buf, sizeof(buf)));
    ck_assert_str_eq(buf, "python3 app.py");
    ck_assert(!detect_procfile_web("worker: ./w\n", buf, sizeof(buf)));
    ck_assert(!detect_procfile_web("web:   \n", buf, sizeof(buf)));
    ck_assert(!detect_procfile_web("webby: x\n", buf, sizeof(buf)));
    ck_assert(!detect_procfile_web("", buf, sizeof(buf)));
}
END_TEST

START_TEST(test_package_json_is_node_and_start_script_wins_over_main_files)
{
    tu_write(tu_dir, "package.json", "{\"name\":\"a\",\"scripts\":{\"start\":\"node srv.js\"}}");
    tu_write(tu_dir, "index.js", "");
    tu_write(tu_dir, "index.html", "<p>not a static site: package.json comes first</p>");
    detect_result r = detect_ok(NULL);
    ck_assert_int_eq(r.stack, STACK_NODE);
    ck_assert_str_eq(r.reason, "package.json found");
    ck_assert_str_eq(r.start, "npm start");
    ck_assert(!r.install); /* no dependencies */
}
END_TEST

START_TEST(test_node_start_falls_back_to_main_then_server_js)
{
    tu_write(tu_dir, "package.json",
             "{\"name\":\"a\",\"main\":\"lib/x.js\"}"); /* main names a missing file */
    tu_write(tu_dir, "app.js", "");
    tu_write(tu_dir, "server.js", "");
    ck_assert_str_eq(detect_ok(NULL).start, "exec node server.js");
    tu_write(tu_dir, "package.json", "{\"name\":\"a\",\"main\":\"app.js\",\"dependencies\":{\"x\":\"1\"}}");
    detect_result r = detect_ok(NULL);
    ck_assert_str_eq(r.start, "exec node app.js");
    ck_assert(r.install);
    ck_assert(!r.has_lockfile);
    tu_write(tu_dir, "Procfile", "web: node app.js --fast\n");
    ck_assert_str_eq(detect_ok(NULL).start, "node app.js --fast");
}
END_TEST

START_TEST(test_node_without_a_start_command_says_what_to_add)
{
    tu_write(tu_dir, "package.json", "{\"name\":\"a\"}");
    detect_result r;
    dms_error err = {0};
    ck_assert_int_eq(detect_stack(tu_dir, NULL, &r, &err), -DMS_E_BUILD_FAILED);
    ck_assert_ptr_nonnull(strstr(err.message, "scripts.start"));
    ck_assert_ptr_nonnull(strstr(err.message, "Procfile"));
    tu_write(tu_dir, "package.json", "[1, 2]");
    ck_assert_int_eq(detect_stack(tu_dir, NULL, &r, &err), -DMS_E_BUILD_FAILED);
    ck_assert_ptr_nonnull(strstr(err.message, "package.json"));
}
END_TEST

START_TEST(test_requirements_txt_is_python)
{
    tu_write(tu_dir, "requirements.txt", "# nothing yet\n\n");
    tu_write(tu_dir, "main.py", "");
    detect_result r = detect_ok(NULL);
    ck_assert_int_eq(r.stack, STACK_PYTHON);
    ck_assert_str_eq(r.start, "exec python3 main.py");
    ck_assert(!r.install); /* comments only */
    tu_write(tu_dir, "requirements.txt", "  flask==2.2\n");
    ck_assert(detect_ok(NULL).install);
}
END_TEST

START_TEST(test_procfile_next_to_python_files_is_python_not_shell)
{
    tu_write(tu_dir, "Procfile", "web: python3 -m http.server $PORT\n");
    tu_write(tu_dir, "tool.py", "");
    detect_result r = detect_ok(NULL);
    ck_assert_int_eq(r.stack, STACK_PYTHON);
    ck_assert_str_eq(r.start, "python3 -m http.server $PORT");
}
END_TEST

START_TEST(test_index_html_is_static_and_start_sh_is_shell)
{
    tu_write(tu_dir, "index.html", "<h1>hi</h1>");
    ck_assert_int_eq(detect_ok(NULL).stack, STACK_STATIC);
    tu_tmpdir_teardown();
    tu_tmpdir_setup();
    tu_write(tu_dir, "start.sh", "echo hi\n");
    detect_result r = detect_ok(NULL);
    ck_assert_int_eq(r.stack, STACK_SHELL);
    ck_assert_str_eq(r.start, "exec sh start.sh");
    ck_assert_str_eq(r.reason, "start.sh found");
}
END_TEST

START_TEST(test_language_given_overrides_markers)
{
    tu_write(tu_dir, "index.html", "<h1>hi</h1>");
    tu_write(tu_dir, "start.sh", "httpd -f -p $PORT\n");
    detect_result r = detect_ok("shell");
    ck_assert_int_eq(r.stack, STACK_SHELL);
    ck_assert_str_eq(r.reason, "language \"shell\" given");
    ck_assert_int_eq(detect_ok("html").stack, STACK_STATIC);
    dms_error err = {0};
    ck_assert_int_eq(detect_stack(tu_dir, "cobol", &r, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "language");
    ck_assert_ptr_nonnull(strstr(err.message, "node, python, static, shell"));
    /* A language whose start command cannot be found fails like detection does. */
    ck_assert_int_eq(detect_stack(tu_dir, "python", &r, &err), -DMS_E_BUILD_FAILED);
}
END_TEST

START_TEST(test_undetectable_repo_lists_what_was_looked_for)
{
    tu_write(tu_dir, "README.md", "# nothing to run\n");
    detect_result r;
    dms_error err = {0};
    ck_assert_int_eq(detect_stack(tu_dir, NULL, &r, &err), -DMS_E_BUILD_FAILED);
    static const char *const wanted[] = {"Dockerfile", "package.json", "requirements.txt", "index.html",
                                         "Procfile",   "start.sh",     "language"};
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
        ck_assert_msg(strstr(err.message, wanted[i]), "\"%s\" not named in: %s", wanted[i], err.message);
    tu_write(tu_dir, "go.mod", "module x\n");
    ck_assert_int_eq(detect_stack(tu_dir, NULL, &r, &err), -DMS_E_BUILD_FAILED);
    ck_assert_ptr_nonnull(strstr(err.message, "go.mod"));
}
END_TEST

START_TEST(test_render_node_with_lockfile_uses_npm_ci)
{
    tu_write(tu_dir, "package.json",
             "{\"scripts\":{\"start\":\"node a.js\"},\"dependencies\":{\"x\":\"1\"}}");
    tu_write(tu_dir, "package-lock.json", "{}");
    detect_result r = detect_ok(NULL);
    ck_assert(r.has_lockfile);
    char *text = render_ok(&r, 3000);
    ck_assert_ptr_nonnull(strstr(text, "FROM dms-stack/node:latest\n"));
    ck_assert_ptr_nonnull(strstr(text, "RUN npm ci --omit=dev"));
    ck_assert_ptr_nonnull(strstr(text, "ENV PORT=3000 "));
    ck_assert_ptr_nonnull(strstr(text, "EXPOSE 3000\n"));
    ck_assert_ptr_nonnull(strstr(text, "CMD [\"sh\",\"-c\",\"npm start\"]\n"));
    free(text);
}
END_TEST

START_TEST(test_render_escapes_the_start_command_as_json)
{
    tu_write(tu_dir, "Procfile", "web: echo \"hi \\\\ there\" && exec httpd -f -p $PORT\n");
    detect_result r = detect_ok(NULL);
    ck_assert_int_eq(r.stack, STACK_SHELL);
    char *text = render_ok(&r, 8080);
    ck_assert_ptr_nonnull(strstr(text, "FROM dms-stack/busybox:latest\n"));
    ck_assert_msg(
        strstr(text, "CMD [\"sh\",\"-c\",\"echo \\\"hi \\\\\\\\ there\\\" && exec httpd -f -p $PORT\"]"),
        "%s", text);
    free(text);
}
END_TEST

START_TEST(test_every_stack_renders_without_placeholders)
{
    static const stack_kind all[] = {STACK_STATIC, STACK_SHELL, STACK_NODE, STACK_PYTHON};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        detect_result r = {.stack = all[i], .install = true};
        snprintf(r.start, sizeof(r.start), "run-me");
        char *text = render_ok(&r, 1234);
        char from[128];
        snprintf(from, sizeof(from), "FROM %s\n", stack_base_image(all[i]));
        ck_assert_msg(strstr(text, from), "%s: no %s in\n%s", stack_name(all[i]), from, text);
        ck_assert_msg(strstr(text, "EXPOSE 1234"), "%s", text);
        if (all[i] == STACK_PYTHON)
            ck_assert_ptr_nonnull(strstr(text, "RUN python3 -m venv /app/.venv"));
        free(text);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_detect");
    TCase *tc = tcase_create("detect");
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_procfile_web_line_is_the_start_command);
    tcase_add_test(tc, test_package_json_is_node_and_start_script_wins_over_main_files);
    tcase_add_test(tc, test_node_start_falls_back_to_main_then_server_js);
    tcase_add_test(tc, test_node_without_a_start_command_says_what_to_add);
    tcase_add_test(tc, test_requirements_txt_is_python);
    tcase_add_test(tc, test_procfile_next_to_python_files_is_python_not_shell);
    tcase_add_test(tc, test_index_html_is_static_and_start_sh_is_shell);
    tcase_add_test(tc, test_language_given_overrides_markers);
    tcase_add_test(tc, test_undetectable_repo_lists_what_was_looked_for);
    tcase_add_test(tc, test_render_node_with_lockfile_uses_npm_ci);
    tcase_add_test(tc, test_render_escapes_the_start_command_as_json);
    tcase_add_test(tc, test_every_stack_renders_without_placeholders);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
