# dms/: dmsd, the DMS host daemon. Everything but main.o also goes into a static archive that the unit tests
# (tests/unit/test_dmsd_*.c) link, so tests exercise the very objects the daemon runs.
DMSD_PKGS := libmicrohttpd libjwt libgit2 sqlite3 jansson libcurl libcrypto libfyaml
DMSD_SRCS := $(sort $(wildcard dms/*.c dms/*/*.c))
DMSD_LIB_SRCS := $(filter-out dms/main.c,$(DMSD_SRCS))
DMSD_LIB_OBJS := $(DMSD_LIB_SRCS:%.c=$(OBJ_DIR)/%.o)
DMSD_ARCHIVE := $(LIB_DIR)/libdmsd.a
DMSD := $(BIN_DIR)/dmsd
DMSD_LIBS := $(call pkg_libs,$(DMSD_PKGS)) -luuid -lm

DMSD_CFLAGS := $(call pkg_cflags,$(DMSD_PKGS)) -Iexecutor
EXTRA_CFLAGS_dms_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_store_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_droids_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_api_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_build_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_run_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_core_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_jobs_ := $(DMSD_CFLAGS)
EXTRA_CFLAGS_dms_follow_ := $(DMSD_CFLAGS)

$(DMSD_ARCHIVE): $(DMSD_LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(DMSD): $(OBJ_DIR)/dms/main.o $(DMSD_ARCHIVE) $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(OBJ_DIR)/dms/main.o $(DMSD_ARCHIVE) $(LIBDMS_UTIL) $(ALL_LDFLAGS) $(LIBDMS_LINK) $(DMSD_LIBS)

# Unit tests of dmsd: every test_dmsd_<x> links the archive and dmsd's libraries.
DMSD_UNIT_SRCS := $(sort $(wildcard tests/unit/test_dmsd_*.c))
$(foreach t,$(DMSD_UNIT_SRCS:tests/unit/%.c=%),\
  $(eval TEST_OBJS_$(t) := $(DMSD_ARCHIVE))\
  $(eval TEST_LIBS_$(t) := $(DMSD_LIBS)))
DMSD_UNIT_TESTS := $(DMSD_UNIT_SRCS:tests/unit/%.c=$(TEST_DIR)/%)

.PHONY: dmsd check-dmsd check-dmsd-e2e
dmsd: $(DMSD)
check-dmsd: $(DMSD_UNIT_TESTS)
	@scripts/run-unit-tests $(DMSD_UNIT_TESTS)
# End to end against the real engine (needs Docker and the test images: scripts/docker-up, scripts/test-images).
check-dmsd-e2e: $(DMSD) $(BIN_DIR)/dmsctl $(PLUGIN_DIR)/libdms-executor-docker.so
	dms/tests/e2e.sh $(BUILD)

ALL_TARGETS += $(DMSD)
INSTALL_BINS += $(DMSD)

# The runner's suite drives the runner through the in-memory test backend (tests/plugins).
$(TEST_DIR)/test_dmsd_runner: $(TEST_DIR)/plugins/libdms-executor-memtest.so
# test_dmsd_jobstep runs a step through the in-memory test backend (tests/plugins).
$(TEST_DIR)/test_dmsd_jobstep: $(TEST_DIR)/plugins/libdms-executor-memtest.so
