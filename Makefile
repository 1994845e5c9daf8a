# Makefile: builds metacenter and its tests into $(BUILD). Targets: all run test asan format clean cluster.
# Modules add their own programs/rules in mk/*.mk (one file per module) so no two edit this file.

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
SANITIZE ?=
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
               -Iinclude -Isrc -g -pthread -MMD -MP $(OPT) $(SANITIZE) $(EXTRA_CFLAGS)
LDLIBS   := -llmdb -luv -lxxhash -ljansson -lyaml -lssl -lcrypto -lpthread -lm
LDFLAGS  := -pthread $(SANITIZE)

# Library: everything under src/ except the CLI's main program.
LIB_SRCS := $(sort $(shell find src -name '*.c' -not -path 'src/cli/*'))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libmetacenter.a

CLI_SRCS := $(sort $(wildcard src/cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)

UNIT_SRCS := $(sort $(wildcard test/unit/*.c))
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)

PROGRAMS := $(BUILD)/metacenter $(BUILD)/unit_tests

.PHONY: all run test asan format clean deps cluster programs
all: programs

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/metacenter: $(CLI_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(LIB) $(LDLIBS)

$(BUILD)/unit_tests: $(UNIT_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(LIB) -lcriterion $(LDLIBS)

# Per-module programs and rules (sim, benches, lincheck, fuzzers...). Each appends to PROGRAMS.
include $(sort $(wildcard mk/*.mk))

programs: $(PROGRAMS)

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/metacenter serve

cluster: deps
	@$(MAKE) --no-print-directory all
	bash scripts/cluster.sh

test: deps
	@$(MAKE) --no-print-directory all
	bash test/run.sh $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	MC_ASAN=1 bash test/run.sh build-asan

format:
	clang-format -i $$(find include src test bench -name '*.[ch]')

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
