# executor/docker/: the Docker backend, build/plugins/libdms-executor-docker.so.
DOCKER_SRCS := $(wildcard executor/docker/*.c)
DOCKER_OBJS := $(DOCKER_SRCS:%.c=$(OBJ_DIR)/%.o)
DOCKER_PLUGIN := $(PLUGIN_DIR)/libdms-executor-docker.so
EXTRA_CFLAGS_executor_docker_ := $(call pkg_cflags,libcurl jansson) -Iexecutor -fvisibility=hidden
# Plugins find libdms-executor next to them in the build tree and in the installed tree.
PLUGIN_RPATH := -Wl,-rpath,'$$ORIGIN/../lib' -Wl,-rpath,'$$ORIGIN/../..'

$(DOCKER_PLUGIN): $(DOCKER_OBJS) $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,--no-undefined -o $@ $(DOCKER_OBJS) $(LIBDMS_UTIL) $(ALL_LDFLAGS) -L$(LIB_DIR) -ldms-executor \
	    $(PLUGIN_RPATH) $(call pkg_libs,libcurl jansson)

ALL_TARGETS += $(DOCKER_PLUGIN)
INSTALL_PLUGINS += $(DOCKER_PLUGIN)
# Unit tests compile the backend's private parts in.
TEST_OBJS_test_docker_demux := $(OBJ_DIR)/executor/docker/demux.o
TEST_OBJS_test_docker_types := $(OBJ_DIR)/executor/docker/types.o
TEST_OBJS_test_docker_tar := $(OBJ_DIR)/executor/docker/tar.o
