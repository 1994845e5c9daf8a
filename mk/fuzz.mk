# mk/fuzz.mk: libFuzzer targets (clang, ASan+UBSan) in build-fuzz/, built only by `make fuzz`.
# Nothing here is part of `all`/PROGRAMS, so the normal gcc build and `make asan` never need clang.
# Seed corpora: `make fuzz-corpus` regenerates test/fuzz/corpus/ with the real encoders (gcc).

FUZZ_BUILD := build-fuzz
FUZZ_CC    := clang
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Library code is instrumented for coverage (fuzzer-no-link); libFuzzer itself is linked last.
# No -Werror for library sources: clang may warn where gcc does not, and that code is not ours.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-missing-field-initializers \
               -Iinclude -Isrc -g -O1 -pthread -MMD -MP $(FUZZ_SAN) -fsanitize=fuzzer-no-link

# The targets only need the codecs: the whole util, engine and raft modules plus the client
# protocol codec; the HTTP target also needs the HTTP, metrics and client modules (its handlers
# call the client) and the client server (the in-process path to the node). Storage/HTTP sources are picked up once they exist.
FUZZ_LIB_SRCS := $(sort $(wildcard src/util/*.c src/engine/*.c src/raft/*.c src/storage/*.c \
                   src/http/*.c src/obs/*.c src/client/*.c src/security/*.c) src/net/proto.c \
                   src/net/client_server.c)
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_LIB      := $(FUZZ_BUILD)/libmetacenter_fuzz.a

FUZZ_TARGET_SRCS := $(sort $(wildcard test/fuzz/fuzz_*.c))
# Targets for modules still on their branches are built once the module's header is there.
ifeq ($(wildcard include/metacenter/storage.h),)
FUZZ_TARGET_SRCS := $(filter-out test/fuzz/fuzz_wal.c test/fuzz/fuzz_snap.c,$(FUZZ_TARGET_SRCS))
endif
ifeq ($(wildcard src/http/internal.h),)
FUZZ_TARGET_SRCS := $(filter-out test/fuzz/fuzz_http.c,$(FUZZ_TARGET_SRCS))
endif
FUZZ_TARGETS     := $(FUZZ_TARGET_SRCS:test/fuzz/%.c=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

# The targets themselves are held to -Werror.
$(FUZZ_BUILD)/obj/test/fuzz/%.o: test/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -Itest/fuzz -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Keep the target objects (make would delete them as intermediates and rebuild every time).
.SECONDARY: $(FUZZ_TARGET_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/test/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -pthread -o $@ $< $(FUZZ_LIB) $(LDLIBS)

# Seed corpus generator: a plain program over the normal library, using the real encoders.
FUZZ_GEN_OBJS := $(BUILD)/obj/test/fuzz/gen/gen_corpus.o
ifneq ($(wildcard include/metacenter/storage.h),)
FUZZ_GEN_OBJS += $(BUILD)/obj/test/fuzz/gen/gen_storage.o
endif
$(BUILD)/fuzz_gen_corpus: $(FUZZ_GEN_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(FUZZ_GEN_OBJS) $(LIB) $(LDLIBS)

.PHONY: fuzz fuzz-corpus fuzz-list
fuzz: $(FUZZ_TARGETS)

# Names of the targets this tree builds (the suite runs exactly these).
fuzz-list:
	@echo $(FUZZ_TARGETS:$(FUZZ_BUILD)/fuzz_%=%)

fuzz-corpus: $(BUILD)/fuzz_gen_corpus
	./$(BUILD)/fuzz_gen_corpus test/fuzz/corpus

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
