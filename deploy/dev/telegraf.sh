#!/usr/bin/env bash
# Builds Telegraf, the general-purpose collector carehub's ingest is compared
# with (`carebench ingest -compare telegraf`), into the cache: about 10
# minutes the first time, from the Go module proxy like InfluxDB 1.8.
#
#   deploy/dev/telegraf.sh install   build telegraf into the cache (once)
#   deploy/dev/telegraf.sh path      print the telegraf binary path (installing first)
set -euo pipefail

VERSION=v1.37.2
CACHE=${CAREHUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/carehub}
BIN=$CACHE/telegraf-$VERSION/telegraf

install() {
  if [ -x "$BIN" ]; then return 0; fi
  echo "building telegraf $VERSION into $CACHE (about 10 minutes, once)" >&2
  mkdir -p "$(dirname "$BIN")"
  (cd / && GOFLAGS=-buildvcs=false GOBIN="$(dirname "$BIN")" go install "github.com/influxdata/telegraf/cmd/telegraf@$VERSION")
}

case "${1:-}" in
  install) install ;;
  path) install >&2; echo "$BIN" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
