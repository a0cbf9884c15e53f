# dms/compose/: a compose file read into a typed model (pure; libfyaml and jansson). Its sources are picked up
# by dms/dms.mk's wildcard (libdmsd.a and dmsd); this fragment gives the folder dmsd's flags (a recursive "=":
# this file is read before dms.mk defines DMSD_CFLAGS).
EXTRA_CFLAGS_dms_compose_ = $(DMSD_CFLAGS)
