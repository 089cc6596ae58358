#!/usr/bin/env bash
# Runs the layering check on the fixture tree and passes only when it fails for the planted
# upward include (fixture/vault/upward_include.cpp line 5), and for nothing else: a check that
# exits non-zero for another reason (a missing directory, a broken script) does not count.
#   expect_caught.sh CHECK_SCRIPT FIXTURE_DIR
set -uo pipefail
out=$("$1" "$2" 2>&1)
rc=$?
echo "$out"
expected="vault/upward_include.cpp:5: module 'vault' may not include 'service/…'"
if [[ $rc -ne 1 ]]; then echo "expected exit 1 from the layering check, got $rc" >&2; exit 1; fi
if [[ $out != *"$expected"* ]]; then echo "the layering check did not name: $expected" >&2; exit 1; fi
if [[ $(grep -c "may not include" <<<"$out") -ne 1 ]]; then echo "expected exactly one violation" >&2; exit 1; fi
echo "the upward include is caught"
