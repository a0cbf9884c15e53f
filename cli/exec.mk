# cli/dms-exec: the executor CLI (owned with the executor framework).
DMS_EXEC := $(BIN_DIR)/dms-exec
# -Iexecutor: util.h, the library's internal helpers (dms_utf8_sanitize for --json logs).
EXTRA_CFLAGS_cli_ += $(call pkg_cflags,jansson) -Iexecutor

DMS_EXEC_OBJS := $(patsubst %,$(OBJ_DIR)/cli/%.o,dms-exec exec_cli exec_request exec_run exec_query exec_admin)

$(DMS_EXEC): $(DMS_EXEC_OBJS) $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(DMS_EXEC_OBJS) $(LIBDMS_UTIL) $(ALL_LDFLAGS) $(LIBDMS_LINK) $(call pkg_libs,jansson) -luuid

ALL_TARGETS += $(DMS_EXEC)
INSTALL_BINS += $(DMS_EXEC)
