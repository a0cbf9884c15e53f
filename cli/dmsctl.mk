# cli/dmsctl: the command line client of dmsd (owned with dms/). Links dmsd's archive only for token minting
# (api/auth.o; the static link pulls in nothing else) and libdms-executor for the error helpers auth.o uses.
DMSCTL := $(BIN_DIR)/dmsctl
DMSCTL_OBJS := $(patsubst %,$(OBJ_DIR)/cli/%.o,dmsctl dmsctl_api dmsctl_show dmsctl_change dmsctl_jobs dmsctl_http)
# The archive's rule is in dms/dms.mk, included after this fragment: name its path here, not its variable.
DMSCTL_ARCHIVE := $(LIB_DIR)/libdmsd.a
EXTRA_CFLAGS_cli_ += $(call pkg_cflags,libcurl jansson libjwt) -Iexecutor

$(DMSCTL): $(DMSCTL_OBJS) $(DMSCTL_ARCHIVE) $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(DMSCTL_OBJS) $(DMSCTL_ARCHIVE) $(LIBDMS_UTIL) $(ALL_LDFLAGS) $(LIBDMS_LINK) $(call pkg_libs,libcurl jansson libjwt)

.PHONY: dmsctl
dmsctl: $(DMSCTL)
ALL_TARGETS += $(DMSCTL)
INSTALL_BINS += $(DMSCTL)
