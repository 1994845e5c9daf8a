# engine.mk: the engine benchmark program (build/engine_bench).
ENGINE_BENCH_OBJS := $(BUILD)/obj/bench/engine_bench.o
$(BUILD)/engine_bench: $(ENGINE_BENCH_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(ENGINE_BENCH_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/engine_bench
