# Convenience front end to the CMake build.
#   make demo             the README's first command: a FedAvg swarm on three local nodes
#   make                  build (build/release)
#   make install          install manta_node under $(PREFIX) (default /usr/local); DESTDIR honoured
#   make test             the full test command (installs dependencies, two builds, all tests)
#   make docs             regenerate docs/configuration.md and docs/manager-configuration.md from the key tables
PREFIX ?= /usr/local
BUILD ?= build/release
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build install test docs demo clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DBUILD_TESTING=OFF
	cmake --build $(BUILD) -j$(JOBS)

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

test:
	./scripts/test

demo:
	./scripts/demo

docs: build
	$(BUILD)/manta_node config reference > docs/configuration.md
	$(BUILD)/manta_manager config reference > docs/manager-configuration.md

clean:
	rm -rf build
