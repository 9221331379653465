# Crabstack: one `crab` binary. `make` builds ./crab; `make test` builds with
# AddressSanitizer and UndefinedBehaviorSanitizer and runs every test; `make bench`
# prints the performance figures; `make static` builds ./crab-static and
# `make test-static` runs the shell tests on it. V=1 shows the commands.

CC      ?= cc
PKGS    := libevent libevent_pthreads libevent_openssl sqlite3 libpq libfyaml jansson libcurl libssl libcrypto
# Messages are cut to their buffers on purpose (bounded error lines), so gcc's
# format-truncation guesses are noise here.
WARN    := -Wall -Wextra -Werror -Wstrict-prototypes -Wvla -Wwrite-strings -Wformat-security \
           -Wno-format-truncation
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE $(WARN) -fvisibility=hidden -I. \
                 $(shell pkg-config --cflags $(PKGS))
LIBS    := $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lpthread -ldl

# `make static` (crab-static, the same libraries as LIBS): those whose static archive
# Debian 12 ships, and whose own dependencies are all static archives or glibc too, are
# linked in. The rest of PKGS stays shared: libpq and libcurl (their dependencies include
# libgssapi_krb5, which Debian ships no .a of), libssl and libcrypto (libpq.so and
# libcurl.so load them anyway), and glibc, so that dlopen() keeps working. See "Static
# build" in README.md.
STATIC_PKGS := libevent libevent_pthreads libevent_openssl sqlite3 libfyaml jansson
STATIC_LIBS := -Wl,-Bstatic $(shell pkg-config --libs $(STATIC_PKGS)) -lhttp_parser -Wl,-Bdynamic \
               $(shell pkg-config --libs $(filter-out $(STATIC_PKGS),$(PKGS))) -lm -lpthread -ldl

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
	core/config_fields.c \
	core/config_agents.c \
	core/config_check.c \
	core/config_view.c \
	core/config_policy.c \
	core/config_apply.c \
	core/config_commit.c \
	core/config_smoke.c \
	core/config_reload.c \
	core/config_tools.c \
	core/config_auth.c \
	core/cli_config.c \
	core/template.c \
	core/strmap.c \
	core/router.c \
	core/jsontext.c \
	core/jschema.c \
	core/jsonpatch.c \
	core/outbox.c \
	core/hist.c \
	core/context.c \
	core/ingest.c \
	core/turns.c \
	core/turn_run.c \
	core/turn_call.c \
	core/http_server.c \
	core/http_request.c \
	core/ws_frame.c \
	core/ws.c \
	core/ws_client.c \
	core/http_client.c \
	core/storeq.c \
	core/lease.c \
	core/identity.c \
	core/tls.c \
	core/cli_id.c \
	core/peers.c \
	core/pair_responder.c \
	core/peer_check.c \
	core/dispatch.c \
	core/dispatch_fanout.c \
	core/dispatch_fast.c \
	core/tools.c \
	core/tools_call.c \
	core/turn_tools.c \
	core/live.c \
	core/ingress.c \
	core/admin.c \
	core/admin_modules.c \
	core/admin_sessions.c \
	core/admin_peers.c \
	core/admin_dlq.c \
	core/admin_config.c \
	core/admin_auth.c \
	core/auth.c \
	core/auth_http.c \
	core/auth_flight.c \
	core/auth_login.c \
	core/auth_seal.c \
	core/cli_auth.c \
	core/admin_client.c \
	core/gateway.c \
	core/cli_pair.c \
	core/cli_peers.c \
	core/cli_dlq.c \
	core/cli_chat.c \
	core/cli_status.c \
	core/component.c \
	core/tool_host.c \
	core/cli_event.c \
	core/cli_modules.c \
	core/cli_sessions.c \
	core/modules.c \
	core/module_host.c \
	core/builtin_modules.c

STORE_SRC := \
	store/store.c \
	store/schema.c \
	store/store_turns.c \
	store/store_sessions.c \
	store/store_peers.c \
	store/store_deliveries.c \
	store/store_config.c \
	store/store_auth.c \
	store/db_sqlite.c \
	store/db_postgres.c

# Built-in modules: the same sources a .so would be made of, compiled with -DCRAB_BUILTIN.
BUILTIN_SRC := \
	modules/echo/echo.c \
	modules/common/adapter_buf.c \
	modules/common/adapter_config.c \
	modules/common/adapter_msg.c \
	modules/common/adapter_req.c \
	modules/common/adapter_retry.c \
	modules/common/adapter_sink.c \
	modules/common/sse.c \
	modules/openai/openai.c \
	modules/openai/openai_req.c \
	modules/openai/openai_sse.c \
	modules/anthropic/anthropic.c \
	modules/anthropic/anthropic_req.c \
	modules/anthropic/anthropic_sse.c

LIB_SRC := $(CORE_SRC) $(STORE_SRC) $(BUILTIN_SRC)
# Every object is rebuilt when any header changes, those two levels down too
# (modules/common/, t/unit/).
HEADERS := $(wildcard */*.h */*/*.h)

UNIT_TESTS := \
	t/unit/test_util \
	t/unit/test_envelope \
	t/unit/test_lease \
	t/unit/test_http \
	t/unit/test_http_tls \
	t/unit/test_http_client \
	t/unit/test_ws \
	t/unit/test_ws_frame \
	t/unit/test_store \
	t/unit/test_storeq \
	t/unit/test_abi \
	t/unit/test_openai_sse \
	t/unit/test_anthropic_sse \
	t/unit/test_anthropic_module \
	t/unit/test_router \
	t/unit/test_identity \
	t/unit/test_auth_seal \
	t/unit/test_peers \
	t/unit/test_dispatch_fast \
	t/unit/test_tools \
	t/unit/test_config_policy \
	t/unit/test_tool_host \
	t/unit/test_jschema \
	t/unit/test_jsonpatch

HELPERS := \
	t/helpers/postload \
	t/helpers/readytime

# Helpers linked with the core's sanitizer objects, like the unit tests.
CORE_HELPERS := \
	t/helpers/modeldrive \
	t/helpers/component

# make bench's zero-latency model: libevent's evhttp and jansson, nothing of the core.
BENCH_HELPERS := \
	t/helpers/fastmodel

# make bench's subscribers: the test component, linked with the core's release objects.
BENCH_CORE_HELPERS := \
	t/helpers/component

REL_OBJ  := $(LIB_SRC:%.c=build/release/%.o)
TEST_OBJ := $(LIB_SRC:%.c=build/test/%.o)

# Third-party modules built here as a module's author would: abi/ and libc only, no
# core headers, no sanitizers (they are loaded into the ASan build by the tests).
SO_CFLAGS := -std=c11 $(WARN) -fvisibility=hidden -fPIC -shared -O2 -g -I.
MODULES_SO := \
	modules/example/example.so \
	modules/openai/openai.so \
	modules/anthropic/anthropic.so

.PHONY: all run test bench soak fuzz clean install static test-static
all: crab $(MODULES_SO)

# The quick start: the gateway on SQLite with the example configuration.
run: crab
	./crab gateway -c config.example.yaml

crab: $(REL_OBJ) build/release/crab.o
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LIBS)

# The same release objects as crab, linked against the static archives.
static: crab-static

crab-static: $(REL_OBJ) build/release/crab.o
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(STATIC_LIBS)

build/release/modules/%.o build/test/modules/%.o: MODULE_CFLAGS := -DCRAB_BUILTIN

build/release/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(RELEASE_CFLAGS) $(MODULE_CFLAGS) -c -o $@ $<

build/test/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $<"
	$(Q)$(CC) $(TEST_CFLAGS) $(MODULE_CFLAGS) -c -o $@ $<

build/test/crab: $(TEST_OBJ) build/test/crab.o
	@echo "  LD-SAN  $@"
	$(Q)$(CC) $(TEST_LDFLAGS) -o $@ $^ $(LIBS)

# test_store's suite is in more than one file.
build/test/t/unit/test_store: build/test/t/unit/test_store_deliveries.o

build/test/t/unit/%: build/test/t/unit/%.o $(TEST_OBJ)
	@echo "  LD-SAN  $@"
	$(Q)$(CC) $(TEST_LDFLAGS) -o $@ $^ $(LIBS)

modules/%.so: modules/%.c abi/crab_module_v1.h Makefile
	@echo "  CC-SO   $@"
	$(Q)$(CC) $(SO_CFLAGS) -o $@ $<

# The code the adapters share (modules/common/README.md): once in crab through
# BUILTIN_SRC, and compiled into each adapter's .so, where -fvisibility=hidden keeps it
# that .so's own. Headers below */ are not in the pattern rules' */*.h.
COMMON_SRC := $(filter modules/common/%,$(BUILTIN_SRC))
COMMON_H := $(wildcard modules/common/*.h)
$(BUILTIN_SRC:%.c=build/release/%.o) $(BUILTIN_SRC:%.c=build/test/%.o): $(COMMON_H) \
	$(wildcard modules/*/*_int.h)
build/test/t/unit/test_openai_sse.o build/test/t/unit/test_anthropic_sse.o: t/unit/sse_splits.h \
	$(COMMON_H)

# The openai adapter as a .so: its own sources and its own jansson, as an author's.
OPENAI_SRC := $(filter modules/openai/%,$(BUILTIN_SRC)) $(COMMON_SRC)
modules/openai/openai.so: $(OPENAI_SRC) modules/openai/openai_int.h $(COMMON_H) abi/crab_module_v1.h Makefile
	@echo "  CC-SO   $@"
	$(Q)$(CC) $(SO_CFLAGS) $(shell pkg-config --cflags jansson) -o $@ $(OPENAI_SRC) \
		$(shell pkg-config --libs jansson)

# The anthropic adapter as a .so, the same way.
ANTHROPIC_SRC := $(filter modules/anthropic/%,$(BUILTIN_SRC)) $(COMMON_SRC)
modules/anthropic/anthropic.so: $(ANTHROPIC_SRC) modules/anthropic/anthropic_int.h $(COMMON_H) abi/crab_module_v1.h Makefile
	@echo "  CC-SO   $@"
	$(Q)$(CC) $(SO_CFLAGS) $(shell pkg-config --cflags jansson) -o $@ $(ANTHROPIC_SRC) \
		$(shell pkg-config --libs jansson)

build/test/t/helpers/%: build/test/t/helpers/%.o $(TEST_OBJ)
	@echo "  LD-SAN  $@"
	$(Q)$(CC) $(TEST_LDFLAGS) -o $@ $^ $(LIBS)

build/release/t/helpers/%: t/helpers/%.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(RELEASE_CFLAGS) -o $@ $< -lpthread

test: build/test/crab $(UNIT_TESTS:%=build/test/%) $(HELPERS:%=build/release/%) \
	$(CORE_HELPERS:%=build/test/%) $(MODULES_SO)
	@t/run.sh

# The shell tests on crab-static (no unit tests: those are sanitizer builds). Checks
# that need the test-only admin op clock.advance are skipped: crab-static has none.
test-static: crab-static $(HELPERS:%=build/release/%) $(CORE_HELPERS:%=build/test/%) $(MODULES_SO)
	@CRAB=$(CURDIR)/crab-static t/run.sh --integration-only

build/release/t/helpers/fastmodel: t/helpers/fastmodel.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(RELEASE_CFLAGS) -o $@ $< $(shell pkg-config --libs libevent jansson)

build/release/t/helpers/component: build/release/t/helpers/component.o $(REL_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(LIBS)

bench: crab $(HELPERS:%=build/release/%) $(BENCH_HELPERS:%=build/release/%) \
	$(BENCH_CORE_HELPERS:%=build/release/%)
	@t/bench/run.sh
	@t/bench/turns.sh
	@t/bench/delivery.sh

# Fuzzing (clang's libFuzzer): FUZZ_SECONDS each, corpora under build/fuzz/.
FUZZ_TARGETS := fuzz_envelope fuzz_http fuzz_ws fuzz_jschema
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := $(filter-out -Wno-format-truncation,$(CFLAGS_COMMON)) -Wno-unknown-warning-option -O1 -g -fsanitize=fuzzer,address,undefined

# One clang command for all of LIB_SRC: CRAB_BUILTIN, which only the built-in modules'
# sources read, is set for all of it.
build/fuzz/%: t/fuzz/%.c $(LIB_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(FUZZ_CFLAGS) -DCRAB_BUILTIN -o $@ $< $(LIB_SRC) $(LIBS)

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
	install -D -m 0644 man/crab-module.3 $(DESTDIR)$(PREFIX)/share/man/man3/crab-module.3
	install -D -m 0644 abi/crab_module_v1.h $(DESTDIR)$(PREFIX)/include/crab/crab_module_v1.h

PREFIX ?= /usr/local

clean:
	rm -rf build crab crab-static $(MODULES_SO)
