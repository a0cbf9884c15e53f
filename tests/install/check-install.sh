#!/usr/bin/env bash
# tests/install/check-install.sh - `make install` into a staging DESTDIR with another PREFIX, then: the installed
# dms-exec finds the installed plugins (not the build tree's), and a program built with the installed headers and
# dms-executor.pc links and opens the registry. Run by `make check-install` (part of `make check`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD=${BUILD:-build}
STAGE=$(mktemp -d /tmp/dms-install.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
PREFIX=/opt/dms-check
make --no-print-directory -s install BUILD="$BUILD" PREFIX="$PREFIX" DESTDIR="$STAGE" >/dev/null
ROOT=$STAGE$PREFIX
fail() { echo "check-install: FAIL: $*" >&2; exit 1; }

out=$(LD_LIBRARY_PATH=$ROOT/lib "$ROOT/bin/dms-exec" backends 2>&1) || fail "dms-exec backends: $out"
grep -q "plugin directory: $ROOT/lib/dms/plugins" <<<"$out" || fail "the installed dms-exec does not use the installed plugins:
$out"
for b in docker process; do
    grep -Eq "^  $b +ok" <<<"$out" || fail "backend $b is not listed as ok:
$out"
done

cat >"$STAGE/use.c" <<'C'
#include <dms/executor.h>
#include <stdio.h>
int main(void)
{
    dms_error e = {0};
    dms_registry *r;
    if (dms_registry_open(&r, NULL, &e) < 0) {
        printf("registry: %s\n", e.message);
        return 1;
    }
    dms_registry_close(r);
    printf("ok\n");
    return 0;
}
C
flags=$(PKG_CONFIG_PATH=$ROOT/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$STAGE pkg-config --cflags --libs dms-executor) ||
    fail "pkg-config does not know the installed dms-executor.pc"
cc -std=c11 -Wall -Werror "$STAGE/use.c" -o "$STAGE/use" $flags || fail "a program cannot build against the installed headers"
[ "$(LD_LIBRARY_PATH=$ROOT/lib "$STAGE/use")" = ok ] || fail "a program linked with the installed library cannot open the registry"
echo "check-install: OK (PREFIX=$PREFIX staged in a DESTDIR: the installed plugins, headers and .pc work)"
