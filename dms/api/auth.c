/* auth.c - JWT verification and minting (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A longer header is not a token we issue; refusing early bounds the work an attacker can cause. */
#define AUTH_TOKEN_MAX 4096

static void jwt_freep(jwt_t **j)
{
    jwt_free(*j);
}
#define _cleanup_jwt_ __attribute__((cleanup(jwt_freep)))

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

int auth_verify(const char *token, const char *secret, char *user, size_t size, dms_error *err)
{
    if (!token || !*token)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "missing bearer token");
    if (strlen(token) > AUTH_TOKEN_MAX)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "token too long");
    _cleanup_jwt_ jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 || !jwt)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "invalid token");
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "token must be signed with HS256");
    time_t now = time(NULL);
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (errno != ENOENT && exp <= now)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "token expired");
    errno = 0;
    long nbf = jwt_get_grant_int(jwt, "nbf");
    if (errno != ENOENT && nbf > now)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "token not valid yet");
    const char *u = jwt_get_grant(jwt, "user_id");
    char num[32];
    if (!u) {
        errno = 0;
        long id = jwt_get_grant_int(jwt, "user_id");
        if (errno == ENOENT)
            return dms_error_set(err, DMS_E_INVALID, "Authorization", "token has no user_id");
        snprintf(num, sizeof(num), "%ld", id);
        u = num;
    }
    if (!user_valid(u) || strlen(u) >= size)
        return dms_error_set(err, DMS_E_INVALID, "Authorization",
                             "token user_id must be 1-%d printable characters", AUTH_USER_MAX);
    memcpy(user, u, strlen(u) + 1);
    return 0;
}

int auth_check_header(const char *header, const char *secret, char *user, size_t size, dms_error *err)
{
    static const char bearer[] = "Bearer ";
    if (!header || !*header)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "missing Authorization: Bearer <token>");
    if (strncasecmp(header, bearer, sizeof(bearer) - 1) != 0)
        return dms_error_set(err, DMS_E_INVALID, "Authorization", "Authorization must be \"Bearer <token>\"");
    const char *t = header + sizeof(bearer) - 1;
    while (*t == ' ')
        t++;
    return auth_verify(t, secret, user, size, err);
}

int auth_mint(const char *secret, const char *user, long ttl_sec, char **out, dms_error *err)
{
    if (!secret || !*secret)
        return dms_error_set(err, DMS_E_INVALID, "secret", "a JWT secret is required (DMS_JWT_SECRET)");
    if (!user || !user_valid(user))
        return dms_error_set(err, DMS_E_INVALID, "user_id", "user_id must be 1-%d printable characters",
                             AUTH_USER_MAX);
    _cleanup_jwt_ jwt_t *jwt = NULL;
    time_t now = time(NULL);
    if (jwt_new(&jwt) != 0 || jwt_add_grant(jwt, "user_id", user) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
        (ttl_sec > 0 && jwt_add_grant_int(jwt, "exp", (long)now + ttl_sec) != 0) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "could not build a token");
    char *s = jwt_encode_str(jwt);
    if (!s)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "could not encode a token");
    *out = s;
    return 0;
}
