# mk/members.mk: membership/migration extras: the steady writer the migration test runs
# (build/load_writer: one session, fixed rate, logs acknowledged keys, reports the longest stall).
LOAD_WRITER_OBJS := $(BUILD)/obj/test/integration/load_writer.o
$(BUILD)/load_writer: $(LOAD_WRITER_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(LOAD_WRITER_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/load_writer
