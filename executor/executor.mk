# executor/: the framework library libdms-executor.so (registry, plugin loader, shared backend helpers).
EXEC_SRCS := $(wildcard executor/*.c)
EXEC_OBJS := $(EXEC_SRCS:%.c=$(OBJ_DIR)/%.o)
EXEC_PKGS := libcurl jansson
EXTRA_CFLAGS_executor_ := $(call pkg_cflags,$(EXEC_PKGS)) -fvisibility=hidden -DDMS_BUILDING_LIBRARY
LIBDMS := $(LIB_DIR)/libdms-executor.so
LIBDMS_LINK := -L$(LIB_DIR) -ldms-executor -Wl,-rpath,'$$ORIGIN/../lib'

$(LIB_DIR)/libdms-executor.so.$(VERSION): $(EXEC_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libdms-executor.so.0 -Wl,--no-undefined -o $@ $^ $(ALL_LDFLAGS) \
	    $(call pkg_libs,jansson) -ldl
$(LIBDMS): $(LIB_DIR)/libdms-executor.so.$(VERSION)
	ln -sf libdms-executor.so.$(VERSION) $(LIB_DIR)/libdms-executor.so.0
	ln -sf libdms-executor.so.$(VERSION) $@

ALL_TARGETS += $(LIBDMS)
