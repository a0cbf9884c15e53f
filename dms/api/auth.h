/* api/auth.h - JWT bearer tokens (HS256, libjwt 1.10): verify a request's token, mint one (dmsctl,
 * run-example).
 *
 * A token's payload carries {"user_id": ...}: a non-empty string of printable characters, or an integer,
 * which names the user by its decimal form (so 42 and "42" are the same user). Any other JSON type (true,
 * 1.5, null, {}, []) is refused, never turned into a user. Claims are read from the payload's JSON with their
 * types checked, not through libjwt's typed getters (which answer 0 for a grant of another type):
 *   exp  required unless the policy relaxes it (DMS_JWT_REQUIRE_EXP=0); a number; the token is refused from
 *        that second on;
 *   nbf  optional; a number; refused before it;
 *   aud  when the policy names an audience: the token's aud is that string, or an array that holds it;
 *   iss  when the policy names an issuer: the token's iss is that string.
 * Only HS256 is accepted: a token with another algorithm (including "none") is refused even if it would
 * verify. Every refusal is -DMS_E_INVALID with field "Authorization" and a message that names the claim but
 * never echoes the token. Thread-safe.
 */
#ifndef DMSD_API_AUTH_H
#define DMSD_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <dms/error.h>

#define AUTH_USER_MAX 128

/* What a token must satisfy (and what a minted one carries). Borrowed strings. */
typedef struct auth_policy {
    const char *secret;   /* the HS256 key (DMS_JWT_SECRET) */
    bool require_exp;     /* a token without "exp" is refused (DMS_JWT_REQUIRE_EXP, default on) */
    const char *audience; /* NULL or "": no aud check; else aud must name it (DMS_JWT_AUDIENCE) */
    const char *issuer;   /* NULL or "": no iss check; else iss must be it (DMS_JWT_ISSUER) */
} auth_policy;

/* Checks an Authorization header value ("Bearer <jwt>") against the policy. On success copies the user id
 * into user (size >= AUTH_USER_MAX + 1). -DMS_E_INVALID with a message fit for a 401 otherwise. */
int auth_check_header(const char *header, const auth_policy *pol, char *user, size_t size, dms_error *err);
/* Verifies a bare token. */
int auth_verify(const char *token, const auth_policy *pol, char *user, size_t size, dms_error *err);
/* Mints an HS256 token for user, valid ttl_sec seconds (> 0: every token expires), carrying the policy's
 * audience and issuer when it names them (so that it passes the same policy). Caller frees *out. */
int auth_mint(const auth_policy *pol, const char *user, long ttl_sec, char **out, dms_error *err);

#endif
