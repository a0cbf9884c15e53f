# cli/dms-exec: the executor CLI (owned with the executor framework).
DMS_EXEC := $(BIN_DIR)/dms-exec
EXTRA_CFLAGS_cli_ += $(call pkg_cflags,jansson)

$(DMS_EXEC): $(OBJ_DIR)/cli/dms-exec.o $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(LIBDMS_UTIL) $(ALL_LDFLAGS) $(LIBDMS_LINK) $(call pkg_libs,jansson)

ALL_TARGETS += $(DMS_EXEC)
INSTALL_BINS += $(DMS_EXEC)
