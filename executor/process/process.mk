# executor/process/: the process backend. Two artefacts, installed side by side in the plugin directory:
#   libdms-executor-process.so  the plugin (ops table; start, wait, cancel, logs, cleanup, recover)
#   dms-proc-shim               the per-execution supervisor the plugin spawns (see README.md for why a binary)
PROC_COMMON_SRCS := executor/process/cgroup.c
PROC_PLUGIN_SRCS := executor/process/process.c executor/process/state.c $(PROC_COMMON_SRCS)
PROC_SHIM_SRCS := executor/process/shim.c $(PROC_COMMON_SRCS)
EXTRA_CFLAGS_executor_process_ := $(call pkg_cflags,jansson) -Iexecutor -fvisibility=hidden

PROC_PLUGIN := $(PLUGIN_DIR)/libdms-executor-process.so
PROC_SHIM := $(PLUGIN_DIR)/dms-proc-shim

$(PROC_PLUGIN): $(PROC_PLUGIN_SRCS:%.c=$(OBJ_DIR)/%.o) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,--no-undefined -o $@ $(filter %.o,$^) $(ALL_LDFLAGS) $(LIBDMS_LINK) \
	    $(call pkg_libs,jansson)

# The shim links the framework's objects it uses (log store, results, state files) instead of libdms-executor.so:
# that library pulls in libcurl and its TLS/LDAP/... dependencies, which cost the shim ~13 ms of dynamic loading
# on every start (measured) for nothing. executor.o and registry.o are the only framework parts that need curl or
# dlopen; a new framework file that does would show up here as a link error, not a silent slowdown.
PROC_SHIM_FRAMEWORK_OBJS := $(filter-out %/executor/executor.o %/executor/registry.o,$(EXEC_OBJS))
$(PROC_SHIM): $(PROC_SHIM_SRCS:%.c=$(OBJ_DIR)/%.o) $(PROC_SHIM_FRAMEWORK_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(call pkg_libs,jansson)

ALL_TARGETS += $(PROC_PLUGIN) $(PROC_SHIM)
INSTALL_PLUGINS += $(PROC_PLUGIN) $(PROC_SHIM)

# The suite drives the real plugin through the registry: it needs both built (not linked in).
$(TEST_DIR)/test_process: $(PROC_PLUGIN) $(PROC_SHIM)
