# raft.mk: the Raft core's benchmark (committed entries/s through a 3-node in-memory cluster).
RAFT_BENCH_OBJS := $(BUILD)/obj/bench/raft_bench.o
$(BUILD)/raft_bench: $(RAFT_BENCH_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(RAFT_BENCH_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/raft_bench
