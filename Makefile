# facevault: `make run` and `make test` set up everything on a fresh Debian machine (as root).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 20
JOBS ?= 2
SHARED ?= $(abspath ../shared)
SAMPLES := $(SHARED)/data/samples/face-api-js/images

.PHONY: all deps models configure build run demo test asan-configure test-asan test-tsan test-fuzz fuzz fuzz-smoke bench clean

all: build

deps:
	@bash scripts/setup-deps.sh

models: deps
	@bash scripts/fetch-models.sh

# The benchmarks are built by `make bench` only (CI and `make run` do not need them).
$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFACEVAULT_BUILD_BENCH=OFF

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

# Everything CI runs: the suite on the release build; the whole suite under
# AddressSanitizer + UBSan (clang, with the libFuzzer targets: the fuzz corpora and every
# regression input replay as tests), then a short run of every fuzzer from that same build;
# the threaded server and index tests under ThreadSanitizer (docs/security.md).
# acceptance_test (every LFW image, View-1 and WIDER targets) runs once, in the ASan build:
# its figures there are the release build's to the last digit (checked side by side), and
# running it twice would cost CI six minutes.
test: models build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -E '^acceptance_test$$'
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory test-tsan

SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# clang: libFuzzer needs it. A build folder configured with another compiler is started afresh.
asan-configure: models
	@grep -qs 'CMAKE_CXX_COMPILER:.*clang' $(ASAN_BUILD)/CMakeCache.txt || rm -rf $(ASAN_BUILD)
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFACEVAULT_SANITIZE=address -DFACEVAULT_FUZZ=ON -DFACEVAULT_BUILD_BENCH=OFF

# The whole CTest suite under ASan + UBSan.
test-asan: asan-configure
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j$(JOBS)

# What runs threads against shared state (HTTP server, service lock, pipelines, index scans)
# under TSan. The index tests run without the deadlock detector: hnswlib (the IVF's coarse
# quantiser) locks element pairs in both orders from its single inserting thread, which cannot
# deadlock, and in large graphs TSan loses those stacks so no suppression can name them.
TSAN_OPTS := halt_on_error=1 second_deadlock_stack=1 history_size=7 suppressions=$(CURDIR)/tests/tsan.supp
test-tsan: models
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACEVAULT_SANITIZE=thread -DFACEVAULT_BUILD_BENCH=OFF
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target server_api_test server_security_test vault_index_test index_test
	cd $(TSAN_BUILD) && TSAN_OPTIONS="$(TSAN_OPTS)" ctest --output-on-failure -R '^(server_api_test|server_security_test|vault_index_test)$$'
	cd $(TSAN_BUILD) && TSAN_OPTIONS="$(TSAN_OPTS) detect_deadlocks=0" ctest --output-on-failure -R '^index_test$$'

# The mutated-image test alone under ASan + UBSan (also part of test-asan).
test-fuzz: asan-configure
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target image_fuzz_test
	$(SAN_ENV) $(ASAN_BUILD)/tests/image_fuzz_test

# libFuzzer: every fuzzer for FUZZ_SECONDS (default 600 s) each in build-fuzz/ (fuzz/README.md);
# fuzz-smoke is CI's short run (FUZZ_SMOKE_SECONDS each) from the ASan test build.
fuzz: models
	bash scripts/fuzz.sh --seconds $(FUZZ_SECONDS)

fuzz-smoke: asan-configure
	bash scripts/fuzz.sh --build $(ASAN_BUILD) --seconds $(FUZZ_SMOKE_SECONDS)

bench: models build
	cmake -S . -B $(BUILD) -DFACEVAULT_BUILD_BENCH=ON
	cmake --build $(BUILD) -j$(JOBS)
	@bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
