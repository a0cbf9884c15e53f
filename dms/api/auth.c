/* auth.c - JWT verification and minting (see auth.h). */
#include "auth.h"

#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A longer header is not a token we issue; refusing early bounds the work an attacker can cause. */
#define AUTH_TOKEN_MAX 4096

#define AUTH_FIELD "Authorization"

static void jwt_freep(jwt_t **j)
{
    jwt_free(*j);
}
#define _cleanup_jwt_ __attribute__((cleanup(jwt_freep)))

static void json_freep(json_t **j)
{
    json_decref(*j);
}

static bool set(const char *s)
{
    return s && *s;
}

static bool user_valid(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > AUTH_USER_MAX)
        return false;
    for (; *u; u++)
        if ((unsigned char)*u < 0x20 || *u == 0x7f)
            return false;
    return true;
}

/* A NumericDate claim (RFC 7519 4.1.4: a JSON number, possibly with a fraction). 1 and *out if present, 0 if
 * absent, or INVALID when it is there but not a finite number (a string "exp" must not read as "never"). */
static int claim_time(json_t *claims, const char *name, double *out, dms_error *err)
{
    json_t *v = json_object_get(claims, name);
    if (!v)
        return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token %s must be a number (seconds since 1970)",
                             name);
    *out = json_number_value(v);
    return 1;
}

static int check_times(json_t *claims, const auth_policy *pol, dms_error *err)
{
    double now = (double)time(NULL), exp = 0, nbf = 0;
    int has_exp = claim_time(claims, "exp", &exp, err);
    if (has_exp < 0)
        return has_exp;
    if (!has_exp && pol->require_exp)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD,
                             "token has no exp: tokens must expire (DMS_JWT_REQUIRE_EXP=0 allows it)");
    if (has_exp && exp <= now)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token expired");
    int has_nbf = claim_time(claims, "nbf", &nbf, err);
    if (has_nbf < 0)
        return has_nbf;
    if (has_nbf && nbf > now)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token not valid yet");
    return 0;
}

/* aud (RFC 7519 4.1.3) is one string or an array of them; the policy's audience must be among them. */
static bool audience_holds(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i,
                       v) if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return true;
    return false;
}

static int check_audience_issuer(json_t *claims, const auth_policy *pol, dms_error *err)
{
    if (set(pol->audience) && !audience_holds(json_object_get(claims, "aud"), pol->audience))
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token is not for this audience (aud)");
    json_t *iss = json_object_get(claims, "iss");
    if (set(pol->issuer) && !(json_is_string(iss) && strcmp(json_string_value(iss), pol->issuer) == 0))
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token is not from this issuer (iss)");
    return 0;
}

/* user_id: a string (without NULs), or an integer taken as its decimal form; any other type is refused. */
static int claim_user(json_t *claims, char *user, size_t size, dms_error *err)
{
    json_t *u = json_object_get(claims, "user_id");
    char num[32];
    const char *s = NULL;
    if (!u)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token has no user_id");
    if (json_is_string(u) && json_string_length(u) == strlen(json_string_value(u))) {
        s = json_string_value(u);
    } else if (json_is_integer(u)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(u));
        s = num;
    } else {
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token user_id must be a string or an integer");
    }
    if (!user_valid(s) || strlen(s) >= size)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD,
                             "token user_id must be 1-%d printable characters", AUTH_USER_MAX);
    memcpy(user, s, strlen(s) + 1);
    return 0;
}

int auth_verify(const char *token, const auth_policy *pol, char *user, size_t size, dms_error *err)
{
    if (!token || !*token)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "missing bearer token");
    if (strlen(token) > AUTH_TOKEN_MAX)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token too long");
    if (!pol || !set(pol->secret))
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "no JWT secret is configured");
    _cleanup_jwt_ jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)pol->secret, (int)strlen(pol->secret)) != 0 || !jwt)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "invalid token");
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "token must be signed with HS256");
    char *text = jwt_get_grants_json(jwt, NULL);
    __attribute__((cleanup(json_freep))) json_t *claims = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(claims))
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "invalid token: its payload is not an object");
    int r;
    if ((r = check_times(claims, pol, err)) < 0 || (r = check_audience_issuer(claims, pol, err)) < 0)
        return r;
    return claim_user(claims, user, size, err);
}

int auth_check_header(const char *header, const auth_policy *pol, char *user, size_t size, dms_error *err)
{
    static const char bearer[] = "Bearer ";
    if (!header || !*header)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "missing Authorization: Bearer <token>");
    if (strncasecmp(header, bearer, sizeof(bearer) - 1) != 0)
        return dms_error_set(err, DMS_E_INVALID, AUTH_FIELD, "Authorization must be \"Bearer <token>\"");
    const char *t = header + sizeof(bearer) - 1;
    while (*t == ' ')
        t++;
    return auth_verify(t, pol, user, size, err);
}

int auth_mint(const auth_policy *pol, const char *user, long ttl_sec, char **out, dms_error *err)
{
    if (!pol || !set(pol->secret))
        return dms_error_set(err, DMS_E_INVALID, "secret", "a JWT secret is required (DMS_JWT_SECRET)");
    if (!user || !user_valid(user))
        return dms_error_set(err, DMS_E_INVALID, "user_id", "user_id must be 1-%d printable characters",
                             AUTH_USER_MAX);
    time_t now = time(NULL);
    if (ttl_sec <= 0 || ttl_sec > LONG_MAX - (long)now)
        return dms_error_set(err, DMS_E_INVALID, "ttl",
                             "a token's lifetime must be a positive number of seconds");
    _cleanup_jwt_ jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0 || jwt_add_grant(jwt, "user_id", user) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)now + ttl_sec) != 0 ||
        (set(pol->audience) && jwt_add_grant(jwt, "aud", pol->audience) != 0) ||
        (set(pol->issuer) && jwt_add_grant(jwt, "iss", pol->issuer) != 0) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)pol->secret, (int)strlen(pol->secret)) != 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "could not build a token");
    char *s = jwt_encode_str(jwt);
    if (!s)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "could not encode a token");
    *out = s;
    return 0;
}
