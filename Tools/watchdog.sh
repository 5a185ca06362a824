#!/usr/bin/env bash
# Runs a test command with a time limit, its output line-buffered.
#
#   Tools/watchdog.sh SECONDS LABEL command [arguments...]
#
# Past SECONDS, it prints the tests that started and did not finish, what every process the
# command started is doing (the threads' backtraces, through gdb, and the process tree),
# kills them all and exits with 124. A hung test then fails in minutes with the evidence in
# the log, instead of running until CI's own limit cuts the log at a 4 KiB buffer boundary.
# With WATCHDOG_REPORT set, that report is also appended to the file it names (`make test`
# prints it again at the very end, where a log's tail shows it).
#
# stdbuf makes the standard output (C stdio) of the command and of everything it starts
# line-buffered, so the last test that started is the last line printed. The command runs in
# a session of its own, so that all it started can be found and killed; Ctrl-C or a TERM to
# this script kills them too.
set -uo pipefail
limit=$1 label=$2
shift 2
output=$(mktemp "${TMPDIR:-/tmp}/watchdog.XXXXXX")
trap 'rm -f "$output"' EXIT

setsid stdbuf -oL "$@" > >(tee "$output") 2>&1 &
leader=$!
trap 'pkill -KILL -s "$leader"; rm -f "$output"; exit 130' INT TERM
deadline=$((SECONDS + limit))
while kill -0 "$leader" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
if ! kill -0 "$leader" 2>/dev/null; then
  wait "$leader"
  status=$?
  sleep 0.2  # tee's last lines
  exit $status
fi

report() {
  echo "watchdog: $label still running after $limit s."
  echo "watchdog: tests started and not finished:"
  # Swift Testing prints "◇ Test name() started." and then "✔ Test name() passed after ..."
  # or "✘ Test name() failed after ..." (a parameterised test's cases end with their test).
  awk '/◇ Test .* started\./ && !/◇ Test (case |run )/ { t = $0; sub(/.*◇ Test /, "", t); sub(/ started\..*/, "", t); open[t] = 1 }
       /Test .* (passed|failed) after|Test .* skipped/ { line = $0; sub(/^[^T]*Test /, "", line)
                                                         for (t in open) if (index(line, t) == 1) delete open[t] }
       END { for (t in open) print "  " t }' "$output"
  echo "watchdog: processes:"
  ps -o pid,ppid,etime,stat,args --sid "$leader"
  local demangle=cat
  command -v swift-demangle >/dev/null && demangle="swift-demangle --simplified"
  for pid in $(ps -o pid= --sid "$leader"); do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    case "$exe" in
      *.xctest | */nibble | */swift-build | */swift-test) ;;
      *) continue ;;
    esac
    echo "watchdog: threads of $pid ($exe):"
    if command -v gdb >/dev/null; then
      timeout 120 gdb -p "$pid" -batch -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread|#)' | $demangle
    else
      echo "  (no gdb to show them)"
    fi
  done
}
if [ -n "${WATCHDOG_REPORT:-}" ]; then report | tee -a "$WATCHDOG_REPORT" >&2; else report >&2; fi
pkill -KILL -s "$leader"
wait "$leader" 2>/dev/null
echo "watchdog: $label killed after $limit s" >&2
exit 124
