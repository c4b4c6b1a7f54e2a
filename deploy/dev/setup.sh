#!/usr/bin/env bash
# Installs what carehub's tests, demo and benchmarks need on a fresh Debian 12
# machine: Mosquitto (the real broker the integration tests and the ingest
# benchmark run against), chromium with a Korean font (the console's browser
# tests) and InfluxDB OSS 1.8 (built from source once, see
# influxdb.sh). Idempotent: does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The console's browser tests drive Debian's chromium (web/browser_test.go);
# without a Korean font Hangul renders as empty boxes in screenshots.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -d /usr/share/fonts/truetype/nanum ] || need_apt+=(fonts-nanum)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "installing ${need_apt[*]} from Debian's packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
deploy/dev/influxdb.sh install
