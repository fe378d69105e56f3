# guestabi: the two commands people run.
#   make demo    the main job: the engine (and, as they land, the back-ends and a VM) in action
#   make check   every test: a gcc -Werror build and a clang ASan+UBSan build
# Both install the Debian packages they need first (Debian 12, as root).

BUILD ?= build

.PHONY: all deps build demo check bench clean golden-update

all: build

deps:
	@tools/deps.sh build peers

build: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) >/dev/null
	@ninja -C $(BUILD) >/dev/null

demo: build
	@tools/demo.sh $(BUILD)

check:
	@tools/deps.sh build test peers
	@tools/check.sh

# Rewrite every CLI golden case's expected stdout, stderr and status from the built guestabi,
# for review with git diff (the only way they are regenerated).
golden-update: build
	@for c in tests/data/cli/*/; do \
	  [ -f "$$c/args" ] || continue; \
	  GUESTABI_SOURCE_ROOT=$(CURDIR) tests/golden/run-golden.sh --regenerate \
	    $(CURDIR)/$(BUILD)/src/cli/guestabi $(CURDIR)/$${c%/} || exit 1; \
	done

bench: build
	@tools/bench.sh $(BUILD)

clean:
	rm -rf build build-gcc build-asan build-valgrind
