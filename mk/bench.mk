# mk/bench.mk: benchmark helpers: the fdatasync latency probe bench/run.sh reports.
FSYNC_PROBE_OBJS := $(BUILD)/obj/bench/fsync_probe.o
$(BUILD)/fsync_probe: $(FSYNC_PROBE_OBJS)
	$(CC) $(LDFLAGS) -o $@ $(FSYNC_PROBE_OBJS)
PROGRAMS += $(BUILD)/fsync_probe
