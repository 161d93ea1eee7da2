#!/usr/bin/env bash
# bench/run_mux.sh: many sessions on one connection (docs/protocol.md "Many sessions on one
# connection") against one SSE stream per session, in one run: backend → client delivery to
# SESSIONS sessions carried PER_STREAM at a time on multiplexed SSE streams (1,000 sessions on
# 10 streams by default) against SESSIONS separate SSE streams, and the proxy's memory per idle
# session on a shared stream against on its own stream. See bench/README.md "Multiplexed SSE".
#
#   bench/run_mux.sh                             # defaults below, about 6 minutes
#   SESSIONS=2000 PER_STREAM=100 bench/run_mux.sh
#   PACED_RATE=0 IDLE=0 bench/run_mux.sh         # throughput step only
#   SKIP_BUILD=1 bench/run_mux.sh                # reuse build-bench/ binaries as they are
#   CPU_LOAD=0 CPU_PROXY=1 CPU_BACKEND=1 bench/run_mux.sh   # taskset layout (cpu lists)
#
# Steps, each with a push_backend and a proxy of its own:
#  (a) throughput: push_backend streams as fast as the proxy takes it; sse, mux, sse, mux
#      (ROUNDS rounds, interleaved so that drift in machine speed hits both alike);
#  (b) latency below saturation: the same with push_backend --rate PACED_RATE per session;
#  (c) memory: a fresh proxy in front of a silent push_backend (--messages 0) per layout; RSS,
#      PSS and anonymous memory before and while IDLE idle sessions are held, on their own SSE
#      streams (idle-sse) and PER_STREAM to a stream (idle-mux-sse).
# Every session of either layout has its own backend connection, replay buffer and limits; the
# route's replay bounds are lowered (REPLAY_BUFFER, REPLAY_MESSAGES) so that 1,000 sessions
# that keep their last messages for resume fit in memory.
# Results: a table on stdout and build-bench/bench-results/mux.json; raw lines and logs in
# build-bench/bench-results/mux/ (never committed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
OUT=$BUILD/bench-results
RAW=$OUT/mux
SESSIONS=${SESSIONS:-1000}
PER_STREAM=${PER_STREAM:-100}
SIZE=${SIZE:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-2}
# How long session_load waits for every session's close after its DELETE. At saturation a
# stream per session can hold a second or more of backlog (its outbound queue and the
# kernel's buffers) that drains before the close event: 10 s was sometimes too short.
CLOSE_TIMEOUT=${CLOSE_TIMEOUT:-60s}
PACED_RATE=${PACED_RATE:-10} # messages/s per session in step (b); 0 skips it
IDLE=${IDLE:-4000}           # idle sessions per layout in step (c); 0 skips it
HOLD=${HOLD:-120s}           # upper bound; the hold ends (SIGINT) once memory is sampled
REPLAY_BUFFER=${REPLAY_BUFFER:-64k}
REPLAY_MESSAGES=${REPLAY_MESSAGES:-512}
# The stream's write queue high watermark (the route's outbound_queue; the proxy's default).
OUTBOUND_QUEUE=${OUTBOUND_QUEUE:-1m}
CPU_LOAD=${CPU_LOAD:-}
CPU_PROXY=${CPU_PROXY:-}
CPU_BACKEND=${CPU_BACKEND:-}
WAIT_QUIET=${WAIT_QUIET:-60} # seconds to wait for a quiet machine before each run
NOISE_PCT=${NOISE_PCT:-10}   # "quiet": other processes use at most this % of all CPUs

BACKEND_PID=
PROXY_PID=
LOAD_PID=

log() { printf '%s\n' "run_mux.sh: $*" >&2; }
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
# One SSE stream per session: the proxy holds two sockets per session (client + backend).
MOST=$((SESSIONS > IDLE ? SESSIONS : IDLE))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
[[ $FDS == unlimited || $FDS -ge $((MOST * 2 + 512)) ]] ||
    die "ulimit -n is $FDS (hard $(ulimit -Hn)); need $((MOST * 2 + 512))"

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building Release into $BUILD"
    mkdir -p "$BUILD"
    (cd "$ROOT" && cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$BUILD" -j2 --target wsbridge push_backend session_load) \
        >"$BUILD/build-mux.log" 2>&1 ||
        die "build failed; see $BUILD/build-mux.log"
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
# Generated by bench/run_mux.sh: one loopback listener, one route, limits out of the way, replay
# bounds lowered so that every session's resume buffer fits in memory.
listen:
  - address: 127.0.0.1:0
limits:
  max_connections: 20000
  max_connections_per_ip: 20000
  rate: { messages_per_second: 1000000, burst: 1000000 }
  max_sessions: 20000
  idle_timeout: 60s
  max_message: 16k
  outbound_queue: $OUTBOUND_QUEUE
  replay_buffer: $REPLAY_BUFFER
  replay_messages: $REPLAY_MESSAGES
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

# The session_load arguments of a layout: sse (a stream per session) or mux (PER_STREAM).
mode_args() {
    case $1 in
    sse) printf '%s\n' sse ;;
    mux) printf '%s\n' mux-sse --per-stream "$PER_STREAM" ;;
    idle-sse) printf '%s\n' idle-sse ;;
    idle-mux) printf '%s\n' idle-mux-sse --per-stream "$PER_STREAM" ;;
    esac
}

# --- streaming steps -------------------------------------------------------------------------
TIME_CMD=()
if [[ -x /usr/bin/time ]]; then
    TIME_CMD=(/usr/bin/time -f '%U %S' -o "$RAW/load.time")
fi

# run_one STEP LAYOUT TAG: one session_load run; appends {"step":..,"run":TAG,...} to
# runs.jsonl with the CPU seconds the proxy, the backend and session_load used, and the share
# of all CPU time that other processes took meanwhile.
run_one() {
    local step=$1 layout=$2 tag=$3 json rc=0 cpu0 p0 b0 p1 b1 lg other args
    mapfile -t args < <(mode_args "$layout")
    wait_quiet
    cpu0=$(stat_cpu)
    p0=$(proc_ticks "$PROXY_PID")
    b0=$(proc_ticks "$BACKEND_PID")
    : >"$RAW/load.time"
    json=$("${TIME_CMD[@]}" "${PIN_LOAD[@]}" "$LOAD" "${args[@]}" \
        --url "http://127.0.0.1:$PROXY_PORT/push" --connections "$SESSIONS" --size "$SIZE" \
        --duration "$DURATION" --warmup "$WARMUP" --close-timeout "$CLOSE_TIMEOUT" \
        2>>"$RAW/load.log") || rc=$?
    p1=$(proc_ticks "$PROXY_PID")
    b1=$(proc_ticks "$BACKEND_PID")
    [[ $json == \{* ]] || die "session_load $tag failed (exit $rc): $(tail -n 5 "$RAW/load.log")"
    lg=$(awk -v t="$TICKS" '{ printf "%d", ($1 + $2) * t } END { if (NR == 0) print 0 }' \
        "$RAW/load.time")
    other=$(busy_pct "$cpu0" "$(stat_cpu)" $((p1 - p0 + b1 - b0 + lg)))
    log "$step $tag: other_cpu_pct=$other $json"
    printf '{"step":"%s","run":"%s","layout":"%s","other_cpu_pct":%s,"proxy_cpu_s":%s,' \
        "$step" "$tag" "$layout" "$other" "$(seconds_of $((p1 - p0)))" >>"$RAW/runs.jsonl"
    printf '"backend_cpu_s":%s,"load_cpu_s":%s,%s\n' "$(seconds_of $((b1 - b0)))" \
        "$(seconds_of "$lg")" "${json#\{}" >>"$RAW/runs.jsonl"
}

# streaming_step STEP [push_backend options...]: a backend and proxy pair, one unrecorded
# priming run per layout (first connections, allocator growth), then the interleaved runs.
streaming_step() {
    local step=$1 round l args
    shift
    start_backend "$step" "$@"
    start_proxy "$step"
    log "$step: push_backend $* on $BACKEND_PORT, proxy on $PROXY_PORT (pid $PROXY_PID)"
    for l in sse mux; do
        mapfile -t args < <(mode_args "$l")
        "${PIN_LOAD[@]}" "$LOAD" "${args[@]}" --url "http://127.0.0.1:$PROXY_PORT/push" \
            --connections "$SESSIONS" --size "$SIZE" --duration 2s --warmup 1s \
            --close-timeout "$CLOSE_TIMEOUT" >/dev/null 2>>"$RAW/load.log" ||
            die "priming $l failed: $(tail -n 3 "$RAW/load.log")"
    done
    for round in $(seq "$ROUNDS"); do
        for l in sse mux; do
            run_one "$step" "$l" "$l-$round"
            check_alive "$step $l-$round"
        done
    done
    printf '{"step":"%s","proxy_hwm_kib":%s}\n' "$step" \
        "$(kib_field VmHWM "/proc/$PROXY_PID/status")" >>"$RAW/peaks.jsonl"
    stop_pair
}

: >"$RAW/runs.jsonl"
: >"$RAW/peaks.jsonl"
streaming_step throughput --messages 1000000000
if ((PACED_RATE > 0)); then
    streaming_step latency --messages 1000000000 --rate "$PACED_RATE"
fi

# --- memory per idle session ---------------------------------------------------------------
# A fresh proxy per layout, so that the baseline holds nothing left over from another run.
memory() { # memory: "rss pss anonymous" of the proxy, KiB
    printf '%s %s %s\n' "$(kib_field VmRSS "/proc/$PROXY_PID/status")" \
        "$(kib_field Pss "/proc/$PROXY_PID/smaps_rollup")" \
        "$(kib_field Anonymous "/proc/$PROXY_PID/smaps_rollup")"
}

idle_round() { # idle_round LAYOUT: appends one JSON object to idle.jsonl
    local layout=$1 before held after open_line json sockstat args
    mapfile -t args < <(mode_args "$layout")
    before=$(memory)
    "${PIN_LOAD[@]}" "$LOAD" "${args[@]}" --url "http://127.0.0.1:$PROXY_PORT/push" \
        --connections "$IDLE" --hold "$HOLD" >"$RAW/idle-$layout.out" 2>>"$RAW/load.log" &
    LOAD_PID=$!
    open_line=$(wait_for_line "$RAW/idle-$layout.out" '^(all [0-9]+ open|opened [0-9]+ of)' 180 \
        "$LOAD_PID") || die "$layout did not open: $(tail -n 3 "$RAW/load.log")"
    log "idle $layout: $open_line"
    sleep 3 # let the proxy settle (backend handshakes, deferred frees)
    check_alive "idle $layout hold"
    held=$(memory)
    sockstat=$(grep '^TCP:' /proc/net/sockstat)
    kill -INT "$LOAD_PID" # ends the hold: every session is DELETEd, then the JSON line
    wait "$LOAD_PID" || true
    LOAD_PID=
    json=$(grep -m1 '^{' "$RAW/idle-$layout.out") || die "$layout printed no JSON"
    log "idle $layout: $json"
    sleep 2
    check_alive "idle $layout close"
    after=$(memory)
    read -r rb pb ab <<<"$before"
    read -r rh ph ah <<<"$held"
    read -r ra pa aa <<<"$after"
    printf '{"layout":"%s","rss_before_kib":%s,"pss_before_kib":%s,"anon_before_kib":%s,' \
        "$layout" "$rb" "$pb" "$ab" >>"$RAW/idle.jsonl"
    printf '"rss_held_kib":%s,"pss_held_kib":%s,"anon_held_kib":%s,"rss_after_close_kib":%s,' \
        "$rh" "$ph" "$ah" "$ra" >>"$RAW/idle.jsonl"
    printf '"pss_after_close_kib":%s,"anon_after_close_kib":%s,"sockstat_held":"%s","load":%s}\n' \
        "$pa" "$aa" "$sockstat" "$json" >>"$RAW/idle.jsonl"
}

: >"$RAW/idle.jsonl"
if ((IDLE > 0)); then
    for l in idle-sse idle-mux; do
        start_backend "$l" --messages 0
        start_proxy "$l"
        sleep 1
        idle_round "$l"
        stop_pair
    done
fi

WARNINGS=$(cat "$RAW"/proxy-*.log | grep -cE 'level=(warn|error)' || true)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------------------
MACHINE=$MACHINE VERSIONS=$VERSIONS LAYOUT=$LAYOUT WARNINGS=$WARNINGS LOAD_BEFORE=$LOAD_BEFORE \
    LOAD_AFTER=$LOAD_AFTER SESSIONS=$SESSIONS PER_STREAM=$PER_STREAM SIZE=$SIZE \
    PACED_RATE=$PACED_RATE REPLAY_BUFFER=$REPLAY_BUFFER REPLAY_MESSAGES=$REPLAY_MESSAGES \
    OUTBOUND_QUEUE=$OUTBOUND_QUEUE \
    node - "$RAW/runs.jsonl" "$RAW/idle.jsonl" "$RAW/peaks.jsonl" "$OUT/mux.json" <<'EOF'
const fs = require('node:fs');
const [runsPath, idlePath, peaksPath, outPath] = process.argv.slice(2);
const lines = (p) => fs.readFileSync(p, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
const runs = lines(runsPath);
const idle = Object.fromEntries(lines(idlePath).map((r) => [r.layout, r]));
const peaks = Object.fromEntries(lines(peaksPath).map((p) => [p.step, p.proxy_hwm_kib]));
const env = process.env;
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const layouts = ['sse', 'mux'];
const pad = (s, n) => String(s).padStart(n);
const out = [];

function summarise(step) {
  const summary = {};
  for (const l of layouts) {
    const rs = runs.filter((r) => r.step === step && r.layout === l);
    if (!rs.length) return null;
    summary[l] = {
      runs: rs.length, msgs_per_sec: mean(rs.map((r) => r.msgs_per_sec)),
      p50_us: mean(rs.map((r) => r.p50_us)), p99_us: mean(rs.map((r) => r.p99_us)),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      // CPU per message over the whole run, warm-up and close included: an upper bound.
      proxy_cpu_us_per_msg: 1e6 * rs.reduce((a, r) => a + r.proxy_cpu_s, 0) /
        rs.reduce((a, r) => a + r.received, 0),
    };
  }
  return summary;
}

function table(step, title) {
  const summary = summarise(step);
  if (!summary) return null;
  out.push(title);
  out.push(`${'run'.padEnd(10)}${pad('streams', 9)}${pad('msgs/s', 11)}${pad('p50 us', 11)}` +
    `${pad('p99 us', 11)}${pad('errors', 8)}${pad('proxy cpu', 11)}${pad('other cpu', 11)}`);
  for (const r of runs.filter((x) => x.step === step)) {
    out.push(`${r.run.padEnd(10)}${pad(r.streams ?? r.connections, 9)}${pad(r.msgs_per_sec, 11)}` +
      `${pad(r.p50_us, 11)}${pad(r.p99_us, 11)}${pad(r.errors, 8)}` +
      `${pad(r.proxy_cpu_s.toFixed(2) + 's', 11)}${pad(r.other_cpu_pct + '%', 11)}`);
  }
  for (const l of layouts) {
    const s = summary[l];
    out.push(`  mean ${l.padEnd(4)}${pad('', 9)}${pad(s.msgs_per_sec.toFixed(0), 11)}` +
      `${pad(s.p50_us.toFixed(0), 11)}${pad(s.p99_us.toFixed(0), 11)}${pad(s.errors, 8)}` +
      `${pad(s.proxy_cpu_us_per_msg.toFixed(3) + ' us/msg', 22)}`);
  }
  summary.ratio_mux_sse = summary.mux.msgs_per_sec / summary.sse.msgs_per_sec;
  out.push(`  mux/sse: msgs/s x${summary.ratio_mux_sse.toFixed(3)}, p50 x` +
    `${(summary.mux.p50_us / summary.sse.p50_us).toFixed(3)}, proxy cpu per message x` +
    `${(summary.mux.proxy_cpu_us_per_msg / summary.sse.proxy_cpu_us_per_msg).toFixed(3)}`);
  return summary;
}

const head = `${env.SESSIONS} sessions, ${env.SIZE}-byte messages; mux: ${env.PER_STREAM} per stream`;
const throughput = table('throughput', `(a) throughput: ${head}, backend unthrottled`);
if (throughput) out.push('');
const latency = table('latency', `(b) latency: ${head}, ${env.PACED_RATE} msgs/s per session ` +
  `(offered ${Number(env.SESSIONS) * Number(env.PACED_RATE)} msgs/s)`);
if (latency) out.push('');
const memory = {};
for (const [l, r] of Object.entries(idle)) {
  const per = (k) => (r[`${k}_held_kib`] - r[`${k}_before_kib`]) / (r.load.held || 1);
  memory[l] = {
    sessions: r.load.held, streams: r.load.streams ?? r.load.held, errors: r.load.errors,
    rss_per_session_kib: per('rss'), pss_per_session_kib: per('pss'),
    anon_per_session_kib: per('anon'), round: r,
  };
  out.push(`(c) idle ${l}: ${r.load.held} of ${r.load.connections} held on ` +
    `${memory[l].streams} streams (errors ${r.load.errors}); proxy RSS ${r.rss_before_kib} -> ` +
    `${r.rss_held_kib} KiB = ${memory[l].rss_per_session_kib.toFixed(2)} KiB/session; PSS ` +
    `${memory[l].pss_per_session_kib.toFixed(2)}, anonymous ` +
    `${memory[l].anon_per_session_kib.toFixed(2)} KiB/session`);
}
if (memory['idle-sse'] && memory['idle-mux']) {
  out.push(`    shared stream / own stream: RSS per session x` +
    `${(memory['idle-mux'].rss_per_session_kib / memory['idle-sse'].rss_per_session_kib).toFixed(3)}`);
}
out.push(`replay bounds: ${env.REPLAY_BUFFER}, ${env.REPLAY_MESSAGES} messages; outbound_queue ` +
  `${env.OUTBOUND_QUEUE}; peak proxy RSS: ` +
  `${JSON.stringify(peaks)} KiB; load average ${env.LOAD_BEFORE} before, ${env.LOAD_AFTER} ` +
  `after; proxy warn/error log lines: ${env.WARNINGS}`);
console.log(out.join('\n'));
const result = {
  date: new Date().toISOString(), machine: env.MACHINE, versions: env.VERSIONS,
  pinning: env.LAYOUT, sessions: Number(env.SESSIONS), per_stream: Number(env.PER_STREAM),
  size: Number(env.SIZE), paced_rate: Number(env.PACED_RATE),
  replay_buffer: env.REPLAY_BUFFER, replay_messages: Number(env.REPLAY_MESSAGES),
  outbound_queue: env.OUTBOUND_QUEUE,
  load_before: env.LOAD_BEFORE, load_after: env.LOAD_AFTER, throughput, latency,
  idle_memory: memory, proxy_hwm_kib: peaks, proxy_warn_error_lines: Number(env.WARNINGS), runs,
};
fs.writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n');
console.log(`results: ${outPath}`);
EOF
