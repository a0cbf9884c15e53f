# executor/: the framework library libdms-executor.so (registry, plugin loader, shared backend helpers), and
# libdms-util.a, the private helpers of util.h (string vectors, capped buffers, reading beneath a tree,
# Dockerfile lines, capability masks, random ids). The archive is linked into every consumer (the library, the plugins,
# dmsd, the CLIs, the tests) instead of being exported: the library's dynamic symbols are exactly its public
# API, the names the installed headers declare (libdms-executor.map; tests/check-exports.sh checks it).
UTIL_SRCS := executor/util.c executor/beneath.c executor/dflines.c executor/capmask.c executor/randid.c
UTIL_OBJS := $(UTIL_SRCS:%.c=$(OBJ_DIR)/%.o)
LIBDMS_UTIL := $(LIB_DIR)/libdms-util.a
EXEC_SRCS := $(filter-out $(UTIL_SRCS),$(wildcard executor/*.c))
EXEC_OBJS := $(EXEC_SRCS:%.c=$(OBJ_DIR)/%.o)
EXEC_PKGS := libcurl jansson
EXTRA_CFLAGS_executor_ := $(call pkg_cflags,$(EXEC_PKGS)) -fvisibility=hidden -DDMS_BUILDING_LIBRARY
EXEC_MAP := executor/libdms-executor.map
LIBDMS := $(LIB_DIR)/libdms-executor.so
LIBDMS_LINK := -L$(LIB_DIR) -ldms-executor -Wl,-rpath,'$$ORIGIN/../lib'

# Built with -fvisibility=hidden like the library, so a plugin that links the archive exports none of it either.
$(LIBDMS_UTIL): $(UTIL_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(LIB_DIR)/libdms-executor.so.$(VERSION): $(EXEC_OBJS) $(LIBDMS_UTIL) $(EXEC_MAP)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libdms-executor.so.0 -Wl,--no-undefined -Wl,--version-script=$(EXEC_MAP) \
	    -o $@ $(EXEC_OBJS) $(LIBDMS_UTIL) $(ALL_LDFLAGS) $(call pkg_libs,jansson) -ldl
$(LIBDMS): $(LIB_DIR)/libdms-executor.so.$(VERSION)
	ln -sf libdms-executor.so.$(VERSION) $(LIB_DIR)/libdms-executor.so.0
	ln -sf libdms-executor.so.$(VERSION) $@

ALL_TARGETS += $(LIBDMS) $(LIBDMS_UTIL)
# randid.o uses libuuid: whoever calls dmsu_random_id links it (dmsd, dms-exec, this suite).
TEST_LIBS_test_util := -luuid

# The library exports exactly the public API and each plugin exactly its entry symbol (run by check-unit).
.PHONY: check-exports
check-exports: build-all
	tests/check-exports.sh $(BUILD)
