# mk/client.mk: client module extras: the test harness linked into unit_tests, the client bench
# and a standalone engine-backed test server.
CLIENT_HARNESS_OBJS := $(BUILD)/obj/test/client/harness.o $(BUILD)/obj/test/client/harness_engine.o
UNIT_OBJS += $(CLIENT_HARNESS_OBJS)
$(BUILD)/unit_tests: $(CLIENT_HARNESS_OBJS)

# Client-protocol figures against the engine-backed test server: build/client_bench
CLIENT_BENCH_OBJS := $(BUILD)/obj/test/client/client_bench.o $(CLIENT_HARNESS_OBJS)
$(BUILD)/client_bench: $(CLIENT_BENCH_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLIENT_BENCH_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/client_bench
