# executor/process/: the process backend. Two artefacts, installed side by side in the plugin directory:
#   libdms-executor-process.so  the plugin (ops table; start, wait, cancel, logs, cleanup, recover)
#   dms-proc-shim               the per-execution supervisor the plugin spawns (see README.md for why a binary)
PROC_COMMON_SRCS := executor/process/cgroup.c
PROC_PLUGIN_SRCS := executor/process/process.c executor/process/spec.c executor/process/state.c executor/process/inventory.c \
    $(PROC_COMMON_SRCS)
PROC_SHIM_SRCS := executor/process/shim.c executor/process/shim_setup.c executor/process/shim_spec.c executor/process/shim_child.c \
    executor/process/shim_tail.c $(PROC_COMMON_SRCS)
EXTRA_CFLAGS_executor_process_ := $(call pkg_cflags,jansson) -Iexecutor -fvisibility=hidden

PROC_PLUGIN := $(PLUGIN_DIR)/libdms-executor-process.so
PROC_SHIM := $(PLUGIN_DIR)/dms-proc-shim

$(PROC_PLUGIN): $(PROC_PLUGIN_SRCS:%.c=$(OBJ_DIR)/%.o) $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,--no-undefined -o $@ $(filter %.o,$^) $(LIBDMS_UTIL) $(ALL_LDFLAGS) $(LIBDMS_LINK) \
	    $(call pkg_libs,jansson)

# The shim links libdms-executor.so like the plugin does, so that one copy of the on-disk formats (log store,
# result.json) exists per install: a shim carrying its own copy of logstore.o wrote files a newer library could
# not read (seen when the log format changed). The price: loading libcurl and its dependencies, which the shim
# never calls, costs ~13 ms per start (measured: start 16 ms instead of 10). A curl-free core library would
# remove it; see README.md.
# rpath: build/plugins/../lib in the build tree; PREFIX/lib/dms/plugins/../.. = PREFIX/lib once installed.
$(PROC_SHIM): $(PROC_SHIM_SRCS:%.c=$(OBJ_DIR)/%.o) $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(filter %.o,$^) $(LIBDMS_UTIL) $(ALL_LDFLAGS) -L$(LIB_DIR) -ldms-executor \
	    -Wl,-rpath,'$$ORIGIN/../lib:$$ORIGIN/../..' $(call pkg_libs,jansson)

ALL_TARGETS += $(PROC_PLUGIN) $(PROC_SHIM)
INSTALL_PLUGINS += $(PROC_PLUGIN) $(PROC_SHIM)

# The suite drives the real plugin through the registry: it needs both built (not linked in).
$(TEST_DIR)/test_process: $(PROC_PLUGIN) $(PROC_SHIM)
# The shim's tail ring is unit-tested directly (the shim is a program, so its objects are compiled in).
TEST_OBJS_test_process_tail := $(OBJ_DIR)/executor/process/shim_tail.o
