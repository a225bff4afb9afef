# pytest-shutdown shell server: one long-lived channel per episode.
# Request on stdin:  "<nbytes> <timeout_s> <max_output>\n" followed by nbytes of command.
# Reply on stdout:   "RESULT <rc> <timed_out> <elapsed_us> <truncated> <nbytes>\n" + output.
# Each command runs as `bash --login -c` in its own process group (set -m) so a timeout
# kills everything it started. Output goes through a file so it never blocks the channel.
LC_ALL=C
exec 2>/dev/null
set -m
trap 'exit 143' TERM
out=/tmp/.pytest-shutdown-out.$$
: >"$out" || { printf 'FAIL cannot write %s\n' "$out"; exit 98; }
printf 'READY\n'
while read -r nbytes tmo max; do
  cmd=
  [ "$nbytes" -gt 0 ] && { IFS= read -r -N "$nbytes" cmd || exit 0; }
  start=${EPOCHREALTIME/./}
  bash --login -c "$cmd" </dev/null >"$out" 2>&1 &
  pid=$!
  ( sleep "$tmo"; kill -KILL -- "-$pid" ) >/dev/null 2>&1 &
  watcher=$!
  wait "$pid"
  rc=$?
  end=${EPOCHREALTIME/./}
  kill -KILL -- "-$watcher" 2>/dev/null
  wait "$watcher" 2>/dev/null
  elapsed=$((end - start))
  timed_out=0
  [ "$elapsed" -ge "${tmo%.*}000000" ] && [ "$rc" -ge 128 ] && timed_out=1
  body=
  IFS= read -r -d '' -N "$((max + 1))" body <"$out" 2>/dev/null
  truncated=0
  if [ "${#body}" -gt "$max" ]; then body=${body:0:max}; truncated=1; fi
  printf 'RESULT %d %d %d %d %d\n%s' "$rc" "$timed_out" "$elapsed" "$truncated" "${#body}" "$body"
done
