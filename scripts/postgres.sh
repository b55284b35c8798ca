#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for tests, benchmarks and the demo (Debian's postgresql package; no Docker).
#   postgres.sh start DATA_DIR PORT   initdb DATA_DIR (first time), start on 127.0.0.1:PORT, wait until it accepts
#                                     connections, create database "skyqa" (user "skyqa", trust auth on loopback)
#   postgres.sh stop DATA_DIR         clean shutdown (no-op when none runs)
#   postgres.sh crash DATA_DIR        immediate shutdown: what a killed server leaves (crash recovery on next start)
#   postgres.sh url DATA_DIR          print the SQLAlchemy URL of the cluster on DATA_DIR
# The server refuses to run as root: as root, the cluster belongs to (and runs as) the `postgres` system user.
set -euo pipefail
die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
  done
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
  die "no PostgreSQL server found (scripts/system_deps.sh installs it)"
}

as_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local data="$1" port="$2" bin
  bin="$(bindir)"
  mkdir -p "$data"
  [[ "$(id -u)" -eq 0 ]] && chown postgres "$data" && chmod 700 "$data"
  if [[ ! -f "$data/pgdata/PG_VERSION" ]]; then
    as_owner "$bin/initdb" -D "$data/pgdata" -U skyqa --auth=trust -E UTF8 --locale=C.UTF-8 >"$data/initdb.log"
  fi
  echo "$port" >"$data/port" && [[ "$(id -u)" -eq 0 ]] && chown postgres "$data/port"
  as_owner "$bin/pg_ctl" -D "$data/pgdata" -l "$data/server.log" -w -t 120 \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=50" start >/dev/null \
    || { tail -20 "$data/server.log" >&2; die "server did not start"; }
  if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U skyqa -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='skyqa'" | grep -q 1; then
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U skyqa skyqa
  fi
}

stop() {
  local data="$1" mode="${2:-fast}"
  [[ -f "$data/pgdata/postmaster.pid" ]] || return 0
  as_owner "$(bindir)/pg_ctl" -D "$data/pgdata" -m "$mode" -w -t 120 stop >/dev/null
}

case "${1:-}" in
  start) [[ $# -eq 3 ]] || die "usage: postgres.sh start DATA_DIR PORT"; start "$2" "$3" ;;
  stop) [[ $# -eq 2 ]] || die "usage: postgres.sh stop DATA_DIR"; stop "$2" fast ;;
  crash) [[ $# -eq 2 ]] || die "usage: postgres.sh crash DATA_DIR"; stop "$2" immediate ;;
  url) [[ $# -eq 2 ]] || die "usage: postgres.sh url DATA_DIR"; echo "postgresql+psycopg://skyqa@127.0.0.1:$(cat "$2/port")/skyqa" ;;
  *) die "usage: postgres.sh start|stop|crash|url DATA_DIR [PORT]" ;;
esac
