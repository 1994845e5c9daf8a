# mk/cli.mk: CLI module extras: the test server that test/cli/suite.sh runs server mode against
# (the client module's engine-backed / fake harness in one process).
CLI_TEST_SERVER_OBJS := $(BUILD)/obj/test/cli/cli_test_server.o \
    $(BUILD)/obj/test/client/harness.o $(BUILD)/obj/test/client/harness_engine.o
$(BUILD)/cli_test_server: $(CLI_TEST_SERVER_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_TEST_SERVER_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/cli_test_server
