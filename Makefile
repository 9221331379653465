# Crabstack: one `crab` binary. `make` builds ./crab; `make test` builds with
# AddressSanitizer and UndefinedBehaviorSanitizer and runs every test; `make bench`
# prints the performance figures. V=1 shows the commands.

CC      ?= cc
PKGS    := libevent libevent_pthreads sqlite3 libpq libfyaml jansson libcurl libssl libcrypto
# Messages are cut to their buffers on purpose (bounded error lines), so gcc's
# format-truncation guesses are noise here.
WARN    := -Wall -Wextra -Werror -Wstrict-prototypes -Wvla -Wwrite-strings -Wformat-security \
           -Wno-format-truncation
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE $(WARN) -fvisibility=hidden -I. \
                 $(shell pkg-config --cflags $(PKGS))
LIBS    := $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lpthread -ldl

RELEASE_CFLAGS := $(CFLAGS_COMMON) -O2 -g
TEST_CFLAGS    := $(CFLAGS_COMMON) -O1 -g -fno-omit-frame-pointer -DCRAB_TEST_HOOKS \
                  -fsanitize=address,undefined -fno-sanitize-recover=undefined
TEST_LDFLAGS   := -fsanitize=address,undefined

ifeq ($(V),1)
Q :=
else
Q := @
endif

# One source file per line, so a diff shows what a change adds.
CORE_SRC := \
	core/util.c \
	core/log.c \
	core/clock.c \
	core/id.c \
	core/errors.c \
	core/envelope.c \
	core/config.c \
	core/http_server.c \
	core/storeq.c \
	core/lease.c \
	core/ingress.c \
	core/admin.c \
	core/admin_client.c \
	core/gateway.c \
	core/cli_pair.c \
	core/cli_event.c

STORE_SRC := \
	store/store.c \
	store/schema.c \
	store/db_sqlite.c \
	store/db_postgres.c

LIB_SRC := $(CORE_SRC) $(STORE_SRC)

UNIT_TESTS := \
	t/unit/test_util \
	t/unit/test_envelope \
	t/unit/test_lease \
	t/unit/test_http \
	t/unit/test_store

HELPERS := \
	t/helpers/postload \
	t/helpers/readytime

REL_OBJ  := $(LIB_SRC:%.c=build/release/%.o)
TEST_OBJ := $(LIB_SRC:%.c=build/test/%.o)

.PHONY: all run test bench soak fuzz clean install
all: crab

# The quick start: the gateway on SQLite with the example configuration.
run: crab
	./crab gateway -c config.example.yaml

crab: $(REL_OBJ) build/release/crab.o
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LIBS)

build/release/%.o: %.c $(wildcard */*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(RELEASE_CFLAGS) -c -o $@ $<

build/test/%.o: %.c $(wildcard */*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $<"
	$(Q)$(CC) $(TEST_CFLAGS) -c -o $@ $<

build/test/crab: $(TEST_OBJ) build/test/crab.o
	@echo "  LD-SAN  $@"
	$(Q)$(CC) $(TEST_LDFLAGS) -o $@ $^ $(LIBS)

build/test/t/unit/%: build/test/t/unit/%.o $(TEST_OBJ)
	@echo "  LD-SAN  $@"
	$(Q)$(CC) $(TEST_LDFLAGS) -o $@ $^ $(LIBS)

build/release/t/helpers/%: t/helpers/%.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(RELEASE_CFLAGS) -o $@ $< -lpthread

test: build/test/crab $(UNIT_TESTS:%=build/test/%) $(HELPERS:%=build/release/%)
	@t/run.sh

bench: crab $(HELPERS:%=build/release/%)
	@t/bench/run.sh

# Fuzzing (clang's libFuzzer): FUZZ_SECONDS each, corpora under build/fuzz/.
FUZZ_TARGETS := fuzz_envelope fuzz_http
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := $(filter-out -Wno-format-truncation,$(CFLAGS_COMMON)) -Wno-unknown-warning-option -O1 -g -fsanitize=fuzzer,address,undefined

build/fuzz/%: t/fuzz/%.c $(LIB_SRC) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t; \
		echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
		build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build/fuzz/corpus-$$t t/fuzz/seeds-$${t#fuzz_} \
			2>build/fuzz/$$t.log || { tail -n 40 build/fuzz/$$t.log; exit 1; }; \
		tail -n 1 build/fuzz/$$t.log; \
	done

soak: crab
	@echo "no soak runs yet"

install: crab
	install -D -m 0755 crab $(DESTDIR)$(PREFIX)/bin/crab
	install -D -m 0644 man/crab.1 $(DESTDIR)$(PREFIX)/share/man/man1/crab.1
	install -D -m 0644 man/crab.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/crab.yaml.5

PREFIX ?= /usr/local

clean:
	rm -rf build crab
