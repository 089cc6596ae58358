# facevault: `make run` and `make test` set up everything on a fresh Debian machine (as root).
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= 2
SHARED ?= $(abspath ../shared)
SAMPLES := $(SHARED)/data/samples/face-api-js/images

.PHONY: all deps models configure build run demo test test-fuzz bench clean

all: build

deps:
	@bash scripts/setup-deps.sh

models: deps
	@bash scripts/fetch-models.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The main job on the embedded default: a demo vault of the sample photos (enrolled under a
# demo consent record), one API key per role, and the API + web UI on http://127.0.0.1:8080.
run: models build
	@bash scripts/serve-demo.sh $(BUILD)/facevault "$(SAMPLES)"

# The engine alone on the sample photos: detect, embed, verify (no vault, no server).
demo: models build
	@bash scripts/demo.sh $(BUILD)/facevault "$(SAMPLES)"

test: models build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory test-fuzz

# Mutated images through decode + detect + embed under AddressSanitizer and UBSan.
test-fuzz: models
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACEVAULT_SANITIZE=ON -DFACEVAULT_BUILD_BENCH=OFF
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target image_fuzz_test
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(ASAN_BUILD)/tests/image_fuzz_test

bench: models build
	@bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
