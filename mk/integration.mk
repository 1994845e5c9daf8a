# integration.mk: test tools for test/integration (real processes).
RAWWRITE_OBJS := $(BUILD)/obj/test/integration/rawwrite.o
$(BUILD)/rawwrite: $(RAWWRITE_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(RAWWRITE_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/rawwrite
