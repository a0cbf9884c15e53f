# tests/plugins/: backends for the registry's tests, all from testplugin.c, built into $(BUILD)/tests/plugins/
# (never $(BUILD)/plugins/, which holds the real backends). Like real plugins: -fvisibility=hidden, linked against
# libdms-executor. memtest works; each other one carries one defect the registry must refuse.
TEST_PLUGIN_DIR := $(TEST_DIR)/plugins
TEST_PLUGIN_NAMES := memtest badabi short noentry misnamed noop nullops
TEST_PLUGINS := $(TEST_PLUGIN_NAMES:%=$(TEST_PLUGIN_DIR)/libdms-executor-%.so)

TP_FLAGS_memtest :=
TP_FLAGS_badabi := -DTP_NAME='"badabi"' -DTP_ABI='(DMS_EXECUTOR_ABI_VERSION + 1u)'
TP_FLAGS_short := -DTP_NAME='"short"' -DTP_SHORT
TP_FLAGS_noentry := -DTP_NAME='"noentry"' -DTP_NO_ENTRY
TP_FLAGS_misnamed := -DTP_NAME='"othername"'
TP_FLAGS_noop := -DTP_NAME='"noop"' -DTP_MISSING_OP
TP_FLAGS_nullops := -DTP_NAME='"nullops"' -DTP_NULL_OPS

# Build tree: $(BUILD)/tests/plugins/../../lib.
$(TEST_PLUGIN_DIR)/libdms-executor-%.so: tests/plugins/testplugin.c $(LIBDMS) $(wildcard executor/interface/dms/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -fvisibility=hidden $(TP_FLAGS_$*) -shared -Wl,--no-undefined -o $@ $< \
	    $(ALL_LDFLAGS) -L$(LIB_DIR) -ldms-executor -Wl,-rpath,'$$ORIGIN/../../lib'

ALL_TARGETS += $(TEST_PLUGINS)

# The registry suite loads them (it does not link them).
$(TEST_DIR)/test_registry: $(TEST_PLUGINS)
