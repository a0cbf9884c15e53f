/* test_dmsd_auth.c - JWT bearer tokens: what is accepted (HS256 with user_id) and every way a token is
 * refused. */
#include <check.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../dms/api/auth.h"

static const char *secret = "test-secret-of-reasonable-length-0123456789";

/* A token built through libjwt directly, for the shapes auth_mint refuses to make. */
static char *craft(jwt_alg_t alg, const char *key, const char *user, long exp, long nbf, long int_user)
{
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_new(&j), 0);
    if (user)
        jwt_add_grant(j, "user_id", user);
    if (int_user)
        jwt_add_grant_int(j, "user_id", int_user);
    if (exp)
        jwt_add_grant_int(j, "exp", exp);
    if (nbf)
        jwt_add_grant_int(j, "nbf", nbf);
    ck_assert_int_eq(jwt_set_alg(j, alg, key ? (const unsigned char *)key : NULL, key ? (int)strlen(key) : 0),
                     0);
    char *s = jwt_encode_str(j);
    jwt_free(j);
    ck_assert_ptr_nonnull(s);
    return s;
}

static int verify(const char *tok, char *user)
{
    dms_error err = {0};
    return auth_verify(tok, secret, user, AUTH_USER_MAX + 1, &err);
}

START_TEST(test_minted_token_verifies_and_names_the_user)
{
    char *tok = NULL;
    dms_error err = {0};
    ck_assert_int_eq(auth_mint(secret, "alice", 3600, &tok, &err), 0);
    char user[AUTH_USER_MAX + 1];
    ck_assert_int_eq(verify(tok, user), 0);
    ck_assert_str_eq(user, "alice");
    char hdr[1024];
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    ck_assert_int_eq(auth_check_header(hdr, secret, user, sizeof(user), &err), 0);
    snprintf(hdr, sizeof(hdr), "bearer %s", tok); /* the scheme is case-insensitive (RFC 7235) */
    ck_assert_int_eq(auth_check_header(hdr, secret, user, sizeof(user), &err), 0);
    free(tok);
}
END_TEST

START_TEST(test_integer_user_id_is_accepted)
{
    char *tok = craft(JWT_ALG_HS256, secret, NULL, 0, 0, 42);
    char user[AUTH_USER_MAX + 1];
    ck_assert_int_eq(verify(tok, user), 0);
    ck_assert_str_eq(user, "42");
    free(tok);
}
END_TEST

START_TEST(test_wrong_secret_is_refused)
{
    char *tok = craft(JWT_ALG_HS256, "another-secret-entirely-0123456789", "alice", 0, 0, 0);
    char user[AUTH_USER_MAX + 1];
    ck_assert_int_eq(verify(tok, user), -DMS_E_INVALID);
    free(tok);
}
END_TEST

START_TEST(test_other_algorithms_are_refused)
{
    char user[AUTH_USER_MAX + 1];
    char *tok = craft(JWT_ALG_HS512, secret, "alice", 0, 0, 0);
    ck_assert_int_eq(verify(tok, user), -DMS_E_INVALID);
    free(tok);
    /* alg "none": header {"alg":"none","typ":"JWT"}, payload {"user_id":"alice"}, empty signature */
    ck_assert_int_eq(verify("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ1c2VyX2lkIjoiYWxpY2UifQ.", user),
                     -DMS_E_INVALID);
    tok = craft(JWT_ALG_NONE, NULL, "alice", 0, 0, 0);
    ck_assert_int_eq(verify(tok, user), -DMS_E_INVALID);
    free(tok);
}
END_TEST

START_TEST(test_expired_and_not_yet_valid_tokens_are_refused)
{
    char user[AUTH_USER_MAX + 1];
    dms_error err = {0};
    char *tok = craft(JWT_ALG_HS256, secret, "alice", (long)time(NULL) - 10, 0, 0);
    ck_assert_int_eq(auth_verify(tok, secret, user, sizeof(user), &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.message, "token expired");
    free(tok);
    tok = craft(JWT_ALG_HS256, secret, "alice", 0, (long)time(NULL) + 600, 0);
    ck_assert_int_eq(verify(tok, user), -DMS_E_INVALID);
    free(tok);
    tok = craft(JWT_ALG_HS256, secret, "alice", (long)time(NULL) + 600, 0, 0);
    ck_assert_int_eq(verify(tok, user), 0);
    free(tok);
}
END_TEST

START_TEST(test_missing_or_malformed_tokens_are_refused)
{
    char user[AUTH_USER_MAX + 1];
    dms_error err = {0};
    char *tok = craft(JWT_ALG_HS256, secret, NULL, 0, 0, 0); /* no user_id */
    ck_assert_int_eq(auth_verify(tok, secret, user, sizeof(user), &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.message, "token has no user_id");
    free(tok);
    tok = craft(JWT_ALG_HS256, secret, "", 0, 0, 0);
    ck_assert_int_eq(verify(tok, user), -DMS_E_INVALID);
    free(tok);
    ck_assert_int_eq(verify("", user), -DMS_E_INVALID);
    ck_assert_int_eq(verify("not.a.token", user), -DMS_E_INVALID);
    ck_assert_int_eq(verify("garbage", user), -DMS_E_INVALID);
    ck_assert_int_eq(auth_check_header(NULL, secret, user, sizeof(user), &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_check_header("Basic YWxpY2U6eA==", secret, user, sizeof(user), &err),
                     -DMS_E_INVALID);
    ck_assert_int_eq(auth_check_header("Bearer ", secret, user, sizeof(user), &err), -DMS_E_INVALID);
    char *big = malloc(10000);
    memset(big, 'a', 9999);
    big[9999] = 0;
    ck_assert_int_eq(verify(big, user), -DMS_E_INVALID);
    free(big);
}
END_TEST

START_TEST(test_tampered_payload_is_refused)
{
    char *tok = NULL;
    dms_error err = {0};
    ck_assert_int_eq(auth_mint(secret, "alice", 0, &tok, &err), 0);
    /* swap the payload for {"user_id":"bob"} and keep alice's signature */
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    char forged[1024];
    snprintf(forged, sizeof(forged), "%.*s.eyJ1c2VyX2lkIjoiYm9iIn0%s", (int)(dot1 - tok), tok, dot2);
    char user[AUTH_USER_MAX + 1];
    ck_assert_int_eq(verify(forged, user), -DMS_E_INVALID);
    free(tok);
}
END_TEST

START_TEST(test_mint_refuses_empty_secret_or_user)
{
    char *tok = NULL;
    dms_error err = {0};
    ck_assert_int_eq(auth_mint("", "alice", 0, &tok, &err), -DMS_E_INVALID);
    ck_assert_int_eq(auth_mint(secret, "", 0, &tok, &err), -DMS_E_INVALID);
    ck_assert_ptr_null(tok);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dmsd_auth");
    TCase *tc = tcase_create("jwt");
    tcase_add_test(tc, test_minted_token_verifies_and_names_the_user);
    tcase_add_test(tc, test_integer_user_id_is_accepted);
    tcase_add_test(tc, test_wrong_secret_is_refused);
    tcase_add_test(tc, test_other_algorithms_are_refused);
    tcase_add_test(tc, test_expired_and_not_yet_valid_tokens_are_refused);
    tcase_add_test(tc, test_missing_or_malformed_tokens_are_refused);
    tcase_add_test(tc, test_tampered_payload_is_refused);
    tcase_add_test(tc, test_mint_refuses_empty_secret_or_user);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
