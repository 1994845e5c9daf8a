# list.mk: the listing benchmark (build/list_bench: CPU time per ListObjectsV2 page of 1000).
LIST_BENCH_OBJS := $(BUILD)/obj/bench/list_bench.o
$(BUILD)/list_bench: $(LIST_BENCH_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(LIST_BENCH_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/list_bench
