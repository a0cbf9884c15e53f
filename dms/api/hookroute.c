/* hookroute.c - POST /droids/:id/hooks/push, a git host's push hook: served without a bearer token (an
 * open route), it authenticates with the droid's hook secret, or a signature of the body made with it. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app.h"
#include "../common.h"
#include "../follow/follow.h"
#include "handlers.h"

/* ---- POST /droids/:id/hooks/push: a git host's push hook (no JWT: the droid's hook secret) ---- */

void route_hook_push(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    const char *secret = api_header(r, HOOK_SECRET_HEADER);
    if (!secret)
        secret = api_header(r, HOOK_SECRET_HEADER_GITLAB);
    const char *signature = api_header(r, HOOK_SIGNATURE_HEADER);
    if (!signature)
        signature = api_header(r, HOOK_SIGNATURE_HEADER_GITEA);
    if (!secret && !signature) {
        api_reply_errorf(
            r, MHD_HTTP_UNAUTHORIZED, HOOK_SECRET_HEADER,
            "a push hook needs the droid's hook secret in the %s header (or %s), or the body signed "
            "with it in %s (GitHub, Gitea)",
            HOOK_SECRET_HEADER, HOOK_SECRET_HEADER_GITLAB, HOOK_SIGNATURE_HEADER);
        return;
    }
    /* A wrong secret or signature and a droid without a secret (or none at all) get the same answer. */
    size_t len = 0;
    const char *raw = api_body(r, &len);
    int vr = secret ? follow_verify_secret(a->st, a->core, id, secret, &err)
                    : follow_verify_signature(a->st, a->core, id, signature, raw, len, &err);
    if (vr < 0) {
        const char *field = secret ? HOOK_SECRET_HEADER : HOOK_SIGNATURE_HEADER;
        if (err.code == DMS_E_NOT_FOUND || err.code == DMS_E_INVALID)
            api_reply_errorf(r, MHD_HTTP_FORBIDDEN, field, "wrong hook %s, or no such hook",
                             secret ? "secret" : "signature");
        else
            api_reply_error(r, &err);
        return;
    }
    if (!a->follower) {
        api_reply_errorf(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "no executor: %s", a->ex_error);
        return;
    }
    /* A push payload (GitHub, GitLab, Gitea) names the ref; a push to another branch changes nothing. */
    _cleanup_json_ json_t *payload = len ? json_loadb(raw, len, 0, NULL) : NULL;
    const char *ref = json_string_value(json_object_get(payload, "ref"));
    droid *d = core_get_copy(a->core, id);
    if (ref && d && d->branch && strncmp(ref, "refs/heads/", 11) == 0 && strcmp(ref + 11, d->branch) != 0) {
        api_reply_json(
            r, MHD_HTTP_ACCEPTED,
            json_pack("{s:s, s:b, s:s}", "id", id, "accepted", 0, "reason", "a push to another branch"));
        droid_free(d);
        return;
    }
    droid_free(d);
    follower_check_now(a->follower, id);
    api_reply_json(r, MHD_HTTP_ACCEPTED, json_pack("{s:s, s:b}", "id", id, "accepted", 1));
}
