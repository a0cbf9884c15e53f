/* test_dmsd_auth.c - JWT bearer tokens: what is accepted (HS256 with a string or integer user_id and an exp
 * in the future) and every way a token is refused: another algorithm or secret, no exp (unless the policy
 * relaxes it), exp or nbf of the wrong type or time, a user_id of any other JSON type, a missing or wrong aud
 * or iss when the policy names one. */
#include <check.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../dms/api/auth.h"
#include "testutil.h"

static const char *secret = "test-secret-of-reasonable-length-0123456789";
static const auth_policy strict = {.secret = "test-secret-of-reasonable-length-0123456789",
                                   .require_exp = true};

/* A token over a payload given as JSON (any claim of any type), built through libjwt directly: the shapes
 * auth_mint refuses to make. "<exp>" in the payload becomes a time an hour ahead. */
static char *craft(jwt_alg_t alg, const char *key, const char *payload)
{
    char json[1024];
    const char *at = strstr(payload, "<exp>");
    if (at)
        snprintf(json, sizeof(json), "%.*s%ld%s", (int)(at - payload), payload, (long)time(NULL) + 3600,
                 at + strlen("<exp>"));
    else
        snprintf(json, sizeof(json), "%s", payload);
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_new(&j), 0);
    ck_assert_msg(jwt_add_grants_json(j, json) == 0, "libjwt refused the payload %s", json);
    ck_assert_int_eq(jwt_set_alg(j, alg, key ? (const unsigned char *)key : NULL, key ? (int)strlen(key) : 0),
                     0);
    char *s = jwt_encode_str(j);
    jwt_free(j);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* auth_verify of a crafted HS256 token under pol: its result, the user in user, the message in msg. */
static int verify_payload(const auth_policy *pol, const char *payload, char *user, char *msg, size_t msg_size)
{
    char *tok = craft(JWT_ALG_HS256, secret, payload);
    dms_error err = {0};
    int r = auth_verify(tok, pol, user, AUTH_USER_MAX + 1, &err);
    if (r < 0) {
        ck_assert_str_eq(err.field, "Authorization");
        ck_assert_msg(strstr(err.message, tok) == NULL, "the error echoes the token");
    }
    if (msg)
        snprintf(msg, msg_size, "%s", err.message);
    free(tok);
    return r;
}

static void expect_refused(const auth_policy *pol, const char *payload, const char *says)
{
    char user[AUTH_USER_MAX + 1] = "", msg[DMS_ERROR_MSG_MAX];
    ck_assert_msg(verify_payload(pol, payload, user, msg, sizeof(msg)) == -DMS_E_INVALID,
                  "%s was accepted as user \"%s\"", payload, user);
    ck_assert_msg(strstr(msg, says), "%s: the error says \"%s\", not \"%s\"", payload, msg, says);
}

static void expect_user(const auth_policy *pol, const char *payload, const char *want)
{
    char user[AUTH_USER_MAX + 1] = "", msg[DMS_ERROR_MSG_MAX];
    ck_assert_msg(verify_payload(pol, payload, user, msg, sizeof(msg)) == 0, "%s was refused: %s", payload,
                  msg);
    ck_assert_str_eq(user, want);
}

START_TEST(test_minted_token_verifies_and_names_the_user)
{
    char *tok = NULL;
    dms_error err = {0};
    ck_assert_int_eq(auth_mint(&strict, "alice", 3600, &tok, &err), 0);
    char user[AUTH_USER_MAX + 1];
    ck_assert_int_eq(auth_verify(tok, &strict, user, sizeof(user), &err), 0);
    ck_assert_str_eq(user, "alice");
    char hdr[1024];
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    ck_assert_int_eq(auth_check_header(hdr, &strict, user, sizeof(user), &err), 0);
    snprintf(hdr, sizeof(hdr), "bearer %s", tok); /* the scheme is case-insensitive (RFC 7235) */
    ck_assert_int_eq(auth_check_header(hdr, &strict, user, sizeof(user), &err), 0);
    free(tok);
}
END_TEST

START_TEST(test_a_minted_token_always_expires)
{
    char *tok = NULL;
    dms_error err = {0};
    ck_assert_int_eq(auth_mint(&strict, "alice", 0, &tok, &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_mint(&strict, "alice", -5, &tok, &err), -DMS_E_INVALID);
    ck_assert_ptr_null(tok);
}
END_TEST

START_TEST(test_integer_user_id_is_its_decimal_form)
{
    expect_user(&strict, "{\"user_id\": 42, \"exp\": <exp>}", "42");
    expect_user(&strict, "{\"user_id\": 0, \"exp\": <exp>}", "0");
    expect_user(&strict, "{\"user_id\": \"42\", \"exp\": <exp>}", "42"); /* the same user as 42 */
}
END_TEST

START_TEST(test_user_id_of_any_other_type_is_refused)
{
    /* Each of these used to become user "0" through jwt_get_grant_int. */
    static const char *const payloads[] = {
        "{\"user_id\": true, \"exp\": <exp>}",        "{\"user_id\": false, \"exp\": <exp>}",
        "{\"user_id\": 1.5, \"exp\": <exp>}",         "{\"user_id\": 0.0, \"exp\": <exp>}",
        "{\"user_id\": null, \"exp\": <exp>}",        "{\"user_id\": {}, \"exp\": <exp>}",
        "{\"user_id\": [], \"exp\": <exp>}",          "{\"user_id\": [\"alice\"], \"exp\": <exp>}",
        "{\"user_id\": {\"id\": 1}, \"exp\": <exp>}",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        expect_refused(&strict, payloads[i], "user_id must be a string or an integer");
    expect_refused(&strict, "{\"user_id\": \"\", \"exp\": <exp>}", "user_id must be 1-");
    expect_refused(&strict, "{\"user_id\": \"a\\nb\", \"exp\": <exp>}", "user_id must be 1-");
    expect_refused(&strict, "{\"exp\": <exp>}", "token has no user_id");
    expect_refused(&strict, "{\"sub\": \"alice\", \"exp\": <exp>}", "token has no user_id");
}
END_TEST

START_TEST(test_a_token_without_exp_is_refused_unless_the_policy_relaxes_it)
{
    expect_refused(&strict, "{\"user_id\": \"alice\"}", "DMS_JWT_REQUIRE_EXP=0");
    auth_policy lax = strict;
    lax.require_exp = false;
    expect_user(&lax, "{\"user_id\": \"alice\"}", "alice");
    /* Relaxed, an exp that is there still counts. */
    char past[128];
    snprintf(past, sizeof(past), "{\"user_id\": \"alice\", \"exp\": %ld}", (long)time(NULL) - 10);
    expect_refused(&lax, past, "token expired");
}
END_TEST

START_TEST(test_exp_and_nbf_must_be_numbers_in_the_right_place_in_time)
{
    char p[160];
    long now = (long)time(NULL);
    snprintf(p, sizeof(p), "{\"user_id\": \"alice\", \"exp\": %ld}", now - 10);
    expect_refused(&strict, p, "token expired");
    snprintf(p, sizeof(p), "{\"user_id\": \"alice\", \"exp\": %ld}", now);
    expect_refused(&strict, p, "token expired");
    snprintf(p, sizeof(p), "{\"user_id\": \"alice\", \"exp\": %ld.5}", now + 600);
    expect_user(&strict, p, "alice"); /* a NumericDate may have a fraction */
    expect_refused(&strict, "{\"user_id\": \"alice\", \"exp\": \"tomorrow\"}", "exp must be a number");
    expect_refused(&strict, "{\"user_id\": \"alice\", \"exp\": null}", "exp must be a number");
    expect_refused(&strict, "{\"user_id\": \"alice\", \"exp\": true}", "exp must be a number");
    snprintf(p, sizeof(p), "{\"user_id\": \"alice\", \"exp\": <exp>, \"nbf\": %ld}", now + 600);
    expect_refused(&strict, p, "not valid yet");
    expect_refused(&strict, "{\"user_id\": \"alice\", \"exp\": <exp>, \"nbf\": \"now\"}",
                   "nbf must be a number");
    snprintf(p, sizeof(p), "{\"user_id\": \"alice\", \"exp\": <exp>, \"nbf\": %ld}", now - 600);
    expect_user(&strict, p, "alice");
}
END_TEST

START_TEST(test_audience_and_issuer_are_checked_when_the_policy_names_them)
{
    auth_policy pol = strict;
    pol.audience = "dms-prod";
    expect_refused(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>}", "audience");
    expect_refused(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": \"dms-test\"}", "audience");
    expect_refused(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": [\"a\", \"b\"]}", "audience");
    expect_refused(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": [[\"dms-prod\"]]}", "audience");
    expect_refused(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": \"dms-prod2\"}", "audience");
    expect_user(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": \"dms-prod\"}", "alice");
    expect_user(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": [\"x\", \"dms-prod\"]}", "alice");
    pol.issuer = "https://id.example";
    expect_refused(&pol, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": \"dms-prod\"}", "issuer");
    expect_refused(
        &pol,
        "{\"user_id\": \"a\", \"exp\": <exp>, \"aud\": \"dms-prod\", \"iss\": [\"https://id.example\"]}",
        "issuer");
    expect_user(
        &pol, "{\"user_id\": \"a\", \"exp\": <exp>, \"aud\": \"dms-prod\", \"iss\": \"https://id.example\"}",
        "a");
    /* Without an audience in the policy, aud is not looked at. */
    expect_user(&strict, "{\"user_id\": \"alice\", \"exp\": <exp>, \"aud\": \"anything\"}", "alice");
    /* A token minted under the policy carries what it asks for. */
    char *tok = NULL, user[AUTH_USER_MAX + 1];
    dms_error err = {0};
    ck_assert_int_eq(auth_mint(&pol, "alice", 60, &tok, &err), 0);
    ck_assert_int_eq(auth_verify(tok, &pol, user, sizeof(user), &err), 0);
    free(tok);
}
END_TEST

START_TEST(test_wrong_secret_is_refused)
{
    char *tok = craft(JWT_ALG_HS256, "another-secret-entirely-0123456789",
                      "{\"user_id\": \"alice\", \"exp\": <exp>}");
    char user[AUTH_USER_MAX + 1];
    dms_error err = {0};
    ck_assert_int_eq(auth_verify(tok, &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    free(tok);
}
END_TEST

START_TEST(test_other_algorithms_are_refused)
{
    char user[AUTH_USER_MAX + 1];
    dms_error err = {0};
    char *tok = craft(JWT_ALG_HS512, secret, "{\"user_id\": \"alice\", \"exp\": <exp>}");
    ck_assert_int_eq(auth_verify(tok, &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    free(tok);
    /* alg "none": header {"alg":"none","typ":"JWT"}, payload {"user_id":"alice"}, empty signature */
    ck_assert_int_eq(auth_verify("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ1c2VyX2lkIjoiYWxpY2UifQ.", &strict,
                                 user, sizeof(user), &err),
                     -DMS_E_INVALID);
    tok = craft(JWT_ALG_NONE, NULL, "{\"user_id\": \"alice\", \"exp\": <exp>}");
    ck_assert_int_eq(auth_verify(tok, &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    free(tok);
}
END_TEST

START_TEST(test_missing_or_malformed_tokens_are_refused)
{
    char user[AUTH_USER_MAX + 1];
    dms_error err = {0};
    ck_assert_int_eq(auth_verify("", &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_verify("not.a.token", &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_verify("garbage", &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_check_header(NULL, &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_check_header("Basic YWxpY2U6eA==", &strict, user, sizeof(user), &err),
                     -DMS_E_INVALID);
    ck_assert_int_eq(auth_check_header("Bearer ", &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    char *big = malloc(10000);
    memset(big, 'a', 9999);
    big[9999] = 0;
    ck_assert_int_eq(auth_verify(big, &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    free(big);
    /* No secret configured: nothing verifies, not even a token that is good under a secret. */
    auth_policy none = {.secret = "", .require_exp = true};
    char *tok = craft(JWT_ALG_HS256, secret, "{\"user_id\": \"alice\", \"exp\": <exp>}");
    ck_assert_int_eq(auth_verify(tok, &none, user, sizeof(user), &err), -DMS_E_INVALID);
    free(tok);
}
END_TEST

START_TEST(test_tampered_payload_is_refused)
{
    char *tok = NULL;
    dms_error err = {0};
    ck_assert_int_eq(auth_mint(&strict, "alice", 600, &tok, &err), 0);
    /* swap the payload for {"user_id":"bob"} and keep alice's signature */
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    char forged[1024];
    snprintf(forged, sizeof(forged), "%.*s.eyJ1c2VyX2lkIjoiYm9iIn0%s", (int)(dot1 - tok), tok, dot2);
    char user[AUTH_USER_MAX + 1];
    ck_assert_int_eq(auth_verify(forged, &strict, user, sizeof(user), &err), -DMS_E_INVALID);
    free(tok);
}
END_TEST

START_TEST(test_mint_refuses_empty_secret_or_user)
{
    char *tok = NULL;
    dms_error err = {0};
    auth_policy none = {.secret = ""};
    ck_assert_int_eq(auth_mint(&none, "alice", 60, &tok, &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_mint(&strict, "", 60, &tok, &err), -DMS_E_INVALID);
    ck_assert_ptr_null(tok);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_auth");
    TCase *tc = tcase_create("jwt");
    tcase_add_test(tc, test_minted_token_verifies_and_names_the_user);
    tcase_add_test(tc, test_a_minted_token_always_expires);
    tcase_add_test(tc, test_integer_user_id_is_its_decimal_form);
    tcase_add_test(tc, test_user_id_of_any_other_type_is_refused);
    tcase_add_test(tc, test_a_token_without_exp_is_refused_unless_the_policy_relaxes_it);
    tcase_add_test(tc, test_exp_and_nbf_must_be_numbers_in_the_right_place_in_time);
    tcase_add_test(tc, test_audience_and_issuer_are_checked_when_the_policy_names_them);
    tcase_add_test(tc, test_wrong_secret_is_refused);
    tcase_add_test(tc, test_other_algorithms_are_refused);
    tcase_add_test(tc, test_missing_or_malformed_tokens_are_refused);
    tcase_add_test(tc, test_tampered_payload_is_refused);
    tcase_add_test(tc, test_mint_refuses_empty_secret_or_user);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
