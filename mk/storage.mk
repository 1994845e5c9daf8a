# storage.mk: storage module programs: the WAL crash-matrix driver and the WAL bench.
WAL_CRASH_OBJS := $(BUILD)/obj/test/storage/wal_crash.o
$(BUILD)/wal_crash: $(WAL_CRASH_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(WAL_CRASH_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/wal_crash

WAL_BENCH_OBJS := $(BUILD)/obj/bench/wal_bench.o
$(BUILD)/wal_bench: $(WAL_BENCH_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(WAL_BENCH_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/wal_bench
