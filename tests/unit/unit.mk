# tests/unit/: one Check suite per module, tests/unit/test_<module>.c -> build/tests/test_<module>.
# A suite that needs private objects of a backend (compiled in, since plugins hide their symbols) names them:
#   TEST_OBJS_test_docker_demux := $(OBJ_DIR)/executor/docker/demux.o
# and extra libraries with TEST_LIBS_test_<module>. Set these in the owner's fragment, not here.
.SECONDEXPANSION:
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_TESTS += $(UNIT_SRCS:tests/unit/%.c=$(TEST_DIR)/%)
EXTRA_CFLAGS_tests_unit_ := $(call pkg_cflags,check libcurl jansson) -Iexecutor

# testutil.c (tmpdir, sh, main: testutil.h) is linked into every suite.
TESTUTIL_OBJ := $(OBJ_DIR)/tests/unit/testutil.o

$(TEST_DIR)/test_%: $(OBJ_DIR)/tests/unit/test_%.o $(TESTUTIL_OBJ) $(LIBDMS_UTIL) $(LIBDMS) $$(TEST_OBJS_test_$$*)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(TESTUTIL_OBJ) $(TEST_OBJS_test_$*) $(LIBDMS_UTIL) $(ALL_LDFLAGS) -L$(LIB_DIR) -ldms-executor \
	    -Wl,-rpath,'$(abspath $(LIB_DIR))' $(call pkg_libs,check libcurl jansson) $(TEST_LIBS_test_$*) -lm

ALL_TARGETS += $(UNIT_TESTS)
