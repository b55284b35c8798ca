# Shell helpers shared by the scripts that run local servers (kafka.sh, triton.sh). Source, don't run.

# Stop the process named by a pid file: TERM, up to 30 s to finish, then KILL; the file is removed.
stop_pidfile() {
  local file="${1:?PIDFILE}" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  fi
  rm -f "$file"
}
