#!/usr/bin/env bash
# Runs golangci-lint with the project's .golangci.yml, building the pinned
# version into the cache once. It is built from source with `go install`
# (a few minutes, once) rather than downloaded as a prebuilt binary, because
# the Go module proxy is all a development or CI machine needs to reach and a
# checksum-verified module build is as reproducible as the pinned version.
#
#   deploy/dev/lint.sh install    build golangci-lint into the cache (once)
#   deploy/dev/lint.sh path       print the golangci-lint binary path
#   deploy/dev/lint.sh [ARGS...]  golangci-lint run ARGS (default ./...)
set -euo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/../.."

# Bump deliberately: a new release brings new checks and new findings.
VERSION=v2.15.0
CACHE=${CAREHUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/carehub}
BIN=$CACHE/golangci-lint-$VERSION/golangci-lint

install() {
  if [ -x "$BIN" ]; then return 0; fi
  mkdir -p "$(dirname "$BIN")"
  # One build at a time: a second `make lint` started meanwhile waits for
  # the first build instead of starting its own.
  if command -v flock >/dev/null && [ -z "${CAREHUB_LINT_LOCKED:-}" ]; then
    CAREHUB_LINT_LOCKED=1 flock "$(dirname "$BIN")/.lock" "$SELF" install
    return
  fi
  if [ -x "$BIN" ]; then return 0; fi
  echo "building golangci-lint $VERSION into $CACHE (a few minutes, once)" >&2
  # Build outside the project's module so its go.mod is not touched; a
  # temporary GOBIN so an interrupted build never leaves a half-written binary.
  local tmp status=0
  tmp=$(mktemp -d "$(dirname "$BIN")/.build.XXXXXX")
  (cd / && GOFLAGS=-buildvcs=false GOBIN="$tmp" \
    go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$VERSION") || status=$?
  if [ "$status" -eq 0 ]; then mv "$tmp/golangci-lint" "$BIN"; fi
  rm -rf "$tmp"
  return "$status"
}

case "${1:-}" in
  install) install ;;
  path) echo "$BIN" ;;
  *)
    install
    if [ $# -eq 0 ]; then set -- ./...; fi
    exec "$BIN" run "$@"
    ;;
esac
