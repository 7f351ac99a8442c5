# kttpd: build, run, check. Every library through pkg-config where it has
# a .pc file (http-parser has none).

CC       ?= cc
PYTHON   ?= /usr/bin/python3
BUILD    ?= build
PKGS      = openssl libevent libnghttp2 zlib libconfuse
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 \
            -Wno-unused-parameter
ifeq ($(CI),true)
WARN     += -Werror
endif
ifneq ($(WERROR),)
WARN     += -Werror
endif
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -pthread \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -pthread

UNAME    := $(shell uname -s)
SYS_SRC   = $(if $(filter FreeBSD,$(UNAME)),sys/freebsd.c,sys/linux.c sys/linux_ulp.c sys/linux_rekey.c)
SRV_SRC   = $(wildcard server/*.c)
SRC       = $(SRV_SRC) $(SYS_SRC)
OBJ       = $(patsubst %.c,$(BUILD)/%.o,$(SRC))
LIB_OBJ   = $(filter-out $(BUILD)/server/main.o,$(OBJ))
UNIT_SRC  = $(wildcard tests/unit/unit_*.c)
UNIT_BIN  = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all run check unit deps-build deps-check clean format install

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system

all: $(BUILD)/kttpd

$(BUILD)/%.o: %.c server/kttpd.h sys/sys.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/kttpd: $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iserver -o $@ $< $(LIB_OBJ) $(LDLIBS)

unit: $(UNIT_BIN)

deps-build:
	@sys/debian-deps.sh build

deps-check:
	@sys/debian-deps.sh check

# Serve conf/sample-site on https://localhost:8443/ with a generated cert.
run: deps-build
	@$(MAKE) --no-print-directory all
	@conf/run-sample.sh $(BUILD)/kttpd

# Every suite: unit, integration, the integration suite again against an
# ASan+UBSan build (any sanitizer report fails), and the external suites.
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
SUITES   ?= --suite tests/ktls/run-suite \
            --suite tests/cluster/run-suite \
            --suite "tests/offload/run-offload-tests $(BUILD)/tests/ulp_probe" \
            --suite "tests/fuzz/run.sh $(BUILD)/fuzz $(CHECK_FUZZ_TIME) $(FUZZ_TARGETS)" \
            --suite "$(PYTHON) tests/soak/soak.py --time $(CHECK_SOAK_TIME) --bin $(BUILD)/kttpd"
CHECK_FUZZ_TIME ?= 60
CHECK_SOAK_TIME ?= 60
check: deps-check
	@$(MAKE) --no-print-directory -j2 all unit $(BUILD)/tests/ulp_probe fuzz-build
	@$(MAKE) --no-print-directory -j2 BUILD=$(BUILD)-asan CFLAGS="$(SAN_FLAGS)" all
	@$(PYTHON) tests/run.py --bin $(BUILD)/kttpd --asan $(BUILD)-asan/kttpd $(SUITES)

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binary, man pages,
# the systemd unit and, when none is there, the example config.
install: all
	install -D -m 0755 $(BUILD)/kttpd $(DESTDIR)$(PREFIX)/sbin/kttpd
	install -D -m 0644 conf/man/kttpd.8 $(DESTDIR)$(PREFIX)/share/man/man8/kttpd.8
	install -D -m 0644 conf/man/kttpd.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/kttpd.conf.5
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    conf/kttpd.service > $(DESTDIR)$(UNITDIR)/kttpd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/kttpd.service
	test -e $(DESTDIR)$(SYSCONFDIR)/kttpd/kttpd.conf || \
	    install -D -m 0644 conf/kttpd.conf $(DESTDIR)$(SYSCONFDIR)/kttpd/kttpd.conf

format:
	clang-format -i server/*.c server/*.h sys/*.c sys/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf $(BUILD) $(BUILD)-asan

# ---- check-ktls: tests/ktls/ (the kTLS suite in a VM; see tests/ktls/README.md) ----
.PHONY: check-ktls
check-ktls: deps-check
	@$(MAKE) --no-print-directory all
	@tests/ktls/run-suite
# ---- end check-ktls ----

# ---- check-cluster: tests/cluster/ (HAProxy + three nodes in network
# namespaces; see README.md, "Running a fleet") ----
.PHONY: check-cluster
check-cluster: deps-check
	@$(MAKE) --no-print-directory all
	@tests/cluster/run-suite
# ---- end check-cluster ----

# tests/offload/: the NIC offload scripts against a veth that cannot
# offload, and the TLS ULP placement probe (issue 7)
.PHONY: check-offload
$(BUILD)/tests/ulp_probe: tests/offload/ulp_probe.c sys/linux_ulp.c sys/sys.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isys -o $@ $<
check-offload: $(BUILD)/tests/ulp_probe
	@tests/offload/run-offload-tests $(BUILD)/tests/ulp_probe

# ---- bench (owned by bench/; see bench/README.md) ----
# make bench [QUICK=1]: kttpd against nginx, lighttpd and h2o on loopback;
# results in bench/results/DATE-HOST.{md,png,json}.
# make bench-debs: the .debs bench/device.sh carries to a machine offline.
.PHONY: bench bench-debs
bench: all
	@bench/deps.sh install
	@bench/run.sh $(if $(filter-out 0,$(QUICK)),--quick)

bench-debs: all
	@bench/deps.sh fetch
# ---- end bench ----
# ---- fuzz: libFuzzer targets in tests/fuzz (see tests/fuzz/README.md) ----
# make fuzz [FUZZ_TIME=300] [FUZZ_TARGETS="http1 path"]; make fuzz-ci (60 s each)
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 300
FUZZ_TARGETS ?= http1 http2 range path config
FUZZ_BUILD    = $(BUILD)/fuzz
FUZZ_CFLAGS   = -std=gnu11 -g -O1 -fno-omit-frame-pointer -pthread \
                -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJ      = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out server/main.c,$(SRV_SRC)) $(SYS_SRC))
FUZZ_WRAP     = -Wl,--wrap=SSL_write,--wrap=SSL_get_error,--wrap=SSL_sendfile
FUZZ_BIN      = $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-ci fuzz-build
.SECONDARY: $(FUZZ_OBJ)
$(FUZZ_BUILD)/obj/%.o: %.c server/kttpd.h sys/sys.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_wrap.c tests/fuzz/fuzz_conn.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Iserver $(FUZZ_WRAP) \
	    -o $@ $< tests/fuzz/fuzz_wrap.c $(FUZZ_OBJ) $(LDLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=60
# ---- end fuzz ----

# ---- soak: tests/soak/soak.py (bounded; SOAK_TIME=600 or more by hand) ----
SOAK_TIME ?= 60
.PHONY: soak
soak: all
	@$(PYTHON) tests/soak/soak.py --time $(SOAK_TIME) --bin $(BUILD)/kttpd
# ---- end soak ----
