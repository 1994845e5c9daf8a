# mk/http.mk: HTTP module extras: build/http_testserver (the HTTP API over the engine-backed
# client-protocol test server, with a scripted node state) for test/http/suite_http.sh and wrk.
HTTP_TESTSERVER_OBJS := $(BUILD)/obj/test/http/http_testserver.o \
                        $(BUILD)/obj/test/client/harness.o $(BUILD)/obj/test/client/harness_engine.o
$(BUILD)/http_testserver: $(HTTP_TESTSERVER_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(HTTP_TESTSERVER_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/http_testserver
