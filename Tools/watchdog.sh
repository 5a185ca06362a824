#!/usr/bin/env bash
# Runs a test command with a time limit, its output line-buffered.
#
#   Tools/watchdog.sh SECONDS LABEL command [arguments...]
#
# Past SECONDS, it prints what every process the command started is doing (the threads'
# backtraces, through gdb, and the process tree), kills them all
# and exits with 124. A hung test then fails in minutes with the evidence in the log, instead
# of running until CI's own limit cuts the log at a 4 KiB buffer boundary.
#
# stdbuf makes the standard output (C stdio) of the command and of everything it starts
# line-buffered, so the last test that started is the last line printed. The command runs in
# a session of its own, so that all it started can be found and killed; Ctrl-C or a TERM to
# this script kills them too.
set -uo pipefail
limit=$1 label=$2
shift 2

setsid stdbuf -oL "$@" &
leader=$!
trap 'pkill -KILL -s "$leader"; exit 130' INT TERM
deadline=$((SECONDS + limit))
while kill -0 "$leader" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
if ! kill -0 "$leader" 2>/dev/null; then
  wait "$leader"
  exit $?
fi

echo "watchdog: $label still running after $limit s; what its processes are doing:" >&2
ps -o pid,ppid,etime,stat,args --sid "$leader" >&2
demangle=cat
command -v swift-demangle >/dev/null && demangle="swift-demangle --simplified"
for pid in $(ps -o pid= --sid "$leader"); do
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
  case "$exe" in
    *.xctest | */nibble | */swift-build | */swift-test) ;;
    *) continue ;;
  esac
  echo "watchdog: threads of $pid ($exe):" >&2
  if command -v gdb >/dev/null; then
    timeout 120 gdb -p "$pid" -batch -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread|#)' | $demangle >&2
  else
    echo "watchdog: no gdb to show them" >&2
  fi
done
pkill -KILL -s "$leader"
wait "$leader" 2>/dev/null
echo "watchdog: $label killed after $limit s" >&2
exit 124
