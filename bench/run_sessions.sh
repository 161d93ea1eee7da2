#!/usr/bin/env bash
# bench/run_sessions.sh: backend → client delivery through wsbridge over WebSocket, SSE and
# long-polling in one run, and the proxy's memory per idle SSE session. See bench/SESSIONS.md.
#
#   bench/run_sessions.sh                        # defaults below, about 5 minutes
#   CONNECTIONS=100 DURATION=20s bench/run_sessions.sh
#   PACED_RATE=0 IDLE=0 bench/run_sessions.sh    # throughput step only
#   SKIP_BUILD=1 bench/run_sessions.sh           # reuse build-bench/ binaries as they are
#   CPU_LOAD=0 CPU_PROXY=1 CPU_BACKEND=1 bench/run_sessions.sh   # taskset layout (cpu lists)
#
# Steps, each with a push_backend and a proxy of its own:
#  (a) throughput: push_backend streams as fast as the proxy takes it; ws, sse, longpoll, ws,
#      sse, longpoll (ROUNDS rounds, interleaved so that drift in machine speed hits every
#      transport alike), CONNECTIONS sessions each;
#  (b) latency below saturation: the same with push_backend --rate PACED_RATE per session;
#  (c) memory: a fresh proxy in front of a silent push_backend (--messages 0); RSS, PSS and
#      anonymous memory before and while IDLE idle SSE sessions are held, twice.
# Results: a table on stdout and build-bench/bench-results/sessions.json; raw lines and logs in
# build-bench/bench-results/sessions/ (never committed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
OUT=$BUILD/bench-results
RAW=$OUT/sessions
CONNECTIONS=${CONNECTIONS:-50}
SIZE=${SIZE:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
PACED_RATE=${PACED_RATE:-1000} # messages/s per session in step (b); 0 skips it
IDLE=${IDLE:-4000}             # idle SSE sessions in step (c); 0 skips it
HOLD=${HOLD:-120s}             # upper bound; the hold ends (SIGINT) once memory is sampled
CPU_LOAD=${CPU_LOAD:-}
CPU_PROXY=${CPU_PROXY:-}
CPU_BACKEND=${CPU_BACKEND:-}
WAIT_QUIET=${WAIT_QUIET:-60} # seconds to wait for a quiet machine before each run
NOISE_PCT=${NOISE_PCT:-10}   # "quiet": other processes use at most this % of all CPUs

BACKEND_PID=
PROXY_PID=
LOAD_PID=

log() { printf '%s\n' "run_sessions.sh: $*" >&2; }
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
mapfile -t PIN_LOAD < <(pin "$CPU_LOAD")
mapfile -t PIN_PROXY < <(pin "$CPU_PROXY")
mapfile -t PIN_BACKEND < <(pin "$CPU_BACKEND")

seconds_of() { awk -v d="$1" -v t="$TICKS" 'BEGIN { print d / t }'; }

# --- limits and build ----------------------------------------------------------------------
# Step (c): the proxy holds two sockets per SSE session (client + backend), the load
# generator one (plus its DELETE connections while closing), the backend one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
[[ $FDS == unlimited || $FDS -ge $((IDLE * 2 + 512)) ]] ||
    die "ulimit -n is $FDS (hard $(ulimit -Hn)); need $((IDLE * 2 + 512)) for IDLE=$IDLE"

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building Release into $BUILD"
    mkdir -p "$BUILD"
    (cd "$ROOT" && cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$BUILD" -j2 --target wsbridge push_backend session_load) \
        >"$BUILD/build-sessions.log" 2>&1 ||
        die "build failed; see $BUILD/build-sessions.log"
fi
WSBRIDGE=$BUILD/wsbridge
PUSH=$BUILD/bench/push_backend
LOAD=$BUILD/bench/session_load
[[ -x $WSBRIDGE && -x $PUSH && -x $LOAD ]] || die "missing binaries in $BUILD"
mkdir -p "$RAW"
rm -f "$RAW"/*.jsonl "$RAW"/*.log "$RAW"/*.out "$RAW"/*.yaml

"$LOAD" selftest >&2 || die "session_load selftest failed"

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE=$(printf 'nproc=%s cpu="%s" kernel=%s' "$(nproc)" "$CPU_MODEL" "$(uname -r)")
VERSIONS=$(printf 'wsbridge=%s libuv=%s cxx="%s"' \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    "$(pkg-config --modversion libuv)" "$(c++ --version | head -1)")
LAYOUT="load=${CPU_LOAD:-any} proxy=${CPU_PROXY:-any} backend=${CPU_BACKEND:-any}"
echo "machine:  $MACHINE"
echo "versions: $VERSIONS"
echo "pinning:  $LAYOUT"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- processes -----------------------------------------------------------------------------
start_backend() { # start_backend TAG [push_backend options...]
    local tag=$1 line
    shift
    "${PIN_BACKEND[@]}" "$PUSH" --port 0 --size "$SIZE" "$@" \
        >"$RAW/backend-$tag.out" 2>"$RAW/backend-$tag.log" &
    BACKEND_PID=$!
    line=$(wait_for_line "$RAW/backend-$tag.out" 'listening on 127\.0\.0\.1:[0-9]+' 15 \
        "$BACKEND_PID") || die "push_backend did not start: $(tail -n 3 "$RAW/backend-$tag.log")"
    BACKEND_PORT=${line##*:}
}

start_proxy() { # start_proxy TAG
    local tag=$1 line
    cat >"$RAW/wsbridge-$tag.yaml" <<EOF
# Generated by bench/run_sessions.sh: one loopback listener, one route, limits out of the way.
listen:
  - address: 127.0.0.1:0
limits:
  max_connections: 20000
  max_connections_per_ip: 20000
  rate: { messages_per_second: 1000000, burst: 1000000 }
  max_sessions: 20000
  idle_timeout: 60s
routes:
  - path: /push
    backend: ws://127.0.0.1:$BACKEND_PORT/push
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
    kill -0 "$BACKEND_PID" 2>/dev/null || die "push_backend died during $1"
}

# --- streaming steps -------------------------------------------------------------------------
TIME_CMD=()
if [[ -x /usr/bin/time ]]; then
    TIME_CMD=(/usr/bin/time -f '%U %S' -o "$RAW/load.time")
fi

# run_one STEP TRANSPORT TAG: one session_load run; appends {"step":..,"run":TAG,...} to
# runs.jsonl with the CPU seconds the proxy, the backend and session_load used, and the share
# of all CPU time that other processes took meanwhile.
run_one() {
    local step=$1 transport=$2 tag=$3 json rc=0 cpu0 p0 b0 p1 b1 lg other
    wait_quiet
    cpu0=$(stat_cpu)
    p0=$(proc_ticks "$PROXY_PID")
    b0=$(proc_ticks "$BACKEND_PID")
    : >"$RAW/load.time"
    json=$("${TIME_CMD[@]}" "${PIN_LOAD[@]}" "$LOAD" "$transport" \
        --url "http://127.0.0.1:$PROXY_PORT/push" --connections "$CONNECTIONS" --size "$SIZE" \
        --duration "$DURATION" --warmup "$WARMUP" 2>>"$RAW/load.log") || rc=$?
    p1=$(proc_ticks "$PROXY_PID")
    b1=$(proc_ticks "$BACKEND_PID")
    [[ $json == \{* ]] || die "session_load $tag failed (exit $rc): $(tail -n 5 "$RAW/load.log")"
    lg=$(awk -v t="$TICKS" '{ printf "%d", ($1 + $2) * t } END { if (NR == 0) print 0 }' \
        "$RAW/load.time")
    other=$(busy_pct "$cpu0" "$(stat_cpu)" $((p1 - p0 + b1 - b0 + lg)))
    log "$step $tag: other_cpu_pct=$other $json"
    printf '{"step":"%s","run":"%s","other_cpu_pct":%s,"proxy_cpu_s":%s,"backend_cpu_s":%s,' \
        "$step" "$tag" "$other" "$(seconds_of $((p1 - p0)))" "$(seconds_of $((b1 - b0)))" \
        >>"$RAW/runs.jsonl"
    printf '"load_cpu_s":%s,%s\n' "$(seconds_of "$lg")" "${json#\{}" >>"$RAW/runs.jsonl"
}

# streaming_step STEP [push_backend options...]: a backend and proxy pair, one unrecorded
# priming run per transport (first connections, allocator growth), then the interleaved runs.
streaming_step() {
    local step=$1 round t
    shift
    start_backend "$step" "$@"
    start_proxy "$step"
    log "$step: push_backend $* on $BACKEND_PORT, proxy on $PROXY_PORT (pid $PROXY_PID)"
    for t in ws sse longpoll; do
        "${PIN_LOAD[@]}" "$LOAD" "$t" --url "http://127.0.0.1:$PROXY_PORT/push" \
            --connections "$CONNECTIONS" --size "$SIZE" --duration 2s --warmup 0 \
            >/dev/null 2>>"$RAW/load.log" || die "priming $t failed: $(tail -n 3 "$RAW/load.log")"
    done
    for round in $(seq "$ROUNDS"); do
        for t in ws sse longpoll; do
            run_one "$step" "$t" "$t-$round"
            check_alive "$step $t-$round"
        done
    done
    printf '{"step":"%s","proxy_hwm_kib":%s}\n' "$step" \
        "$(kib_field VmHWM "/proc/$PROXY_PID/status")" >>"$RAW/peaks.jsonl"
    stop_pair
}

streaming_step throughput --messages 1000000000
if ((PACED_RATE > 0)); then
    streaming_step latency --messages 1000000000 --rate "$PACED_RATE"
fi

# --- memory per idle SSE session -------------------------------------------------------------
# A fresh proxy, so that the baseline holds nothing left over from the streaming runs. Round 1
# gives the per-session figure; round 2 repeats it on the same proxy: if memory is reused, RSS
# after the second close stays near RSS after the first (growth would suggest a leak).
memory() { # memory: "rss pss anonymous" of the proxy, KiB
    printf '%s %s %s\n' "$(kib_field VmRSS "/proc/$PROXY_PID/status")" \
        "$(kib_field Pss "/proc/$PROXY_PID/smaps_rollup")" \
        "$(kib_field Anonymous "/proc/$PROXY_PID/smaps_rollup")"
}

idle_round() { # idle_round N: appends one JSON object to idle.jsonl
    local round=$1 before held after open_line json sockstat
    before=$(memory)
    "${PIN_LOAD[@]}" "$LOAD" idle-sse --url "http://127.0.0.1:$PROXY_PORT/push" \
        --connections "$IDLE" --hold "$HOLD" >"$RAW/idle-$round.out" 2>>"$RAW/load.log" &
    LOAD_PID=$!
    open_line=$(wait_for_line "$RAW/idle-$round.out" '^(all [0-9]+ open|opened [0-9]+ of)' 180 \
        "$LOAD_PID") || die "idle-sse did not open: $(tail -n 3 "$RAW/load.log")"
    log "idle-$round: $open_line"
    sleep 3 # let the proxy settle (backend handshakes, deferred frees)
    check_alive "idle-$round hold"
    held=$(memory)
    sockstat=$(grep '^TCP:' /proc/net/sockstat)
    kill -INT "$LOAD_PID" # ends the hold: every session is DELETEd, then the JSON line
    wait "$LOAD_PID" || true
    LOAD_PID=
    json=$(grep -m1 '^{' "$RAW/idle-$round.out") || die "idle-sse printed no JSON"
    log "idle-$round: $json"
    sleep 2
    check_alive "idle-$round close"
    after=$(memory)
    read -r rb pb ab <<<"$before"
    read -r rh ph ah <<<"$held"
    read -r ra pa aa <<<"$after"
    printf '{"round":%s,"rss_before_kib":%s,"pss_before_kib":%s,"anon_before_kib":%s,' \
        "$round" "$rb" "$pb" "$ab" >>"$RAW/idle.jsonl"
    printf '"rss_held_kib":%s,"pss_held_kib":%s,"anon_held_kib":%s,"rss_after_close_kib":%s,' \
        "$rh" "$ph" "$ah" "$ra" >>"$RAW/idle.jsonl"
    printf '"pss_after_close_kib":%s,"anon_after_close_kib":%s,"sockstat_held":"%s","load":%s}\n' \
        "$pa" "$aa" "$sockstat" "$json" >>"$RAW/idle.jsonl"
}

: >"$RAW/idle.jsonl"
IDLE_HWM_KIB=0
if ((IDLE > 0)); then
    start_backend idle --messages 0
    start_proxy idle
    sleep 1
    idle_round 1
    idle_round 2
    IDLE_HWM_KIB=$(kib_field VmHWM "/proc/$PROXY_PID/status")
    stop_pair
fi

WARNINGS=$(cat "$RAW"/proxy-*.log | grep -cE 'level=(warn|error)' || true)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------------------
MACHINE=$MACHINE VERSIONS=$VERSIONS LAYOUT=$LAYOUT WARNINGS=$WARNINGS LOAD_BEFORE=$LOAD_BEFORE \
    LOAD_AFTER=$LOAD_AFTER IDLE_HWM_KIB=$IDLE_HWM_KIB CONNECTIONS=$CONNECTIONS SIZE=$SIZE \
    PACED_RATE=$PACED_RATE \
    node - "$RAW/runs.jsonl" "$RAW/idle.jsonl" "$RAW/peaks.jsonl" "$OUT/sessions.json" <<'EOF'
const fs = require('node:fs');
const [runsPath, idlePath, peaksPath, outPath] = process.argv.slice(2);
const lines = (p) => fs.readFileSync(p, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
const runs = lines(runsPath);
const [idle, idle2] = lines(idlePath);
const peaks = Object.fromEntries(lines(peaksPath).map((p) => [p.step, p.proxy_hwm_kib]));
const env = process.env;
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const transports = ['ws', 'sse', 'longpoll'];
const pad = (s, n) => String(s).padStart(n);
const out = [];

function summarise(step) {
  const summary = {};
  for (const t of transports) {
    const rs = runs.filter((r) => r.step === step && r.mode === t);
    if (!rs.length) return null;
    const msgs = rs.reduce((a, r) => a + r.messages, 0);
    summary[t] = {
      runs: rs.length, msgs_per_sec: mean(rs.map((r) => r.msgs_per_sec)),
      p50_us: mean(rs.map((r) => r.p50_us)), p99_us: mean(rs.map((r) => r.p99_us)),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      // CPU per message over the whole run, warm-up and close included: an upper bound.
      proxy_cpu_us_per_msg: 1e6 * rs.reduce((a, r) => a + r.proxy_cpu_s, 0) /
        rs.reduce((a, r) => a + r.received, 0),
      measured_messages: msgs,
    };
  }
  return summary;
}

function table(step, title) {
  const summary = summarise(step);
  if (!summary) return null;
  out.push(title);
  out.push(`${'run'.padEnd(12)}${pad('msgs/s', 11)}${pad('p50 us', 11)}${pad('p99 us', 11)}` +
    `${pad('polls', 9)}${pad('errors', 8)}${pad('proxy cpu', 11)}${pad('other cpu', 11)}`);
  for (const r of runs.filter((x) => x.step === step)) {
    out.push(`${r.run.padEnd(12)}${pad(r.msgs_per_sec, 11)}${pad(r.p50_us, 11)}` +
      `${pad(r.p99_us, 11)}${pad(r.polls, 9)}${pad(r.errors, 8)}` +
      `${pad(r.proxy_cpu_s.toFixed(2) + 's', 11)}${pad(r.other_cpu_pct + '%', 11)}`);
  }
  out.push(`${'mean'.padEnd(12)}`);
  for (const t of transports) {
    const s = summary[t];
    out.push(`  ${t.padEnd(10)}${pad(s.msgs_per_sec.toFixed(0), 11)}${pad(s.p50_us.toFixed(0), 11)}` +
      `${pad(s.p99_us.toFixed(0), 11)}${pad('', 9)}${pad(s.errors, 8)}` +
      `${pad(s.proxy_cpu_us_per_msg.toFixed(3) + ' us/msg', 22)}`);
  }
  return summary;
}

const throughput = table('throughput',
  `(a) throughput: ${env.CONNECTIONS} sessions, ${env.SIZE}-byte messages, backend unthrottled`);
const ratios = throughput ? {
  sse_ws: throughput.sse.msgs_per_sec / throughput.ws.msgs_per_sec,
  longpoll_ws: throughput.longpoll.msgs_per_sec / throughput.ws.msgs_per_sec,
} : null;
if (ratios) {
  out.push(`ratios: sse/ws x${ratios.sse_ws.toFixed(3)}, longpoll/ws x${ratios.longpoll_ws.toFixed(3)}` +
    ` (acceptance: sse/ws >= 0.5)`);
}
out.push('');
const latency = table('latency',
  `(b) latency: ${env.CONNECTIONS} sessions x ${env.PACED_RATE} msgs/s each (offered ` +
  `${Number(env.CONNECTIONS) * Number(env.PACED_RATE)} msgs/s)`);
if (latency) out.push('');
let memory = null;
if (idle) {
  const per = (k) => (idle[`${k}_held_kib`] - idle[`${k}_before_kib`]) / (idle.load.held || 1);
  memory = {
    sessions: idle.load.held, rss_per_session_kib: per('rss'), pss_per_session_kib: per('pss'),
    anon_per_session_kib: per('anon'),
    rss_growth_second_round_kib: idle2.rss_after_close_kib - idle.rss_after_close_kib,
    idle_hwm_kib: Number(env.IDLE_HWM_KIB), rounds: [idle, idle2],
  };
  out.push(`(c) idle SSE: ${memory.sessions} of ${idle.load.connections} held (errors ` +
    `${idle.load.errors}); proxy RSS ${idle.rss_before_kib} -> ${idle.rss_held_kib} KiB = ` +
    `${memory.rss_per_session_kib.toFixed(2)} KiB/session; PSS ` +
    `${memory.pss_per_session_kib.toFixed(2)}, anonymous ` +
    `${memory.anon_per_session_kib.toFixed(2)} KiB/session (acceptance: <= 16)`);
  out.push(`    RSS after close ${idle.rss_after_close_kib} KiB, after a second round ` +
    `${idle2.rss_after_close_kib} KiB (growth ${memory.rss_growth_second_round_kib} KiB; ` +
    `round 2: ${idle2.load.held} held, ${idle2.load.errors} errors, RSS ` +
    `${idle2.rss_before_kib} -> ${idle2.rss_held_kib} KiB while held: freed memory reused)`);
}
out.push(`peak proxy RSS: ${JSON.stringify(peaks)} KiB; load average ${env.LOAD_BEFORE} ` +
  `before, ${env.LOAD_AFTER} after; proxy warn/error log lines: ${env.WARNINGS}`);
console.log(out.join('\n'));
const result = {
  date: new Date().toISOString(), machine: env.MACHINE, versions: env.VERSIONS,
  pinning: env.LAYOUT, connections: Number(env.CONNECTIONS), size: Number(env.SIZE),
  paced_rate: Number(env.PACED_RATE), load_before: env.LOAD_BEFORE, load_after: env.LOAD_AFTER,
  throughput, ratios, latency, idle_sse_memory: memory, proxy_hwm_kib: peaks,
  proxy_warn_error_lines: Number(env.WARNINGS), runs,
};
fs.writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n');
console.log(`results: ${outPath}`);
EOF
