#!/usr/bin/env bash
# `make demo`: InfluxDB 1.8 on 127.0.0.1:8086, carehub on its embedded MQTT
# broker and NATS, and homesim with a handful of simulated homes. Ctrl-C
# stops all three; `make stop-demo` stops a demo left running elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUN=.run/demo
HTTP=${CARE_HTTP_ADDR:-127.0.0.1:8780}
MQTT=${CARE_MQTT_LISTEN:-127.0.0.1:18830}
TOKEN=${CARE_ADMIN_TOKEN:-demo-admin-token-not-for-production}
HOMES=${HOMES:-5}
SPEED=${SPEED:-60}
export CAREHUB_INFLUX_ADDR=${CAREHUB_INFLUX_ADDR:-127.0.0.1:8086}

stop() {
  for p in homesim carehub; do
    if [ -f "$RUN/$p.pid" ]; then
      kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true
      rm -f "$RUN/$p.pid"
    fi
  done
  deploy/dev/influxdb.sh stop .run/influxdb
}

if [ "${1:-}" = stop ]; then stop; exit 0; fi

mkdir -p "$RUN"
deploy/dev/influxdb.sh start .run/influxdb
trap 'echo; echo "stopping the demo"; stop' EXIT

CARE_ADMIN_TOKEN=$TOKEN CARE_HTTP_ADDR=$HTTP CARE_MQTT_LISTEN=$MQTT \
CARE_INFLUX_URL="http://$CAREHUB_INFLUX_ADDR" CARE_DATA_DIR=.run/data CARE_LOG_FORMAT=console \
  bin/carehub serve >"$RUN/carehub.log" 2>&1 &
echo $! >"$RUN/carehub.pid"
for _ in $(seq 1 300); do
  curl -sf "http://$HTTP/readyz" >/dev/null && break
  kill -0 "$(cat "$RUN/carehub.pid")" 2>/dev/null || { cat "$RUN/carehub.log"; exit 1; }
  sleep 0.1
done
curl -sf "http://$HTTP/readyz" >/dev/null || { echo "carehub did not become ready; see $RUN/carehub.log"; exit 1; }

# -incidents-per-day: scenarios (falls, SOS, fever, a device going
# offline...) come often enough for alerts to show up during a demo.
bin/homesim -api "http://$HTTP" -token "$TOKEN" -mqtt "tcp://$MQTT" -homes "$HOMES" -speed "$SPEED" \
  -incidents-per-day 6 -state "$RUN/homesim.json" >"$RUN/homesim.log" 2>&1 &
echo $! >"$RUN/homesim.pid"
RES=sim-1-r0001 # homesim's ids are deterministic: {prefix}-{seed}-r0001 is the first resident

# Console logins: a coordinator, and a caregiver assigned the first resident
# (once homesim has registered it). Creating them again answers 409: fine.
COORD_PW=${COORD_PW:-demo-coordinator-password}
CARE_PW=${CARE_PW:-demo-caregiver-password}
api() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
for _ in $(seq 1 150); do
  [ "$(api "http://$HTTP/api/v1/residents/$RES")" = 200 ] && break
  sleep 0.2
done
api -d "{\"id\":\"coord\",\"name\":\"Demo Coordinator\",\"role\":\"coordinator\",\"password\":\"$COORD_PW\"}" "http://$HTTP/api/v1/users" >/dev/null
api -d "{\"id\":\"care1\",\"name\":\"Demo Caregiver\",\"role\":\"caregiver\",\"password\":\"$CARE_PW\"}" "http://$HTTP/api/v1/users" >/dev/null
api -X PUT -d "{\"resident_ids\":[\"$RES\"]}" "http://$HTTP/api/v1/users/care1/residents" >/dev/null

cat <<MSG

carehub is running with $HOMES simulated homes (simulated time runs ${SPEED}x).
  Console        http://$HTTP/         (coordinator: coord / $COORD_PW, caregiver: care1 / $CARE_PW)
  API            http://$HTTP          (admin token: $TOKEN)
  MQTT (devices) tcp://$MQTT    (embedded broker)
  InfluxDB       http://$CAREHUB_INFLUX_ADDR
  logs           $RUN/carehub.log, $RUN/homesim.log

Try:
  curl -s -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/residents/$RES/readings?metric=heart_rate" | head -c 600; echo
  curl -s -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/residents/$RES/readings?metric=spo2&every=5m&fn=min" | head -c 600; echo
  curl -s -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/alerts?status=open" | head -c 800; echo
  curl -N -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/alerts/stream"     # live alert transitions (SSE)
  curl -s "http://$HTTP/readyz"; echo
  curl -s "http://$HTTP/metrics" | grep carehub_ingest

Following homesim's log below; Ctrl-C stops everything.
MSG
tail -n +1 -f "$RUN/homesim.log" &
TAIL=$!
wait "$(cat "$RUN/homesim.pid")" 2>/dev/null || true
kill $TAIL 2>/dev/null || true
