#!/usr/bin/env bash
# bench/run_ws_sessions.sh: what the session transport over WebSocket (subprotocol
# wsbridge.session.v1: numbered messages, acks, resume) costs against the transparent relay, in
# one run through one wsbridge in front of the example Node backend. See bench/README.md
# ("WebSocket sessions").
#
#   bench/run_ws_sessions.sh                       # defaults below, about 4 minutes
#   ROUNDS=7 DURATION=20s bench/run_ws_sessions.sh
#   IDLE=0 bench/run_ws_sessions.sh                # echo step only
#   SKIP_BUILD=1 bench/run_ws_sessions.sh          # reuse build-bench/ binaries as they are
#   CPU_LOADGEN=0 CPU_PROXY=1 CPU_BACKEND=1 bench/run_ws_sessions.sh   # taskset cpu lists
#
# Steps:
#  (a) echo: CONNECTIONS connections x SIZE-byte binary messages, closed loop, through the
#      same proxy and backend: relay, session, relay, session, ... (ROUNDS rounds, interleaved
#      so that drift in machine speed hits both alike), after one unrecorded priming run each.
#      Medians of msgs/s and p50 per mode, and the ratios session/relay.
#  (b) memory: a fresh proxy; its RSS, PSS and anonymous memory before and while IDLE idle
#      WebSocket sessions are held (loadgen idle --session 1), divided by IDLE; then the same
#      for IDLE relayed WebSocket connections on another fresh proxy, as the same-run reference.
# Results: a table on stdout and build-bench/bench-results/ws_sessions.json; raw lines and logs
# in build-bench/bench-results/ws_sessions/ (never committed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
OUT=$BUILD/bench-results
RAW=$OUT/ws_sessions
CONNECTIONS=${CONNECTIONS:-100}
SIZE=${SIZE:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-5}
PRIME=${PRIME:-3s}   # unrecorded priming run per mode; 0 skips it
IDLE=${IDLE:-4000}   # idle sessions (and relayed connections) in step (b); 0 skips it
HOLD=${HOLD:-120s}   # upper bound; the hold ends (SIGINT) once memory is sampled
CPU_LOADGEN=${CPU_LOADGEN:-}
CPU_PROXY=${CPU_PROXY:-}
CPU_BACKEND=${CPU_BACKEND:-}
WAIT_QUIET=${WAIT_QUIET:-60} # seconds to wait for a quiet machine before each run
NOISE_PCT=${NOISE_PCT:-10}   # "quiet": other processes use at most this % of all CPUs

BACKEND_PID=
PROXY_PID=
LOAD_PID=

log() { printf '%s\n' "run_ws_sessions.sh: $*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
    stop_pid "$LOAD_PID"
    stop_pid "$PROXY_PID"
    stop_pid "$BACKEND_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `[taskset -c LIST]` as an array, so that `"${PIN[@]}" cmd &` leaves $! the PID of cmd.
pin() { if [[ -n $1 ]]; then printf 'taskset\n-c\n%s\n' "$1"; fi; }
mapfile -t PIN_LOADGEN < <(pin "$CPU_LOADGEN")
mapfile -t PIN_PROXY < <(pin "$CPU_PROXY")
mapfile -t PIN_BACKEND < <(pin "$CPU_BACKEND")

seconds_of() { awk -v d="$1" -v t="$TICKS" 'BEGIN { print d / t }'; }

# --- limits and build ----------------------------------------------------------------------
# Step (b): the proxy holds two sockets per idle session (client + backend), loadgen one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
[[ $FDS == unlimited || $FDS -ge $((IDLE * 2 + 512)) ]] ||
    die "ulimit -n is $FDS (hard $(ulimit -Hn)); need $((IDLE * 2 + 512)) for IDLE=$IDLE"

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building Release into $BUILD"
    mkdir -p "$BUILD"
    (cd "$ROOT" && cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPROXY_TESTS=OFF &&
        cmake --build "$BUILD" -j2 --target wsbridge loadgen) \
        >"$BUILD/build-ws-sessions.log" 2>&1 ||
        die "build failed; see $BUILD/build-ws-sessions.log"
fi
[[ -d $ROOT/node_modules/ws ]] || (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null) ||
    die "npm ci failed (the backend needs node_modules/ws)"
WSBRIDGE=$BUILD/wsbridge
LOADGEN=$BUILD/bench/loadgen
BACKEND_JS=$ROOT/examples/backend/server.mjs
[[ -x $WSBRIDGE && -x $LOADGEN ]] || die "missing binaries in $BUILD"
mkdir -p "$RAW"
rm -f "$RAW"/*.jsonl "$RAW"/*.log "$RAW"/*.out "$RAW"/*.yaml

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE=$(printf 'nproc=%s cpu="%s" kernel=%s' "$(nproc)" "$CPU_MODEL" "$(uname -r)")
VERSIONS=$(printf 'wsbridge=%s libuv=%s node=%s cxx="%s"' \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    "$(pkg-config --modversion libuv)" "$(node --version)" "$(c++ --version | head -1)")
LAYOUT="loadgen=${CPU_LOADGEN:-any} proxy=${CPU_PROXY:-any} backend=${CPU_BACKEND:-any}"
echo "machine:  $MACHINE"
echo "versions: $VERSIONS"
echo "pinning:  $LAYOUT"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- processes -----------------------------------------------------------------------------
start_backend() { # start_backend TAG
    local tag=$1 line
    "${PIN_BACKEND[@]}" node "$BACKEND_JS" --port 0 --quiet \
        >"$RAW/backend-$tag.out" 2>"$RAW/backend-$tag.log" &
    BACKEND_PID=$!
    line=$(wait_for_line "$RAW/backend-$tag.out" 'listening on 127\.0\.0\.1:[0-9]+' 15 \
        "$BACKEND_PID") || die "backend did not start: $(tail -n 3 "$RAW/backend-$tag.log")"
    BACKEND_PORT=${line##*:}
}

# The same route serves both modes: a WebSocket offering wsbridge.session.v1 gets a session,
# any other the relay. Session logging is per session at info level, as in production.
start_proxy() { # start_proxy TAG
    local tag=$1 line
    cat >"$RAW/wsbridge-$tag.yaml" <<EOF
# Generated by bench/run_ws_sessions.sh: one loopback listener, one route, limits out of the way.
listen:
  - address: 127.0.0.1:0
limits:
  max_connections: 20000
  max_connections_per_ip: 20000
  rate: { messages_per_second: 1000000000, burst: 1000000000 }
  max_sessions: 20000
routes:
  - path: /echo
    backend: ws://127.0.0.1:$BACKEND_PORT/echo
EOF
    "${PIN_PROXY[@]}" "$WSBRIDGE" -c "$RAW/wsbridge-$tag.yaml" 2>"$RAW/proxy-$tag.log" &
    PROXY_PID=$!
    line=$(wait_for_line "$RAW/proxy-$tag.log" 'event=listening .*address=127\.0\.0\.1:[0-9]+' \
        15 "$PROXY_PID") || die "proxy did not start: $(tail -n 3 "$RAW/proxy-$tag.log")"
    PROXY_PORT=$(sed -E 's/.*address=127\.0\.0\.1:([0-9]+).*/\1/' <<<"$line")
}

stop_pair() {
    stop_pid "$PROXY_PID"
    PROXY_PID=
    stop_pid "$BACKEND_PID"
    BACKEND_PID=
}

check_alive() {
    kill -0 "$PROXY_PID" 2>/dev/null || die "proxy died during $1: $(tail -n 5 "$RAW"/proxy-*.log)"
    kill -0 "$BACKEND_PID" 2>/dev/null || die "backend died during $1"
}

session_flag() { if [[ $1 == session ]]; then echo 1; else echo 0; fi; }

# --- (a) echo: relay vs session ------------------------------------------------------------
TIME_CMD=()
if [[ -x /usr/bin/time ]]; then
    TIME_CMD=(/usr/bin/time -f '%U %S' -o "$RAW/loadgen.time")
fi

# run_one MODE TAG: one loadgen echo run; appends {"mode":..,"run":TAG,...} to runs.jsonl with
# the CPU seconds the proxy, the backend and loadgen used, and the share of all CPU time that
# other processes took meanwhile.
run_one() {
    local mode=$1 tag=$2 json rc=0 cpu0 p0 b0 p1 b1 lg other
    wait_quiet
    cpu0=$(stat_cpu)
    p0=$(proc_ticks "$PROXY_PID")
    b0=$(proc_ticks "$BACKEND_PID")
    : >"$RAW/loadgen.time"
    json=$("${TIME_CMD[@]}" "${PIN_LOADGEN[@]}" "$LOADGEN" echo \
        --url "ws://127.0.0.1:$PROXY_PORT/echo" --connections "$CONNECTIONS" --size "$SIZE" \
        --duration "$DURATION" --warmup "$WARMUP" --session "$(session_flag "$mode")" \
        2>>"$RAW/loadgen.log") || rc=$?
    p1=$(proc_ticks "$PROXY_PID")
    b1=$(proc_ticks "$BACKEND_PID")
    [[ $json == \{* ]] || die "loadgen $tag failed (exit $rc): $(tail -n 5 "$RAW/loadgen.log")"
    lg=$(awk -v t="$TICKS" '{ printf "%d", ($1 + $2) * t } END { if (NR == 0) print 0 }' \
        "$RAW/loadgen.time")
    other=$(busy_pct "$cpu0" "$(stat_cpu)" $((p1 - p0 + b1 - b0 + lg)))
    log "echo $tag: other_cpu_pct=$other $json"
    printf '{"run":"%s","kind":"%s","other_cpu_pct":%s,"proxy_cpu_s":%s,"backend_cpu_s":%s,' \
        "$tag" "$mode" "$other" "$(seconds_of $((p1 - p0)))" "$(seconds_of $((b1 - b0)))" \
        >>"$RAW/runs.jsonl"
    printf '"loadgen_cpu_s":%s,%s\n' "$(seconds_of "$lg")" "${json#\{}" >>"$RAW/runs.jsonl"
}

start_backend echo
start_proxy echo
log "echo: backend on $BACKEND_PORT, proxy on $PROXY_PORT (pid $PROXY_PID)"
if [[ $PRIME != 0 && $PRIME != 0s ]]; then
    for mode in relay session; do
        "${PIN_LOADGEN[@]}" "$LOADGEN" echo --url "ws://127.0.0.1:$PROXY_PORT/echo" \
            --connections "$CONNECTIONS" --size "$SIZE" --duration "$PRIME" --warmup 0 \
            --session "$(session_flag $mode)" >/dev/null 2>>"$RAW/loadgen.log" ||
            die "priming $mode failed: $(tail -n 3 "$RAW/loadgen.log")"
    done
fi
: >"$RAW/runs.jsonl"
for round in $(seq "$ROUNDS"); do
    for mode in relay session; do
        run_one "$mode" "$mode-$round"
        check_alive "echo $mode-$round"
    done
done
ECHO_HWM_KIB=$(kib_field VmHWM "/proc/$PROXY_PID/status")
stop_pair

# --- (b) memory per idle WebSocket session ---------------------------------------------------
# A fresh proxy per mode, so that the baseline holds nothing left over from the echo runs.
memory() { # memory: "rss pss anonymous" of the proxy, KiB
    printf '%s %s %s\n' "$(kib_field VmRSS "/proc/$PROXY_PID/status")" \
        "$(kib_field Pss "/proc/$PROXY_PID/smaps_rollup")" \
        "$(kib_field Anonymous "/proc/$PROXY_PID/smaps_rollup")"
}

idle_step() { # idle_step MODE: appends one JSON object to idle.jsonl
    local mode=$1 before held after open_line json
    start_backend "idle-$mode"
    start_proxy "idle-$mode"
    sleep 1
    before=$(memory)
    "${PIN_LOADGEN[@]}" "$LOADGEN" idle --url "ws://127.0.0.1:$PROXY_PORT/echo" \
        --connections "$IDLE" --hold "$HOLD" --session "$(session_flag "$mode")" \
        >"$RAW/idle-$mode.out" 2>>"$RAW/loadgen.log" &
    LOAD_PID=$!
    open_line=$(wait_for_line "$RAW/idle-$mode.out" '^(all [0-9]+ open|opened [0-9]+ of)' 180 \
        "$LOAD_PID") || die "idle loadgen did not open: $(tail -n 3 "$RAW/loadgen.log")"
    log "idle-$mode: $open_line"
    sleep 3 # let the proxy settle (backend handshakes, deferred frees)
    check_alive "idle-$mode hold"
    held=$(memory)
    kill -INT "$LOAD_PID" # ends the hold: every session is closed, then the JSON line
    wait "$LOAD_PID" || true
    LOAD_PID=
    json=$(grep -m1 '^{' "$RAW/idle-$mode.out") || die "idle loadgen printed no JSON"
    log "idle-$mode: $json"
    sleep 2
    check_alive "idle-$mode close"
    after=$(memory)
    read -r rb pb ab <<<"$before"
    read -r rh ph ah <<<"$held"
    read -r ra pa aa <<<"$after"
    printf '{"mode":"%s","rss_before_kib":%s,"pss_before_kib":%s,"anon_before_kib":%s,' \
        "$mode" "$rb" "$pb" "$ab" >>"$RAW/idle.jsonl"
    printf '"rss_held_kib":%s,"pss_held_kib":%s,"anon_held_kib":%s,"rss_after_close_kib":%s,' \
        "$rh" "$ph" "$ah" "$ra" >>"$RAW/idle.jsonl"
    printf '"pss_after_close_kib":%s,"anon_after_close_kib":%s,"loadgen":%s}\n' \
        "$pa" "$aa" "$json" >>"$RAW/idle.jsonl"
    stop_pair
}

: >"$RAW/idle.jsonl"
if ((IDLE > 0)); then
    idle_step session
    idle_step relay
fi

WARNINGS=$(cat "$RAW"/proxy-*.log | grep -cE 'level=(warn|error)' || true)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------------------
MACHINE=$MACHINE VERSIONS=$VERSIONS LAYOUT=$LAYOUT WARNINGS=$WARNINGS LOAD_BEFORE=$LOAD_BEFORE \
    LOAD_AFTER=$LOAD_AFTER ECHO_HWM_KIB=$ECHO_HWM_KIB CONNECTIONS=$CONNECTIONS SIZE=$SIZE \
    IDLE=$IDLE node - "$RAW/runs.jsonl" "$RAW/idle.jsonl" "$OUT/ws_sessions.json" <<'EOF'
const fs = require('node:fs');
const [runsPath, idlePath, outPath] = process.argv.slice(2);
const lines = (p) => fs.readFileSync(p, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
const runs = lines(runsPath);
const idle = lines(idlePath);
const env = process.env;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pad = (s, n) => String(s).padStart(n);
const out = [];

out.push(`(a) echo: ${env.CONNECTIONS} connections x ${env.SIZE}-byte binary messages, closed loop ` +
  '(session: + 1 kind byte per message each way, an ack control per 64 messages)');
out.push(`${'run'.padEnd(12)}${pad('msgs/s', 11)}${pad('p50 us', 10)}${pad('p99 us', 10)}` +
  `${pad('errors', 8)}${pad('proxy cpu', 11)}${pad('other cpu', 11)}`);
for (const r of runs) {
  out.push(`${r.run.padEnd(12)}${pad(r.msgs_per_sec, 11)}${pad(r.p50_us, 10)}${pad(r.p99_us, 10)}` +
    `${pad(r.errors, 8)}${pad(r.proxy_cpu_s.toFixed(2) + 's', 11)}${pad(r.other_cpu_pct + '%', 11)}`);
}
const echo = {};
for (const kind of ['relay', 'session']) {
  const rs = runs.filter((r) => r.kind === kind);
  if (!rs.length) continue;
  echo[kind] = {
    runs: rs.length, msgs_per_sec: median(rs.map((r) => r.msgs_per_sec)),
    p50_us: median(rs.map((r) => r.p50_us)), p99_us: median(rs.map((r) => r.p99_us)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    proxy_cpu_us_per_msg: 1e6 * rs.reduce((a, r) => a + r.proxy_cpu_s, 0) /
      rs.reduce((a, r) => a + r.received, 0),
  };
  const e = echo[kind];
  out.push(`median ${kind.padEnd(8)}${pad(e.msgs_per_sec.toFixed(0), 9)}${pad(e.p50_us.toFixed(1), 10)}` +
    `${pad(e.p99_us.toFixed(1), 10)}${pad(e.errors, 8)}${pad(e.proxy_cpu_us_per_msg.toFixed(3) + ' us/msg', 22)}`);
}
const ratios = echo.relay && echo.session ? {
  throughput_session_relay: echo.session.msgs_per_sec / echo.relay.msgs_per_sec,
  p50_session_relay: echo.session.p50_us / echo.relay.p50_us,
  proxy_cpu_per_msg_session_relay: echo.session.proxy_cpu_us_per_msg / echo.relay.proxy_cpu_us_per_msg,
} : null;
if (ratios) {
  out.push(`ratios session/relay: throughput x${ratios.throughput_session_relay.toFixed(3)}, ` +
    `p50 x${ratios.p50_session_relay.toFixed(3)}, proxy CPU per message ` +
    `x${ratios.proxy_cpu_per_msg_session_relay.toFixed(3)}`);
}
out.push('');
const memory = {};
for (const r of idle) {
  const n = r.loadgen.held || 1;
  const per = (k) => (r[`${k}_held_kib`] - r[`${k}_before_kib`]) / n;
  memory[r.mode] = {
    connections: r.loadgen.connections, held: r.loadgen.held, errors: r.loadgen.errors,
    rss_per_conn_kib: per('rss'), pss_per_conn_kib: per('pss'), anon_per_conn_kib: per('anon'),
    ...r,
  };
  const m = memory[r.mode];
  out.push(`(b) idle ${r.mode === 'session' ? 'WebSocket sessions' : 'relayed WebSockets'}: ` +
    `${m.held} of ${m.connections} held (errors ${m.errors}); proxy RSS ${r.rss_before_kib} -> ` +
    `${r.rss_held_kib} KiB = ${m.rss_per_conn_kib.toFixed(2)} KiB each; PSS ` +
    `${m.pss_per_conn_kib.toFixed(2)}, anonymous ${m.anon_per_conn_kib.toFixed(2)} KiB each; ` +
    `RSS after close ${r.rss_after_close_kib} KiB`);
}
if (memory.session && memory.relay) {
  out.push(`    a session costs ${(memory.session.rss_per_conn_kib - memory.relay.rss_per_conn_kib).toFixed(2)} KiB ` +
    `RSS more than a relayed connection (x${(memory.session.rss_per_conn_kib / memory.relay.rss_per_conn_kib).toFixed(2)})`);
}
out.push(`peak proxy RSS during the echo runs: ${env.ECHO_HWM_KIB} KiB; load average ` +
  `${env.LOAD_BEFORE} before, ${env.LOAD_AFTER} after; proxy warn/error log lines: ${env.WARNINGS}`);
console.log(out.join('\n'));
const result = {
  date: new Date().toISOString(), machine: env.MACHINE, versions: env.VERSIONS,
  pinning: env.LAYOUT, connections: Number(env.CONNECTIONS), size: Number(env.SIZE),
  idle: Number(env.IDLE), load_before: env.LOAD_BEFORE, load_after: env.LOAD_AFTER,
  echo, ratios, idle_memory: memory, echo_hwm_kib: Number(env.ECHO_HWM_KIB),
  proxy_warn_error_lines: Number(env.WARNINGS), runs,
};
fs.writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n');
console.log(`results: ${outPath}`);
EOF
