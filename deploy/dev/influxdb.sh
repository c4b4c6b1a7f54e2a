#!/usr/bin/env bash
# Installs and runs InfluxDB OSS 1.8 for development and tests, on loopback,
# with its data in a local directory. InfluxDB 1.8 is built from source with
# `go install` (about 70 s, once) because it is pure Go and needs nothing but
# the Go module proxy; with Flux enabled it serves the v2 write and query API
# that carehub speaks.
#
#   deploy/dev/influxdb.sh install        build influxd into the cache (once)
#   deploy/dev/influxdb.sh path           print the influxd binary path
#   deploy/dev/influxdb.sh start [DIR]    start on $CAREHUB_INFLUX_ADDR (default 127.0.0.1:8086)
#   deploy/dev/influxdb.sh stop [DIR]     stop the one started with DIR
set -euo pipefail

VERSION=v1.8.10
CACHE=${CAREHUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/carehub}
BIN=$CACHE/influxd-$VERSION/influxd
ADDR=${CAREHUB_INFLUX_ADDR:-127.0.0.1:8086}
DB=${CAREHUB_INFLUX_DB:-care}

install() {
  if [ -x "$BIN" ]; then return 0; fi
  echo "building influxd $VERSION into $CACHE (about 70 s, once)" >&2
  mkdir -p "$(dirname "$BIN")"
  # Build outside the project's module so its go.mod is not touched.
  (cd / && GOFLAGS=-buildvcs=false GOBIN="$(dirname "$BIN")" go install "github.com/influxdata/influxdb/cmd/influxd@$VERSION")
}

start() {
  local dir=${1:-.run/influxdb}
  install
  mkdir -p "$dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "influxd already running (pid $(cat "$dir/pid")) on $ADDR" >&2
    return 0
  fi
  local host=${ADDR%:*} port=${ADDR##*:}
  INFLUXDB_REPORTING_DISABLED=true \
  INFLUXDB_BIND_ADDRESS="$host:$((port + 2))" \
  INFLUXDB_HTTP_BIND_ADDRESS="$ADDR" \
  INFLUXDB_HTTP_FLUX_ENABLED=true \
  INFLUXDB_HTTP_LOG_ENABLED=false \
  INFLUXDB_HTTP_MAX_BODY_SIZE=0 \
  INFLUXDB_LOGGING_LEVEL=warn \
  INFLUXDB_META_DIR="$dir/meta" \
  INFLUXDB_DATA_DIR="$dir/data" \
  INFLUXDB_DATA_WAL_DIR="$dir/wal" \
  INFLUXDB_DATA_QUERY_LOG_ENABLED=false \
    nohup "$BIN" >"$dir/influxd.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 300); do
    if curl -sf "http://$ADDR/ping" >/dev/null; then
      curl -sf -XPOST "http://$ADDR/query" --data-urlencode "q=CREATE DATABASE $DB" >/dev/null
      echo "influxd $VERSION running on http://$ADDR (pid $(cat "$dir/pid"), data in $dir)" >&2
      return 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/influxd.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "influxd did not answer on $ADDR within 30 s; see $dir/influxd.log" >&2
  exit 1
}

stop() {
  local dir=${1:-.run/influxdb}
  [ -f "$dir/pid" ] || return 0
  local pid; pid=$(cat "$dir/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$dir/pid"
}

case "${1:-}" in
  install) install ;;
  path) install; echo "$BIN" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 install|path|start [DIR]|stop [DIR]" >&2; exit 2 ;;
esac
