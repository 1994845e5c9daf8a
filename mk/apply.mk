# apply.mk: the apply-step benchmark (build/apply_bench: decode + mc_engine_apply CPU per op).
APPLY_BENCH_OBJS := $(BUILD)/obj/bench/apply_bench.o
$(BUILD)/apply_bench: $(APPLY_BENCH_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(APPLY_BENCH_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/apply_bench
