# pytest-shutdown shell server: one long-lived channel per episode.
# Request on stdin:  "<nbytes> <timeout_s> <max_output>\n" followed by nbytes of command.
# Reply on stdout:   "RESULT <rc> <timed_out> <elapsed_us> <truncated> <nbytes>\n" + output.
# Each command runs as `bash --login -c` in its own process group (set -m), so a timeout
# kills everything it started. Its exit status comes back through a private FIFO, which
# gives a timed wait without forking a watcher per command. Output goes through a file
# so it never blocks the channel. Needs bash >= 5 (EPOCHREALTIME).
LC_ALL=C
exec 2>/dev/null
set -m
trap 'exit 143' TERM
out=/tmp/.pytest-shutdown-out.$$
done_fifo=/tmp/.pytest-shutdown-done.$$
{ mkfifo -m 600 "$done_fifo" && exec 3<>"$done_fifo" && rm -f "$done_fifo" && : >"$out"; } ||
  { printf 'FAIL cannot prepare %s\n' "$out"; exit 98; }
printf 'READY\n'
while read -r nbytes tmo max; do
  cmd=
  [ "$nbytes" -gt 0 ] && { IFS= read -r -N "$nbytes" cmd || exit 0; }
  start=${EPOCHREALTIME/./}
  { bash --login -c "$cmd" </dev/null >"$out" 2>&1 3>&-; echo "$?" >&3; } &
  pid=$!
  timed_out=0
  if ! IFS= read -r -t "$tmo" -u 3 rc; then
    kill -KILL -- "-$pid"
    timed_out=1
    rc=137
  fi
  end=${EPOCHREALTIME/./}
  wait "$pid"
  while read -r -t 0 -u 3 && IFS= read -r -t 1 -u 3 _; do :; done
  body=
  IFS= read -r -d '' -N "$((max + 1))" body <"$out"
  truncated=0
  if [ "${#body}" -gt "$max" ]; then body=${body:0:max}; truncated=1; fi
  printf 'RESULT %d %d %d %d %d\n%s' "$rc" "$timed_out" "$((end - start))" "$truncated" \
    "${#body}" "$body"
done
