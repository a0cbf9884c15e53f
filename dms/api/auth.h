/* api/auth.h - JWT bearer tokens (HS256, libjwt 1.10): verify a request's token, mint one (dmsctl,
 * run-example).
 *
 * A token's payload carries {"user_id": "<id>"} (a string, or an integer taken as its decimal form); "exp"
 * and "nbf", when present, are honoured. Only HS256 is accepted: a token with another algorithm (including
 * "none") is refused even if it would verify. Thread-safe.
 */
#ifndef DMSD_API_AUTH_H
#define DMSD_API_AUTH_H

#include <stddef.h>

#include <dms/error.h>

#define AUTH_USER_MAX 128

/* Checks an Authorization header value ("Bearer <jwt>") against secret. On success copies the user id into
 * user (size >= AUTH_USER_MAX + 1). -DMS_E_INVALID with a message fit for a 401 otherwise. */
int auth_check_header(const char *header, const char *secret, char *user, size_t size, dms_error *err);
/* Verifies a bare token. */
int auth_verify(const char *token, const char *secret, char *user, size_t size, dms_error *err);
/* Mints an HS256 token for user, valid ttl_sec seconds (0: no expiry). Caller frees *out. */
int auth_mint(const char *secret, const char *user, long ttl_sec, char **out, dms_error *err);

#endif
