# dms/router/ and dms/snooze/: routing droids by name through Caddy, snoozing and waking them. Their sources are
# picked up by dms/dms.mk's wildcard (they go into libdmsd.a and dmsd); this fragment gives their folders dmsd's
# compiler flags.
EXTRA_CFLAGS_dms_router_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_snooze_ := $(DMSD_CFLAGS)
