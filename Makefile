# facevault: `make run` and `make test` set up everything on a fresh Debian machine (as root).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 5
JOBS ?= 2
# This project's own test data, when present ($FACEVAULT_SHARED, else ../shared): `make run`
# then enrolls its richer set. Without it the demo uses the photos pinned in demo-photos.lock.
SHARED ?= $(or $(FACEVAULT_SHARED),$(abspath ../shared))
SAMPLES := $(SHARED)/data/samples/face-api-js/images
# Where `make run` serves (loopback only by default); tests pick a free port.
LISTEN ?= 127.0.0.1:8080

.PHONY: all deps models configure build binary run demo cluster package test asan-configure test-asan test-tsan test-fuzz fuzz fuzz-smoke bench clean

all: build

deps:
	@bash scripts/setup-deps.sh

models: deps
	@bash scripts/fetch-models.sh

# The benchmarks are built by `make bench` only (CI and `make run` do not need them).
# Installing (cpack, package_test) builds nothing: `make test` builds only what its release
# stage runs, and the .deb needs only the binary and the Python module.
$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFACEVAULT_BUILD_BENCH=OFF -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The facevault binary alone: what `make run` and `make demo` need (not the test suite).
binary: configure
	cmake --build $(BUILD) -j$(JOBS) --target facevault

# The main job on the embedded default: a demo vault of the sample photos (enrolled under a
# demo consent record), a probe photo and the subject it should find, one API key per role,
# and the API + web UI on http://$(LISTEN).
run: models binary
	@bash scripts/serve-demo.sh $(BUILD)/facevault "$(SAMPLES)" $(LISTEN)

# The engine alone on the pinned demo photos: detect, embed, verify (no vault, no server).
demo: models binary
	@bash scripts/demo.sh $(BUILD)/facevault

# Cluster mode on this machine (docs/cluster.md, "Operations"): 3 nats-servers (JetStream, one
# NATS cluster) and 3 facevault nodes on free loopback ports, one API key per role; prints the
# nodes' URLs and the keys, stays in the foreground, and Ctrl-C stops it (scripts/cluster.sh
# run). $(CLUSTER_DIR) holds cluster.env, the logs and the data: rebuilt on every run (a cluster
# left running there is stopped first).
CLUSTER_DIR ?= var/cluster
cluster: models binary
	@if [ -d $(CLUSTER_DIR) ]; then bash scripts/cluster.sh down --dir $(CLUSTER_DIR) >/dev/null && rm -rf $(CLUSTER_DIR); fi
	@bash scripts/cluster.sh run --nodes 3 --dir $(CLUSTER_DIR) --bin $(BUILD)/facevault

# A .deb of the binary, the Python module and the service unit (CPack, cmake/Packaging.cmake,
# docs/deploy.md), built from what this target builds: the binary and the module, not the test
# suite. CPack would otherwise build `all` first (its preinstall step depends on it unless
# CMAKE_SKIP_INSTALL_ALL_DEPENDENCY; `cmake --install` never builds anything either).
package: models
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFACEVAULT_BUILD_BENCH=OFF -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON
	cmake --build $(BUILD) -j$(JOBS) --target facevault
	@if cmake --build $(BUILD) --target help | grep -E '^(\.\.\. )?_facevault(:|$$)' >/dev/null; then \
	  echo "cmake --build $(BUILD) -j$(JOBS) --target _facevault"; \
	  cmake --build $(BUILD) -j$(JOBS) --target _facevault; fi
	cd $(BUILD) && cpack -G DEB

# Everything CI runs, each test once: the long runs below on the release build; every other
# test under AddressSanitizer + UBSan (clang, with the libFuzzer targets: the fuzz corpora and
# every regression input replay as tests), then a short run of every fuzzer from that same
# build; the threaded server and index tests under ThreadSanitizer (docs/security.md).
# The release build runs the tests whose subject is behaviour over minutes or under injected
# faults, and which ASan slows most: acceptance_test (every LFW image, View-1 and WIDER
# targets: its figures are the ASan build's to the last digit, checked side by side; 4 minutes
# here against 6 under ASan), the cluster's erasure scan (waits minutes on NATS), the 3-node
# kill test and the disk, master-key and server-kill faults (each ~95 s under ASan). Running
# the whole suite in both builds, as before, took 12 minutes more than the budget allows.
# It also runs what a sanitizer build cannot: the Python module's tests and the README tour
# (no Python module under a sanitizer), `make run` from a clone and the .deb (both need the
# release binary).
RELEASE_TESTS := acceptance_test|cluster_erasure_scan_test|cluster_kill_test|fault_disk|fault_master_key|fault_server_kill|python_test|readme_tour_test|make_run_test|package_test
RELEASE_TEST_TARGETS := facevault acceptance_test cluster_erasure_scan_test cluster_kill_test fault_injection_test
test: models configure
	cmake --build $(BUILD) -j$(JOBS) --target $(RELEASE_TEST_TARGETS)
	@if cmake --build $(BUILD) --target help | grep -E '^(\.\.\. )?_facevault(:|$$)' >/dev/null; then \
	  echo "cmake --build $(BUILD) -j$(JOBS) --target _facevault"; \
	  cmake --build $(BUILD) -j$(JOBS) --target _facevault; fi
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -R '^($(RELEASE_TESTS))$$'
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory test-tsan

SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# clang: libFuzzer needs it. A build folder configured with another compiler is started afresh.
asan-configure: models
	@grep -qs 'CMAKE_CXX_COMPILER:.*clang' $(ASAN_BUILD)/CMakeCache.txt || rm -rf $(ASAN_BUILD)
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFACEVAULT_SANITIZE=address -DFACEVAULT_FUZZ=ON -DFACEVAULT_BUILD_BENCH=OFF

# The whole CTest suite under ASan + UBSan, but the long runs that `make test` gives the
# release build (RELEASE_TESTS, above).
test-asan: asan-configure
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j$(JOBS) -E '^($(RELEASE_TESTS))$$'

# What runs threads against shared state (HTTP server, service lock, pipelines, index scans)
# under TSan. The index tests run without the deadlock detector: hnswlib (the IVF's coarse
# quantiser) locks element pairs in both orders from its single inserting thread, which cannot
# deadlock, and in large graphs TSan loses those stacks so no suppression can name them.
# Only the index tests that run threads are worth TSan's 15-fold slowdown.
TSAN_INDEX_TESTS := Index/BothKinds.ThreadsAndBatchesGiveTheSameAnswers/*:GraphIndex.TwoThreadsBuildAConsistentGraph:GraphIndex.FindsAPopulationEnrolledLateInItsOwnRegion
TSAN_OPTS := halt_on_error=1 second_deadlock_stack=1 history_size=7 suppressions=$(CURDIR)/tests/tsan.supp
test-tsan: models
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACEVAULT_SANITIZE=thread -DFACEVAULT_BUILD_BENCH=OFF
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target server_api_test server_security_test vault_index_test index_test
	cd $(TSAN_BUILD) && TSAN_OPTIONS="$(TSAN_OPTS)" ctest --output-on-failure -j$(JOBS) -R '^(server_api_test|server_security_test|vault_index_test)$$'
	cd $(TSAN_BUILD) && TSAN_OPTIONS="$(TSAN_OPTS) detect_deadlocks=0" GTEST_FILTER='$(TSAN_INDEX_TESTS)' ctest --output-on-failure -R '^index_test$$'

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
