/* test_dmsd_dockerfile.c - what a repository's Dockerfile may reach (build/dfpolicy.c), read as the engine
 * reads it (build/dockerfile.c, executor/dflines.c), and image references (build/imageref.c).
 *
 * The user here owns the droid "dmine1"; "dother" is another user's. Every refusal must name the line. The
 * engine facts the cases rely on were measured on Docker 20.10 (classic builder): `FROM 3528` (a 4-hex id
 * prefix) builds, ARG/ENV values and quotes are resolved in FROM and in ADD sources (JSON form included),
 * COPY --from is not expanded, stage names match in any case. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dms/backend.h>

#include "util.h"

#include "../../dms/build/dfpolicy.h"
#include "../../dms/build/dockerfile.h"
#include "../../dms/build/imageref.h"
#include "testutil.h"

static bool own(void *ud, const char *droid_id)
{
    (void)ud;
    return strcmp(droid_id, "dmine1") == 0;
}

static int check_with(const char *allowed, char *const *build_args, const char *text, dms_error *err)
{
    dfp_policy p = {.allowed = allowed, .own_droid = own, .build_args = build_args};
    return dfp_check(text, strlen(text), &p, err);
}

static void allowed_with(const char *allowed, const char *text)
{
    dms_error err = {0};
    int r = check_with(allowed, NULL, text, &err);
    ck_assert_msg(r == 0, "refused: %s\n--- Dockerfile ---\n%s", err.message, text);
}

static void allowed(const char *text)
{
    allowed_with("", text);
}

static void refused_with(const char *allowed_list, char *const *args, const char *text, int line,
                         const char *mention)
{
    dms_error err = {0};
    int r = check_with(allowed_list, args, text, &err);
    ck_assert_msg(r == -DMS_E_BUILD_FAILED, "not refused (%d)\n--- Dockerfile ---\n%s", r, text);
    ck_assert_str_eq(err.field, "dockerfile");
    char want[32];
    snprintf(want, sizeof(want), "Dockerfile line %d: ", line);
    ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "wanted %s..., got: %s", want, err.message);
    ck_assert_msg(strstr(err.message, mention), "the reason does not mention %s: %s", mention, err.message);
}

static void refused(const char *text, int line, const char *mention)
{
    refused_with("", NULL, text, line, mention);
}

/* ---- the images a build may start from ---- */

START_TEST(test_stack_images_and_the_users_own_droids_are_allowed)
{
    allowed("FROM dms-stack/busybox:latest\n");
    allowed("FROM dms-stack/busybox\n");
    allowed("FROM docker.io/dms-stack/node:latest\n");
    allowed("from dms-droid/dmine1:b3\nRUN true\n");
    allowed("FROM scratch\nCOPY . /\n");
    allowed("FROM --platform=linux/amd64 dms-stack/busybox AS base\n");
}
END_TEST

START_TEST(test_another_users_droid_image_is_refused_naming_the_line)
{
    refused("FROM dms-droid/dother:b1\n", 1, "FROM dms-droid/dother:b1");
    refused("FROM dms-stack/busybox\nRUN true\nFROM dms-droid/dother:b1 AS x\n", 3,
            "not an image this build may use");
    refused("FROM docker.io/dms-droid/dother:b1\n", 1, "dms-droid/dother:b1");
    refused("FROM dms-droid/dmine1/x:b1\n", 1, "dms-droid/dmine1/x:b1");
    refused("FROM dms-droid/dmine1@sha256:"
            "3528a7c9eeed562b6015e892f1f1f2a30334b8a9607f24a586c4f40ef752f00b\n",
            1, "digest");
}
END_TEST

/* The engine looks up a reference it has no tag for as an image-id prefix of any length. */
START_TEST(test_image_ids_and_digests_are_refused_unless_listed_exactly)
{
    refused("FROM 3528a7c9eeed\n", 1, "image id or digest");
    refused("FROM 3528\n", 1, "image id");
    refused("FROM sha256:3528a7c9eeed562b\n", 1, "image id");
    refused("FROM 0\n", 1, "image id"); /* FROM takes no stage number: 0 is an id prefix to the engine */
    refused_with("*", NULL, "FROM 3528a7c9eeed\n", 1, "names it exactly");
    allowed_with("3528a7c9eeed", "FROM 3528a7c9eeed\n");
    refused_with("3528a7c9eeed", NULL, "FROM 3528a7c9\n", 1, "image id");
}
END_TEST

START_TEST(test_the_operators_list_allows_exact_references_and_prefixes)
{
    allowed_with("dms-test/*", "FROM dms-test/web:latest\n");
    allowed_with(" busybox:1.36 , dms-test/* ", "FROM docker.io/library/busybox:1.36\nFROM busybox:1.36\n");
    refused_with("busybox:1.36", NULL, "FROM busybox\n", 1, "busybox");
    refused_with("dms-test/*", NULL, "FROM dms-testing/x\n", 1, "dms-testing/x");
    allowed_with("*", "FROM alpine:3\n");
}
END_TEST

/* ---- ARG, quotes, continuations, directives ---- */

START_TEST(test_arg_substitution_in_from_is_resolved_before_the_check)
{
    refused("ARG B=dms-droid/dother:b1\nFROM $B\n", 2, "dms-droid/dother:b1");
    refused("ARG B=dms-droid/dother\nARG T=b1\nFROM ${B}:${T}\n", 3, "dms-droid/dother:b1");
    refused("ARG B\nFROM ${B:-dms-droid/dother:b1}\n", 2, "dms-droid/dother:b1");
    refused("ARG B=x\nFROM dms-stack/${B:+../dms-droid/dother:b1}\n", 2, "not a valid image reference");
    refused("ARG A=dms-droid\nARG B=$A/dother:b1\nFROM $B\n", 3, "dms-droid/dother:b1");
    refused("FROM \"dms-droid/dother\":b1\n", 1, "dms-droid/dother:b1");
    refused("FROM dms-'droid'/dother:b1\n", 1, "dms-droid/dother:b1");
    allowed("ARG B=dms-stack/busybox\nFROM $B\nARG B=dms-droid/dother:b1\nFROM $B\n");
    allowed("ARG B\nFROM ${B:-dms-stack/busybox}\n");
    /* Only ARGs before the first FROM reach FROM; one in a stage does not. */
    refused("ARG B=dms-droid/dother:b1\nFROM dms-stack/busybox\nARG B=dms-stack/node\nFROM $B\n", 4,
            "dother");
    /* A build arg overrides the default, as the engine's buildargs= does. */
    char *args[] = {"B=dms-droid/dother:b1", NULL};
    refused_with("", args, "ARG B=dms-stack/busybox\nFROM $B\n", 2, "dms-droid/dother:b1");
    /* ...but only for a declared ARG. */
    dms_error err = {0};
    ck_assert_int_eq(check_with("", args, "FROM ${B:-dms-stack/busybox}\n", &err), 0);
}
END_TEST

START_TEST(test_continuations_comments_and_the_escape_directive_are_read_as_the_engine_reads_them)
{
    refused("FROM dms-stack/busybox\nFROM \\\n# a comment\n\n   dms-droid/dother:b1 \\\n  AS x\n", 2,
            "dother");
    /* A FROM inside a RUN's continuation is part of the RUN. */
    allowed("FROM dms-stack/busybox\nRUN echo \\\n# c\nFROM dms-droid/dother:b1\n");
    /* With escape=` a backslash continues nothing. */
    refused("# escape=`\nFROM dms-stack/busybox\nRUN echo \\\nFROM dms-droid/dother:b1\n", 4, "dother");
    allowed("# escape=`\nFROM dms-stack/busybox\nRUN echo `\nFROM dms-droid/dother:b1\n");
    /* A directive after a comment is a comment: the escape stays a backslash. */
    refused("# c\n# escape=`\nFROM dms-stack/busybox\nRUN echo `\nFROM dms-droid/dother:b1\n", 5, "dother");
    refused("\xEF\xBB\xBF"
            "FROM dms-droid/dother:b1\r\n",
            1, "dother");
    refused("  FROM\tdms-droid/dother:b1  \n", 1, "dother");
}
END_TEST

START_TEST(test_stage_names_match_in_any_case_and_only_earlier_stages)
{
    allowed(
        "FROM dms-stack/node AS Build\nRUN make\nFROM build\nCOPY --from=BUILD /a /b\nCOPY --from=0 /a /b\n");
    /* A stage cannot start from itself: the name is an image until the stage is done. */
    refused("FROM x AS x\n", 1, "FROM x");
    refused("FROM dms-stack/busybox AS a\nFROM a AS b\nFROM B AS a\n", 3, "used twice");
    refused("FROM dms-stack/busybox AS Dms-Droid/dother\n", 1, "stage name");
    /* COPY --from= names an image when no earlier stage has the name; the engine does not expand it. */
    refused("FROM dms-stack/busybox AS a\nCOPY --from=dms-droid/dother:b1 /x /y\n", 2,
            "COPY --from dms-droid/dother");
    refused("FROM dms-stack/busybox AS a\nCOPY --from=a /x /y\n", 2, "COPY --from a");
    refused("ARG X=a\nFROM dms-stack/busybox AS a\nCOPY --from=$X /x /y\n", 3, "not a valid image reference");
    refused("FROM dms-stack/busybox\nCOPY --from=\"dms-droid/dother:b1\" /x /y\n", 2, "dother");
    refused("FROM dms-stack/busybox\nCOPY --from=3528a7c9eeed /x /y\n", 2, "image id");
    allowed("FROM dms-stack/busybox\nCOPY --from=dms-stack/node:latest /x /y\nCOPY --chown=1:1 a b\n");
}
END_TEST

/* ---- ADD ---- */

START_TEST(test_add_from_a_url_or_a_git_remote_is_refused)
{
    refused("FROM dms-stack/busybox\nADD http://127.0.0.1:9/secret /x\n", 2, "URL");
    refused("FROM dms-stack/busybox\nADD a.txt https://x/y /dst/\n", 2, "https://x/y");
    refused("FROM dms-stack/busybox\nADD [\"ftp://h/x\", \"/y\"]\n", 2, "URL");
    refused("FROM dms-stack/busybox\nADD h\"ttp\"://127.0.0.1/x /y\n", 2, "URL");
    refused("FROM dms-stack/busybox\nADD git@github.com:a/b.git /src\n", 2, "git");
    refused("FROM dms-stack/busybox\nADD --chown=1 \\\n  http://x/y /z\n", 2, "URL");
    refused("FROM scratch\nARG U=http://127.0.0.1:9/x\nADD $U /y\n", 3, "URL");
    refused("FROM scratch\nENV U=http://127.0.0.1:9/x\nADD [\"${U}\", \"/y\"]\n", 3, "URL");
    refused("FROM dms-stack/busybox\nADD [\"a\" /y\n", 2, "JSON");
    refused("FROM dms-stack/busybox\nADD --checksum=sha256:x a /y\n", 2, "flag");
    allowed("FROM dms-stack/busybox\nADD site.tar.gz /www/\nADD [\"a b\", \"c\", \"/d/\"]\n");
}
END_TEST

/* A base image's environment comes first in the engine's expansion: an ARG of the stage does not decide what
 * $U is there, only an ENV of the Dockerfile does. */
START_TEST(test_add_sources_we_cannot_resolve_are_refused_unless_already_a_path)
{
    refused("FROM dms-stack/busybox\nARG U=./local\nADD $U /y\n", 3, "cannot tell");
    refused("FROM dms-stack/busybox\nADD ${U}x /y\n", 2, "cannot tell");
    allowed("FROM dms-stack/busybox\nENV U=./local\nADD $U /y\n");
    allowed("FROM dms-stack/busybox\nADD ./files/$U /y\nADD /abs/${U:-x} /z\n");
    allowed("FROM scratch\nARG U=./local\nADD $U /y\n");
    /* A stage from a stage from scratch knows its environment, unless the earlier stage had ONBUILD triggers.
     */
    allowed("FROM scratch AS a\nENV U=./x\nFROM a\nADD $U /y\n");
    refused("FROM scratch AS a\nONBUILD RUN true\nFROM a\nARG U=./x\nADD $U /y\n", 5, "cannot tell");
    /* An ENV whose name we cannot read hides every variable of the stage. */
    refused("FROM scratch\nENV $K=x\nARG U=./x\nADD $U /y\n", 4, "cannot tell");
}
END_TEST

/* ---- ONBUILD and the rest of the grammar ---- */

START_TEST(test_onbuild_triggers_are_checked_as_the_later_build_will_run_them)
{
    refused("FROM dms-stack/busybox\nONBUILD COPY --from=dms-droid/dother:b1 /x /y\n", 2,
            "ONBUILD COPY --from");
    refused("FROM dms-stack/busybox\nONBUILD ADD http://127.0.0.1:9/x /y\n", 2, "ONBUILD ADD");
    refused("FROM dms-stack/busybox\nONBUILD ADD $U /y\n", 2, "cannot tell");
    refused("FROM dms-stack/busybox\nONBUILD FROM dms-stack/node\n", 2, "ONBUILD trigger");
    refused("FROM dms-stack/busybox\nonbuild onbuild RUN x\n", 2, "ONBUILD trigger");
    /* A stage name in a trigger is looked up in the later build: we check it as an image. */
    refused("FROM dms-stack/busybox AS b\nONBUILD COPY --from=b /x /y\n", 2, "COPY --from b");
    allowed("FROM dms-stack/busybox\nONBUILD RUN make\nONBUILD COPY --from=0 /x /y\nONBUILD ADD ./a /b\n");
}
END_TEST

START_TEST(test_whatever_is_not_understood_is_refused)
{
    refused("RUN true\nFROM dms-stack/busybox\n", 1, "before the first FROM");
    refused("FROM dms-stack/busybox\nFETCH x\n", 2, "unknown instruction");
    refused("FROM\xC2\xA0"
            "dms-droid/dother:b1\n",
            1, "unknown instruction");
    refused("FROM dms-stack/busybox\nRUN --mount=type=bind,from=dms-droid/dother:b1,target=/x cat /x\n", 2,
            "RUN");
    refused("FROM dms-stack/busybox\nCOPY --from=a --from=b /x /y\n", 2, "twice");
    refused("FROM dms-stack/busybox AS\n", 1, "FROM takes");
    refused("FROM $UNSET\n", 1, "cannot be resolved");
    refused("FROM ${B?x}\n", 1, "FROM ${B?x}");
    refused("FROM \"dms-stack/busybox\n", 1, "unexpected end");
    refused("ARG $X=1\nFROM dms-stack/busybox\n", 1, "not a plain name");
    dms_error err = {0};
    ck_assert_int_eq(check_with("", NULL, "# only a comment\n", &err), -DMS_E_BUILD_FAILED);
    ck_assert_ptr_nonnull(strstr(err.message, "no FROM"));
    ck_assert_int_eq(check_with("", NULL, "FROM dms-stack/busybox\n# escape=`\n# escape=\\\n", &err), 0);
    ck_assert_int_eq(check_with("", NULL, "# escape=`\n# escape=`\nFROM dms-stack/busybox\n", &err),
                     -DMS_E_BUILD_FAILED);
    char line[DMS_DF_LINE_MAX + 64];
    memset(line, 'a', sizeof(line) - 1);
    memcpy(line, "FROM dms-stack/busybox\nRUN ", 27);
    line[sizeof(line) - 1] = '\0';
    ck_assert_int_eq(check_with("", NULL, line, &err), -DMS_E_BUILD_FAILED);
    ck_assert_ptr_nonnull(strstr(err.message, "longer than"));
}
END_TEST

/* ---- the pieces ---- */

static df_var env_lookup(void *ud, const char *name, const char **value)
{
    (void)ud;
    if (!strcmp(name, "SET")) {
        *value = "v";
        return DF_VAR_SET;
    }
    if (!strcmp(name, "EMPTY")) {
        *value = "";
        return DF_VAR_SET;
    }
    return strcmp(name, "UNKNOWN") ? DF_VAR_UNSET : DF_VAR_UNKNOWN;
}

static void expands(const char *word, char esc, const char *want, bool want_unresolved)
{
    char *out = NULL;
    bool unresolved = false;
    dms_error err = {0};
    ck_assert_msg(df_expand(word, esc, env_lookup, NULL, &out, &unresolved, &err) == 0, "%s: %s", word,
                  err.message);
    ck_assert_msg(strcmp(out, want) == 0 && unresolved == want_unresolved, "%s -> [%s]%s, want [%s]%s", word,
                  out, unresolved ? " unresolved" : "", want, want_unresolved ? " unresolved" : "");
    free(out);
}

START_TEST(test_words_expand_as_the_engines_shell_lexer_does)
{
    expands("a$SET-${SET}x", '\\', "av-vx", false);
    expands("${NONE:-d}${SET:-d}${EMPTY:-e}", '\\', "dve", false);
    expands("${NONE:+p}${SET:+p}", '\\', "p", false);
    expands("'$SET' \"$SET\" \\$SET", '\\', "$SET v $SET", false);
    expands("\"a\\\"b\\c\"", '\\', "a\"b\\c", false);
    expands("`$SET", '`', "$SET", false);
    expands("$ $1 $", '\\', "$  $", false);
    expands("./a/$UNKNOWN/b", '\\', "./a/", true);
    expands("${UNKNOWN:-x}y", '\\', "", true);
    const char *bad[] = {"\"open", "'open", "${", "${}", "${SET", "${SET?x}", "${SET:=x}", "a\xff", NULL};
    for (size_t i = 0; bad[i]; i++) {
        char *out = NULL;
        bool unresolved;
        dms_error err = {0};
        ck_assert_msg(df_expand(bad[i], '\\', env_lookup, NULL, &out, &unresolved, &err) == -DMS_E_INVALID,
                      "%s was accepted", bad[i]);
    }
}
END_TEST

START_TEST(test_instructions_are_cut_into_keyword_flags_and_arguments)
{
    const char *text = "copy --from=\"a b\" --chown=1:1  src dst \nENV a=\"b c\" d=e\n";
    df_file f;
    dms_error err = {0};
    ck_assert_int_eq(df_parse(text, strlen(text), &f, &err), 0);
    ck_assert_int_eq((int)f.n, 2);
    ck_assert_str_eq(f.v[0].cmd, "copy");
    ck_assert_str_eq(f.v[0].flags[0], "--from=a b");
    ck_assert_str_eq(f.v[0].flags[1], "--chown=1:1");
    ck_assert_ptr_null(f.v[0].flags[2]);
    ck_assert_str_eq(f.v[0].args, "src dst");
    ck_assert_int_eq(f.v[1].line, 2);
    char **w = df_words(f.v[1].args, f.escape);
    ck_assert_str_eq(w[0], "a=\"b c\"");
    ck_assert_str_eq(w[1], "d=e");
    ck_assert_ptr_null(w[2]);
    dmsu_strv_free(w);
    df_file_clear(&f);
}
END_TEST

static const char *canon(const char *ref)
{
    static imgref r;
    if (!imgref_parse(ref, &r))
        return "(invalid)";
    return r.pinned ? "(pinned)" : r.canon;
}

START_TEST(test_image_references_take_their_familiar_form)
{
    ck_assert_str_eq(canon("busybox"), "busybox:latest");
    ck_assert_str_eq(canon("docker.io/library/busybox:1.36"), "busybox:1.36");
    ck_assert_str_eq(canon("index.docker.io/dms-stack/node"), "dms-stack/node:latest");
    ck_assert_str_eq(canon("library/busybox"), "busybox:latest");
    ck_assert_str_eq(canon("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
    ck_assert_str_eq(canon("x/a__b.c-d/e--f"), "x/a__b.c-d/e--f:latest");
    ck_assert_str_eq(canon("3528a7c9eeed"), "(pinned)");
    ck_assert_str_eq(canon("sha256:abc"), "(pinned)");
    ck_assert_str_eq(canon("x@sha256:abc"), "(pinned)");
    ck_assert_str_eq(canon("3528:latest"),
                     "3528:latest"); /* with a tag, the engine does not take it for an id */
    const char *bad[] = {
        "DMS-stack/x", "a//b", "a/", "/a", "a:b:c", "a:", "-a", "a_-b", "a b", "a$b", "", NULL};
    for (size_t i = 0; bad[i]; i++)
        ck_assert_msg(!strcmp(canon(bad[i]), "(invalid)"), "%s was taken as %s", bad[i], canon(bad[i]));
}
END_TEST

START_TEST(test_the_allow_list_is_validated_entry_by_entry)
{
    dms_error err = {0};
    ck_assert_int_eq(dfp_allowlist_validate("", &err), 0);
    ck_assert_int_eq(dfp_allowlist_validate("dms-test/*, busybox:1.36,,3528a7c9eeed, *", &err), 0);
    ck_assert_int_eq(dfp_allowlist_validate("dms-test/*,Busybox", &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "\"Busybox\""));
    ck_assert_int_eq(dfp_allowlist_validate("dms-*-x", &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "DMS_BUILD_ALLOWED_IMAGES");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_dockerfile");
    TCase *tc = tcase_create("policy");
    tcase_add_test(tc, test_stack_images_and_the_users_own_droids_are_allowed);
    tcase_add_test(tc, test_another_users_droid_image_is_refused_naming_the_line);
    tcase_add_test(tc, test_image_ids_and_digests_are_refused_unless_listed_exactly);
    tcase_add_test(tc, test_the_operators_list_allows_exact_references_and_prefixes);
    tcase_add_test(tc, test_arg_substitution_in_from_is_resolved_before_the_check);
    tcase_add_test(tc,
                   test_continuations_comments_and_the_escape_directive_are_read_as_the_engine_reads_them);
    tcase_add_test(tc, test_stage_names_match_in_any_case_and_only_earlier_stages);
    tcase_add_test(tc, test_add_from_a_url_or_a_git_remote_is_refused);
    tcase_add_test(tc, test_add_sources_we_cannot_resolve_are_refused_unless_already_a_path);
    tcase_add_test(tc, test_onbuild_triggers_are_checked_as_the_later_build_will_run_them);
    tcase_add_test(tc, test_whatever_is_not_understood_is_refused);
    suite_add_tcase(s, tc);
    TCase *pieces = tcase_create("pieces");
    tcase_add_test(pieces, test_words_expand_as_the_engines_shell_lexer_does);
    tcase_add_test(pieces, test_instructions_are_cut_into_keyword_flags_and_arguments);
    tcase_add_test(pieces, test_image_references_take_their_familiar_form);
    tcase_add_test(pieces, test_the_allow_list_is_validated_entry_by_entry);
    suite_add_tcase(s, pieces);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
