#!/bin/sh
# Turns the stack templates (*.Dockerfile) into a C source with one string per template:
#   embed.sh FILE... > templates_gen.c
# so that dmsd carries them (no install path to find at run time). Used by dms/stacks.mk.
set -eu
echo '/* Generated from the stack templates (dms/build/templates) by embed.sh: do not edit. */'
echo '#include <stddef.h>'
echo 'const char *const dms_stack_templates[][2] = {'
for f in "$@"; do
    name=$(basename "$f" .Dockerfile)
    printf '    {"%s",\n' "$name"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/     "/' -e 's/$/\\n"/' "$f"
    printf '    },\n'
done
echo '    {NULL, NULL},'
echo '};'
