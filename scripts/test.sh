#!/usr/bin/env bash
# Runs every test. The full verbose log goes to a file; the terminal gets each
# package's result and any failure. Under CI=true a skipped test is a failure: CI
# must run everything.
set -uo pipefail
cd "$(dirname "$0")/.."
log="${TEST_LOG:-$(mktemp -t eipgw-test-XXXXXX.log)}"
# The end-to-end tests run after the other packages, not beside them: go test runs
# two packages at once on this two-core machine, and the e2e tests' real traffic
# (iperf3 at 200 Mbit/s through one EIP's policer) then competes for the CPU with
# the dataplane's test runs.
go test -count=1 -timeout 20m -v $(go list ./... | grep -v '/e2e$') >"$log" 2>&1
rc=$?
go test -count=1 -timeout 20m -v ./e2e >>"$log" 2>&1 || rc=1
grep -E '^(ok|FAIL|panic:|--- FAIL)|^\s+--- FAIL|^\s+\S+_test\.go:[0-9]+:' "$log"
if grep -qE -- '--- SKIP' "$log"; then
	echo "skipped tests:"
	grep -E -- '--- SKIP' -A1 "$log"
	if [ "${CI:-}" = "true" ]; then
		echo "CI=true: a skipped test is a failure"
		rc=1
	fi
fi
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
echo "full log: $log"
echo "$passed passed, $failed failed"
exit $rc
