# mk/fault.mk: Jepsen-style fault harness programs (build/jepsen_client, build/jepsen_engine_server)
# and `make soak MINUTES=N` (long nemesis runs; writes test/fault/report.md).

JEPSEN_CLIENT_OBJS := $(BUILD)/obj/test/fault/jepsen_client.o
$(BUILD)/jepsen_client: $(JEPSEN_CLIENT_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(JEPSEN_CLIENT_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/jepsen_client

# Engine-backed single-node server (the client module's test harness) for the pipeline self-test.
JEPSEN_ENGINE_SERVER_OBJS := $(BUILD)/obj/test/fault/engine_server.o \
    $(BUILD)/obj/test/client/harness.o $(BUILD)/obj/test/client/harness_engine.o
$(BUILD)/jepsen_engine_server: $(JEPSEN_ENGINE_SERVER_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(JEPSEN_ENGINE_SERVER_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/jepsen_engine_server

MINUTES ?= 10
.PHONY: soak
soak: programs
	python3 test/fault/jepsen.py soak --build $(BUILD) --minutes $(MINUTES) --report test/fault/report.md
