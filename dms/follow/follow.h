/* follow/follow.h - auto-deploy: a droid that follows its branch is rebuilt when the branch head moves.
 *
 * Two ways to notice a push: the follower looks at every followed branch (a remote ls, no clone) at most
 * every DMS_FOLLOW_INTERVAL_S, and a git host may call POST /droids/:id/hooks/push with the droid's hook
 * secret, or the body signed with it (HMAC-SHA256, GitHub and Gitea; no JWT), which makes the follower look
 * at that droid at once. A head that differs from the deployed commit and from the last one it queued is
 * rebuilt through the builder's queue, like a PATCH naming the branch: the old container keeps serving until
 * the new one runs. A head whose build failed is not retried until the branch moves again.
 *
 * State (table droid_follow): follow on/off, the SHA-256 of the hook secret and the secret itself as the HMAC
 * key of signed hooks (the API shows it once, when dmsd makes it), the remote head last seen, the head last
 * queued, the last check and its error. Thread-safe.
 */
#ifndef DMSD_FOLLOW_FOLLOW_H
#define DMSD_FOLLOW_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

#include "../core/core.h"
#include "../store/store.h"

#define FOLLOW_DEFAULT_INTERVAL_S 60
#define FOLLOW_MIN_INTERVAL_S     1
#define FOLLOW_MAX_INTERVAL_S     86400
#define HOOK_SECRET_MIN           16 /* a secret the user sets: at least this many characters */
#define HOOK_SECRET_MAX           256
#define HOOK_SECRET_HEX_BYTES     24 /* a secret dmsd makes: 48 hex characters */
#define HOOK_SECRET_BUF           (HOOK_SECRET_MAX + 1)
/* Where a git host puts the secret: our header, or GitLab's (which sends the secret itself). */
#define HOOK_SECRET_HEADER        "X-DMS-Hook-Secret"
#define HOOK_SECRET_HEADER_GITLAB "X-Gitlab-Token"
/* Or a signature of the body with the secret (HMAC-SHA256): GitHub's header (Gitea sends it too), Gitea's
 * own. */
#define HOOK_SIGNATURE_HEADER       "X-Hub-Signature-256"
#define HOOK_SIGNATURE_HEADER_GITEA "X-Gitea-Signature"

typedef struct follower follower;

/* Starts the follower thread: it reads the droids of c and their follow rows in st (both borrowed; they
 * outlive follower_stop) and queues rebuilds through core's mutations. */
int follower_start(follower **out, store *st, core *c, int interval_s, dms_error *err);
void follower_stop(follower *f); /* accepts NULL */
/* Look at this droid's branch now (a hook came). */
void follower_check_now(follower *f, const char *droid_id);

/* ---- the API's side ---- */

/* "follow" and "hook_secret" of a create or patch body: validated and removed from body (the droid's own
 * parser refuses keys it does not know). */
typedef struct follow_opts {
    bool has_follow;
    bool follow;
    bool has_secret;
    char secret[HOOK_SECRET_BUF];
} follow_opts;
int follow_take_opts(json_t *body, follow_opts *out, dms_error *err);

/* Applies opts to the droid in c (one transaction, with an event). When follow is turned on and the droid has
 * no secret yet, one is made and copied into made_secret (HOOK_SECRET_BUF bytes; "" otherwise): the only time
 * it is shown. f (NULL without an executor: nothing is looked at then) is told to look at the branch now. */
int follow_apply(core *c, follower *f, const char *droid_id, const follow_opts *opts, char *made_secret,
                 dms_error *err);

/* Adds "follow" and "hook" ({url, secret_set, remote_sha, checked_at, error}) to a droid's JSON, from st. */
void follow_add_json(store *st, json_t *droid_json);

/* Checks a hook call's secret for the droid (a live one in c, its row in st) in constant time: 0, or
 * NOT_FOUND for an unknown droid or one without a secret, or INVALID for a wrong secret (the route answers
 * both with one status). */
int follow_verify_secret(store *st, core *c, const char *droid_id, const char *secret, dms_error *err);

/* Checks a signed hook call: signature ("sha256=<hex>" or "<hex>") must be the HMAC-SHA256 of body keyed by
 * the droid's hook secret, compared in constant time. 0, NOT_FOUND (no such droid, no secret, or one set
 * before dmsd kept secrets for signatures), or INVALID. */
int follow_verify_signature(store *st, core *c, const char *droid_id, const char *signature, const void *body,
                            size_t len, dms_error *err);

/* SHA-256 of s as 64 hex characters + NUL into out (65 bytes). */
int follow_hash_secret(const char *s, char *out, dms_error *err);

#endif
