# mk/client.mk: client module extras: the test harness linked into unit_tests, the client bench
# and a standalone engine-backed test server.
CLIENT_HARNESS_OBJS := $(BUILD)/obj/test/client/harness.o $(BUILD)/obj/test/client/harness_engine.o
UNIT_OBJS += $(CLIENT_HARNESS_OBJS)
$(BUILD)/unit_tests: $(CLIENT_HARNESS_OBJS)
