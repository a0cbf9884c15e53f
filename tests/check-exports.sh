#!/bin/sh
# tests/check-exports.sh BUILD - the dynamic symbols of what we ship are exactly what we declare (after jansson's
# check-exports). Three lists must agree, or this fails with the difference:
#   1. executor/libdms-executor.map, the version script (the committed list of exported names);
#   2. the functions the installed headers declare (executor/interface/dms/*.h, read by the compiler);
#   3. nm -D --defined-only of BUILD/lib/libdms-executor.so.
# And each backend plugin in BUILD/plugins/ exports its entry symbol and nothing else (dms/plugin.h).
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0

# 1. The committed list: the names between "global:" and "local:".
sed -n '/global:/,/local:/p' "$top/executor/libdms-executor.map" | sed -n 's/^ *\([a-z_][a-z0-9_]*\);.*/\1/p' |
    sort >"$tmp/map"

# 2. What the headers declare: the compiler lists every prototype it saw (-aux-info), with its file; keep the
# non-static ones from the public headers.
for h in "$top"/executor/interface/dms/*.h; do
    echo "#include <dms/$(basename "$h")>"
done >"$tmp/all.c"
$cc -std=c11 -D_GNU_SOURCE -I"$top/executor/interface" -fsyntax-only -aux-info "$tmp/aux" "$tmp/all.c"
grep 'executor/interface/dms/' "$tmp/aux" | grep -v '\bstatic\b' |
    sed -n 's/.*[^a-z0-9_]\(dms_[a-z0-9_]*\) *(.*/\1/p' | sort -u >"$tmp/headers"

# 3. What the library exports.
lib="$build/lib/libdms-executor.so"
nm -D --defined-only "$lib" | awk '{ print $NF }' | sort >"$tmp/lib"

compare() { # what, expected, actual
    if ! diff -u "$2" "$3" >"$tmp/diff"; then
        echo "check-exports: $1 differ (- expected, + actual):" >&2
        sed -n 's/^\([-+][a-z_]\)/  \1/p' "$tmp/diff" >&2
        fail=1
    fi
}
compare "executor/libdms-executor.map and the public headers' functions" "$tmp/map" "$tmp/headers"
compare "executor/libdms-executor.map and nm -D $lib" "$tmp/map" "$tmp/lib"

# Plugins: the entry symbol only (DMS_PLUGIN_ENTRY_SYMBOL).
echo dms_executor_plugin_entry >"$tmp/entry"
n=0
for p in "$build"/plugins/libdms-executor-*.so; do
    [ -e "$p" ] || continue
    n=$((n + 1))
    nm -D --defined-only "$p" | awk '{ print $NF }' | sort >"$tmp/plugin"
    compare "the entry symbol and nm -D $p" "$tmp/entry" "$tmp/plugin"
done
if [ "$n" -eq 0 ]; then
    echo "check-exports: no plugin in $build/plugins/" >&2
    fail=1
fi

[ "$fail" -eq 0 ] || exit 1
echo "check-exports: libdms-executor.so exports $(wc -l <"$tmp/lib") names, as declared; $n plugins export only their entry"
