# dms/stacks.mk: the stack templates of builds without a Dockerfile (dms/build/templates/*.Dockerfile), turned
# into C strings by embed.sh and linked into dmsd's archive, so nothing has to be found on disk at run time.
# The images they start FROM are made by scripts/stack-images.
STACK_TEMPLATES := $(sort $(wildcard dms/build/templates/*.Dockerfile))
STACK_TEMPLATES_C := $(OBJ_DIR)/gen/dms_stack_templates.c
STACK_TEMPLATES_O := $(OBJ_DIR)/gen/dms_stack_templates.o

$(STACK_TEMPLATES_C): $(STACK_TEMPLATES) dms/build/templates/embed.sh
	@mkdir -p $(dir $@)
	$(Q)dms/build/templates/embed.sh $(STACK_TEMPLATES) >$@.tmp && mv $@.tmp $@

$(STACK_TEMPLATES_O): $(STACK_TEMPLATES_C)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(DMSD_ARCHIVE): $(STACK_TEMPLATES_O)

.PHONY: stack-images
stack-images:
	scripts/stack-images

# Build jobs, stacks and follow end to end against the real engine (dms/tests/e2e-jobs.sh; about a minute).
.PHONY: check-dmsd-e2e-jobs
check-dmsd-e2e-jobs: $(DMSD) $(BIN_DIR)/dmsctl $(PLUGIN_DIR)/libdms-executor-docker.so
	scripts/stack-images
	dms/tests/e2e-jobs.sh $(BUILD)
