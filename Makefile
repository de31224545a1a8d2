# wrd-capture: build, install, header, tests.
#
#   make                      release build of the library and tools
#   make install PREFIX=DIR   library (.so and .a), header, wrd-capture.pc, the wrd-capture
#                             command and its man page, the Python package (in PYTHONDIR)
#   make header               regenerate include/wrd_capture.h with cbindgen
#   make test                 every test (see scripts/test-all.sh)
#   make demo                 the README's demo

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
MANDIR ?= $(PREFIX)/share/man
# Where the Python package goes (on sys.path for PREFIX=/usr; else add it to PYTHONPATH).
PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# PROFILE=debug installs the debug build (the tests use the profile they run under).
PROFILE ?= release
TARGET := target/$(PROFILE)
ifeq ($(PROFILE),debug)
CARGO_PROFILE_FLAG :=
else
CARGO_PROFILE_FLAG := --profile $(PROFILE)
endif

.PHONY: all build install header test demo clean

all: build

build:
	$(CARGO) build $(CARGO_PROFILE_FLAG) -p wrd-capture

install: build
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(TARGET)/libwrd_capture.so $(DESTDIR)$(LIBDIR)/libwrd_capture.so.0
	ln -sf libwrd_capture.so.0 $(DESTDIR)$(LIBDIR)/libwrd_capture.so
	install -m 0644 $(TARGET)/libwrd_capture.a $(DESTDIR)$(LIBDIR)/libwrd_capture.a
	install -m 0644 include/wrd_capture.h $(DESTDIR)$(PREFIX)/include/wrd_capture.h
	install -m 0755 $(TARGET)/wrd-capture $(DESTDIR)$(PREFIX)/bin/wrd-capture
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/wrd-capture.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/wrd-capture.pc
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(PYTHONDIR)/wrd_capture
	install -m 0644 docs/wrd-capture.1 $(DESTDIR)$(MANDIR)/man1/wrd-capture.1
	install -m 0644 bindings/python/wrd_capture/__init__.py bindings/python/wrd_capture/_ffi.py \
	    $(DESTDIR)$(PYTHONDIR)/wrd_capture/
	echo 'LIBDIR = "$(LIBDIR)"  # written by make install' > $(DESTDIR)$(PYTHONDIR)/wrd_capture/_install.py

header:
	WRD_UPDATE_HEADER=1 $(CARGO) test --test header

test:
	bash scripts/test-all.sh

demo:
	bash scripts/demo.sh

clean:
	$(CARGO) clean
