# dms - one Makefile; each code folder contributes a fragment (<folder>/*.mk) included below.
#
#   make                 build everything (library, plugins, binaries) into build/
#   make check           install missing deps, check layers, format and lint, bring Docker up, make test images,
#                        build, run unit tests (plain and under ASan+UBSan) and the feature suite against the real
#                        engine; with SAN=1 all of it runs on the sanitizer build (build-san/), the feature suite too
#   make check-unit      unit tests only (add SAN=1 for ASan+UBSan; builds into build-san/), after check-exports:
#                        the library exports exactly its public API, each plugin only its entry
#   make check-layers    every #include "..." within its folder's README "May depend on:" line
#   make check-install   make install into a staging DESTDIR; the installed tree must work on its own
#   make check-features  the feature suite only (behave; BEHAVE_ARGS=... passes options, e.g. -D executor=process)
#   make install PREFIX=/usr/local DESTDIR=   library, plugins, headers, dms-executor.pc, binaries
#   make run             install deps, bring Docker up, build, start dmsd and deploy the example droid
#   make demo            the same set-up, then workloads straight through the executor CLI (scripts/demo)
#   make format / format-check / lint (lint-tidy, lint-cppcheck) / valgrind / bench / clean

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
BINDIR ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
PLUGINDIR ?= $(LIBDIR)/dms/plugins
DESTDIR ?=
VERSION := 0.1.0

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
TOP := $(abspath .)
ABS_BUILD := $(abspath $(BUILD))
PKG_CONFIG ?= pkg-config
pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pkg_libs = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
        -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
OPT ?= -O2 -g
CFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -pthread $(OPT) $(WARN) $(SANFLAGS) -Iexecutor/interface $(CFLAGS)
ALL_LDFLAGS := -pthread $(SANFLAGS) $(LDFLAGS)

# Where the library looks for plugins when DMS_PLUGIN_DIR is unset: the build's dir first, then the installed.
DEFS := -DDMS_BUILD_PLUGIN_DIR='"$(ABS_BUILD)/plugins"' -DDMS_INSTALL_PLUGIN_DIR='"$(PLUGINDIR)"' \
        -DDMS_VERSION='"$(VERSION)"'

LIB_DIR := $(BUILD)/lib
PLUGIN_DIR := $(BUILD)/plugins
BIN_DIR := $(BUILD)/bin
TEST_DIR := $(BUILD)/tests
OBJ_DIR := $(BUILD)/obj

# Filled by the fragments.
ALL_TARGETS :=
UNIT_TESTS :=
INSTALL_BINS :=
INSTALL_PLUGINS :=

.PHONY: all
all: build-all

# Object rule shared by all fragments: build/obj/<path>.o from <path>.c, with dependency files.
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
$(OBJ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(DEFS) $(EXTRA_CFLAGS_$(subst /,_,$(dir $<))) -MMD -MP -c $< -o $@

# Fragments: each owner edits only its own (executor/docker/docker.mk, cli/exec.mk, dms/dms.mk, ...).
include executor/executor.mk
# In dependency order (cli/ uses what dms/ defines), each group sorted.
-include $(sort $(wildcard executor/*/*.mk))
-include $(sort $(wildcard dms/*.mk))
-include $(sort $(wildcard cli/*.mk))
-include $(sort $(wildcard tests/*/*.mk))
-include $(sort $(wildcard bench/*.mk examples/*.mk))

.PHONY: build-all
build-all: $(ALL_TARGETS)

-include $(shell find $(OBJ_DIR) -name '*.d' 2>/dev/null)

# ---- checks ----
.PHONY: check check-env check-unit check-features check-install check-layers format-check
check:
	scripts/install-deps
	$(MAKE) check-layers
	$(MAKE) format-check
	$(MAKE) lint
	scripts/docker-up
	scripts/test-images
	scripts/stack-images
	$(MAKE) build-all
	$(MAKE) check-unit
	$(if $(filter 1,$(SAN)),,$(MAKE) check-unit SAN=1)
	$(if $(filter 1,$(SAN)),,$(MAKE) check-install)
	$(MAKE) check-features

# Every #include "..." within its folder's README "May depend on:" line (CONTRIBUTING.md, "Layers").
check-layers:
	@scripts/check-layers

# The export check first: it is the cheapest, and a leaked symbol could make a suite pass for the wrong reason.
check-unit: build-all $(UNIT_TESTS)
	@tests/check-exports.sh $(BUILD)
	@scripts/run-unit-tests $(UNIT_TESTS)

# make install into a staging DESTDIR with another PREFIX: its dms-exec, plugins, headers and .pc must work there.
check-install: build-all
	BUILD=$(BUILD) tests/install/check-install.sh

BEHAVE_ARGS ?=
check-features: build-all
	DMS_BUILD=$(BUILD) scripts/run-features $(if $(BEHAVE_ARGS),$(BEHAVE_ARGS),--all-backends)

# ---- the main job: a fresh machine to a running dmsd with the example droid deployed ----
.PHONY: run demo
run:
	scripts/install-deps
	scripts/docker-up
	scripts/test-images
	$(MAKE) build-all
	scripts/run-example

# Workloads straight through the executor CLI (no dmsd): run, logs, cancel, cleanup.
demo:
	scripts/install-deps
	scripts/docker-up
	scripts/test-images
	$(MAKE) build-all
	scripts/demo

# ---- install ----
.PHONY: install
install: build-all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(INCLUDEDIR)/dms $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 0755 $(LIB_DIR)/libdms-executor.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libdms-executor.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdms-executor.so.0
	ln -sf libdms-executor.so.0 $(DESTDIR)$(LIBDIR)/libdms-executor.so
	$(if $(INSTALL_PLUGINS),install -m 0755 $(INSTALL_PLUGINS) $(DESTDIR)$(PLUGINDIR)/)
	$(if $(INSTALL_BINS),install -m 0755 $(INSTALL_BINS) $(DESTDIR)$(BINDIR)/)
	install -m 0644 executor/interface/dms/*.h $(DESTDIR)$(INCLUDEDIR)/dms/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' \
	    -e 's|@PLUGINDIR@|$(PLUGINDIR)|' executor/dms-executor.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/dms-executor.pc

# ---- housekeeping ----
FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
LINT_SRCS = $(filter %.c,$(FORMAT_SRCS))
.PHONY: format format-check lint lint-tidy lint-cppcheck clean valgrind
format:
	clang-format -i $(FORMAT_SRCS)

# Fails if any tracked C file differs from what .clang-format makes of it, and names those files.
format-check:
	@out=$$(clang-format --dry-run -Werror $(FORMAT_SRCS) 2>&1); rc=$$?; \
	files=$$(printf '%s\n' "$$out" | sed -n 's/^\([^ :][^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u); \
	if [ -n "$$files" ]; then \
	    echo "format-check: $$(printf '%s\n' $$files | wc -l) file(s) differ from .clang-format (make format):"; \
	    printf '  %s\n' $$files; exit 1; \
	elif [ $$rc -ne 0 ]; then printf '%s\n' "$$out"; exit $$rc; fi; \
	echo "format-check: $(words $(FORMAT_SRCS)) files match .clang-format"

# make lint: clang-tidy (the checks in .clang-tidy, each disabled one with its reason; scripts/lint-tidy prints
# the findings and their count per check) and cppcheck. clang-tidy reads each file's flags from
# $(BUILD)/compile_commands.json, written from the same variables the object rule uses (minus the warning flags,
# which are gcc's), so editors with clangd can use it too.
lint: $(BUILD)/compile_commands.json
	@rc=0; scripts/lint-tidy $(BUILD) $(LINT_JOBS) || rc=1; $(MAKE) --no-print-directory lint-cppcheck || rc=1; \
	exit $$rc
lint-cppcheck:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	    --suppress=missingIncludeSystem -Iexecutor/interface -D_GNU_SOURCE $(FORMAT_SRCS)
LINT_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
lint-tidy: $(BUILD)/compile_commands.json
	@scripts/lint-tidy $(BUILD) $(LINT_JOBS)

comma := ,
json_esc = $(subst ",\",$(subst \,\\,$(1)))
lint_cflags = -std=c11 -D_GNU_SOURCE -pthread -Iexecutor/interface $(DEFS) $(EXTRA_CFLAGS_$(subst /,_,$(dir $(1))))
cc_entry = {"directory": "$(TOP)", "file": "$(TOP)/$(1)", "command": "$(call json_esc,cc $(call lint_cflags,$(1)) -c $(1))"}
# Written every time (it is cheap), so new files are in it.
.PHONY: $(BUILD)/compile_commands.json
$(BUILD)/compile_commands.json:
	$(file >$@,$(shell mkdir -p $(dir $@))[$(call cc_entry,$(firstword $(LINT_SRCS)))$(foreach f,$(wordlist 2,100000,$(LINT_SRCS)),$(comma)$(newline)$(call cc_entry,$(f)))])
	@echo "  GEN     $@"

define newline


endef

valgrind: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do CK_FORK=no valgrind --quiet --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite --child-silent-after-fork=yes --suppressions=tests/unit/valgrind.supp \
	    $$t || exit 1; done; \
	    echo "valgrind: clean"
clean:
	rm -rf build build-san
