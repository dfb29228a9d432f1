# Convenience front end to the CMake build.
#   make                  build (build/release)
#   make install          install manta_node under $(PREFIX) (default /usr/local); DESTDIR honoured
#   make test             the full test command (installs dependencies, two builds, all tests)
#   make docs             regenerate docs/configuration.md from the key table
PREFIX ?= /usr/local
BUILD ?= build/release
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build install test docs clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DBUILD_TESTING=OFF
	cmake --build $(BUILD) -j$(JOBS)

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

test:
	./scripts/test

docs: build
	$(BUILD)/manta_node config reference > docs/configuration.md

clean:
	rm -rf build
