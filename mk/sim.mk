# mk/sim.mk: the deterministic cluster simulator (build/sim), its bug-injected variants
# (build/sim_bug_{vote,commit,read}: the Raft core compiled with -DMC_RAFT_BUG_*), and the
# cluster fixture linked into build/unit_tests for the scenario tests (test/unit/test_scenario_*.c).

SIM_FIXTURE_SRCS := test/sim/cluster.c test/sim/check.c test/sim/net.c test/sim/trace.c
SIM_FIXTURE_OBJS := $(SIM_FIXTURE_SRCS:%.c=$(BUILD)/obj/%.o)
SIM_OBJS := $(BUILD)/obj/test/sim/sim.o $(SIM_FIXTURE_OBJS)

$(BUILD)/sim: $(SIM_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(SIM_OBJS) $(LIB) $(LDLIBS)
PROGRAMS += $(BUILD)/sim

# The scenario tests use the fixture: link it into the one Criterion binary.
UNIT_OBJS += $(SIM_FIXTURE_OBJS)
$(BUILD)/unit_tests: $(SIM_FIXTURE_OBJS)

# Bug-injected cores: every src/raft/*.c recompiled with the flag, linked before the library
# so the archive's (correct) raft objects are never pulled in.
SIM_RAFT_SRCS := $(sort $(wildcard src/raft/*.c))
SIM_RAFT_HDRS := include/metacenter/raft.h $(wildcard src/raft/*.h)

define SIM_BUG_VARIANT
SIM_BUG_$(1)_OBJS := $$(SIM_RAFT_SRCS:%.c=$$(BUILD)/obj-sim-bug-$(1)/%.o)
$$(BUILD)/obj-sim-bug-$(1)/%.o: %.c $$(SIM_RAFT_HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_BASE) -D$(2) -c $$< -o $$@
$$(BUILD)/sim_bug_$(1): $$(SIM_OBJS) $$(SIM_BUG_$(1)_OBJS) $$(LIB)
	$$(CC) $$(LDFLAGS) -o $$@ $$(SIM_OBJS) $$(SIM_BUG_$(1)_OBJS) $$(LIB) $$(LDLIBS)
PROGRAMS += $$(BUILD)/sim_bug_$(1)
endef

$(eval $(call SIM_BUG_VARIANT,vote,MC_RAFT_BUG_VOTE_NO_LOG_CHECK))
$(eval $(call SIM_BUG_VARIANT,commit,MC_RAFT_BUG_COMMIT_OLD_TERM))
$(eval $(call SIM_BUG_VARIANT,read,MC_RAFT_BUG_READ_NO_CONFIRM))
