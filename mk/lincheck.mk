# mk/lincheck.mk: linearizability checker (build/lincheck) and fault proxy (build/faultproxy).

LINCHECK_OBJS := $(addprefix $(BUILD)/obj/test/fault/lincheck/,lincheck.o gen.o main.o)
$(BUILD)/lincheck: $(LINCHECK_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(LINCHECK_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/lincheck

FAULTPROXY_OBJS := $(BUILD)/obj/test/fault/proxy/faultproxy.o
$(BUILD)/faultproxy: $(FAULTPROXY_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(FAULTPROXY_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/faultproxy
