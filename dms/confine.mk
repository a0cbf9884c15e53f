# dms/confine/: the limits, privileges, networks and quotas of the containers dmsd runs for users. Its sources
# are picked up by dms/dms.mk's wildcard (libdmsd.a and dmsd); this fragment gives the folder dmsd's flags
# (a recursive "=": this file is read before dms.mk defines DMSD_CFLAGS).
EXTRA_CFLAGS_dms_confine_ = $(DMSD_CFLAGS)
