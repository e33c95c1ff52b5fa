# Sourced by scripts/test and scripts/bench-import: start_throwaway_pg starts a
# PostgreSQL server in a temporary directory on a free port and exports
# PG_URL; the server is stopped and removed when the calling script exits.
# PostgreSQL refuses to run as root, so as root it runs as the postgres user.

start_throwaway_pg() {
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$pgbin/initdb" ] || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2; return 1; }
  PG_DIR=$(mktemp -d /tmp/shoko-pg.XXXXXX)
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_AS=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$PG_DIR"
    PG_AS=(runuser -u postgres --)
  fi
  PG_BIN=$pgbin
  trap stop_throwaway_pg EXIT
  "${PG_AS[@]}" "$pgbin/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
  # -w waits until the server accepts connections. Extra settings come from $PG_OPTS.
  "${PG_AS[@]}" "$pgbin/pg_ctl" -D "$PG_DIR/data" -w -l "$PG_DIR/log" \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_OPTS:-}" start >/dev/null
  export PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_throwaway_pg() {
  [ -n "${PG_DIR:-}" ] || return 0
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
