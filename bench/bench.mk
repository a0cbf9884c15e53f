# bench/: benchmarks of the Docker executor (dms-bench) and `make bench`, which builds and runs them all.
#   make bench                      lifecycle, logs, concurrency, dmsd and wake, modest defaults (several minutes)
#   make bench BENCHES="logs"       only some of them
#   BENCH_N=100 BENCH_LOG_MIB=256 BENCH_CONC_K=1,8,32,128,256 make bench    bigger runs (see bench/README.md)
#   make bench-compose              examples/compose-app under dmsd against docker-compose (not in make bench)
# Figures go to bench/results/<timestamp>.json (and .log). Nothing in `make check` depends on these.
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_OBJS := $(BENCH_SRCS:%.c=$(OBJ_DIR)/%.o)
DMS_BENCH := $(BIN_DIR)/dms-bench
BENCHES ?= lifecycle logs concurrency dmsd wake
EXTRA_CFLAGS_bench_ := $(call pkg_cflags,libcurl jansson) -Iexecutor

$(DMS_BENCH): $(BENCH_OBJS) $(LIBDMS_UTIL) $(LIBDMS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(BENCH_OBJS) $(LIBDMS_UTIL) $(ALL_LDFLAGS) $(LIBDMS_LINK) $(call pkg_libs,libcurl jansson) -lm

ALL_TARGETS += $(DMS_BENCH)

.PHONY: bench
bench: $(DMS_BENCH) $(DOCKER_PLUGIN)
	@# dmsd is benchmarked when it builds; the dmsd benchmark says "skipped" when it does not.
	-$(if $(filter dmsd wake,$(BENCHES)),$(MAKE) --no-print-directory $(DMSD) $(DMSCTL))
	bench/run --bin $(DMS_BENCH) $(BENCHES)

# Not in BENCHES by default: it needs docker-compose (scripts/install-deps --all) and a dmsd with compose
# droids. BENCH_COMPOSE_DMSD=0 runs the docker-compose half alone.
.PHONY: bench-compose
bench-compose: $(DMS_BENCH) $(DMSD) $(DMSCTL) $(DOCKER_PLUGIN)
	bench/run --bin $(DMS_BENCH) compose
