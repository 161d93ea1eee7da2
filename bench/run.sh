#!/usr/bin/env bash
# bench/run.sh: builds wsbridge (Release) into build-bench/ and measures it against the Node
# `ws` example backend. See bench/README.md for what is measured and how to read it.
#
#   bench/run.sh                      # defaults below
#   DURATION=20s IDLE=4000 bench/run.sh
#   CPU_LOADGEN=0 CPU_PROXY=1 CPU_BACKEND=1 bench/run.sh   # taskset layout (cpu lists)
#   SKIP_BUILD=1 bench/run.sh         # reuse build-bench/ binaries as they are
#   NICE=-10 bench/run.sh             # run the three processes at a higher priority
#
# Steps: (a) echo direct to the backend, (b) echo through the proxy, (c) direct, (d) proxy
# (interleaved to cancel drift), then (e) memory per idle connection on a fresh proxy.
# Results: a table on stdout and build-bench/bench-results/latest.json (never committed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
OUT=$BUILD/bench-results
CONNECTIONS=${CONNECTIONS:-100}
SIZE=${SIZE:-64}
PIPELINE=${PIPELINE:-1}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
IDLE=${IDLE:-8000} # 0 skips the memory step
HOLD=${HOLD:-120s} # upper bound; the hold ends (SIGINT) as soon as memory is sampled
CPU_LOADGEN=${CPU_LOADGEN:-}
CPU_PROXY=${CPU_PROXY:-}
CPU_BACKEND=${CPU_BACKEND:-}
WAIT_QUIET=${WAIT_QUIET:-60} # seconds to wait for a quiet machine before each echo run
NOISE_PCT=${NOISE_PCT:-10}   # "quiet": other processes use at most this % of all CPUs
RETRIES=${RETRIES:-2}        # repeat an echo run disturbed by other processes
NICE=${NICE:-} # e.g. -10 (root only): favour the three measured processes on a busy machine

BACKEND_PID=
PROXY_PID=
LOADGEN_PID=

log() { printf '%s\n' "run.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Stops one process by PID: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$LOADGEN_PID"
    stop_pid "$PROXY_PID"
    stop_pid "$BACKEND_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `[nice -n NICE] [taskset -c LIST]` as an array (empty when neither is asked for), so that
# `"${PIN_X[@]}" cmd &` leaves $! the PID of cmd itself: nice and taskset exec, and no subshell
# sits in between.
pin_prefix() {
    if [[ -n $NICE ]]; then
        printf 'nice\n-n\n%s\n' "$NICE"
    fi
    if [[ -n $1 ]]; then
        printf 'taskset\n-c\n%s\n' "$1"
    fi
}
mapfile -t PIN_LOADGEN < <(pin_prefix "$CPU_LOADGEN")
mapfile -t PIN_PROXY < <(pin_prefix "$CPU_PROXY")
mapfile -t PIN_BACKEND < <(pin_prefix "$CPU_BACKEND")

# Waits until `file` has a line matching `regex` (prints it); fails after `secs` or when `pid`
# dies first.
wait_for_line() {
    local file=$1 regex=$2 secs=$3 pid=$4 line
    for _ in $(seq $((secs * 10))); do
        if line=$(grep -m1 -E "$regex" "$file" 2>/dev/null); then
            printf '%s\n' "$line"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

kib_field() { awk -v k="$1:" '$1 == k { print $2 }' "$2"; }

# CPU accounting from /proc: "busy total" jiffies of all CPUs, and a process's own jiffies.
TICKS=$(getconf CLK_TCK)
stat_cpu() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat; }
proc_ticks() { if [[ -r /proc/$1/stat ]]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
# Percentage of CPU busy between two stat_cpu samples, minus `ours` jiffies.
busy_pct() {
    awk -v a="$1" -v b="$2" -v ours="${3:-0}" 'BEGIN {
        split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; total = y[2] - x[2];
        v = total > 0 ? 100 * (busy - ours) / total : 0; printf "%.1f", v < 0 ? 0 : v }'
}

# --- limits ------------------------------------------------------------------------------
# The proxy holds two sockets per idle connection (client + backend), the loadgen one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
[[ $FDS == unlimited || $FDS -ge $((IDLE * 2 + 256)) ]] ||
    die "ulimit -n is $FDS (hard $(ulimit -Hn)); need $((IDLE * 2 + 256)) for IDLE=$IDLE"

# --- build -------------------------------------------------------------------------------
if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building Release into $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPROXY_TESTS=OFF >/dev/null ||
        die "cmake configure failed"
    cmake --build "$BUILD" --target wsbridge loadgen -j "$(nproc)" >"$BUILD/build.log" 2>&1 ||
        die "build failed; see $BUILD/build.log"
fi
LOADGEN=$BUILD/bench/loadgen
WSBRIDGE=$BUILD/wsbridge
[[ -x $LOADGEN && -x $WSBRIDGE ]] || die "build did not produce $LOADGEN and $WSBRIDGE"
if [[ ! -d $ROOT/node_modules/ws ]]; then
    log "node_modules missing: npm ci"
    (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
fi
mkdir -p "$OUT"
rm -f "$OUT"/runs.jsonl "$OUT"/*.log

# --- machine -----------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE=$(printf 'nproc=%s cpu="%s" kernel=%s' "$(nproc)" "$CPU_MODEL" "$(uname -r)")
VERSIONS=$(printf 'wsbridge=%s node=%s ws=%s libuv=%s openssl="%s" cxx="%s"' \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    "$(node --version)" \
    "$(node -p "require('$ROOT/node_modules/ws/package.json').version")" \
    "$(pkg-config --modversion libuv)" "$(openssl version | cut -d' ' -f1-2)" \
    "$(c++ --version | head -1)")
LAYOUT="loadgen=${CPU_LOADGEN:-any} proxy=${CPU_PROXY:-any} backend=${CPU_BACKEND:-any}"
LAYOUT+=" nice=${NICE:-0}"
echo "machine:  $MACHINE"
echo "versions: $VERSIONS"
echo "pinning:  $LAYOUT"
# Everything shares the machine's cores: other work skews the figures far more than the proxy
# does, so sample how busy the machine is before starting (and per run, below).
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_A=$(stat_cpu)
sleep 2
BUSY_BEFORE=$(busy_pct "$CPU_A" "$(stat_cpu)")
echo "load:     $LOAD_BEFORE; cpu busy before start: $BUSY_BEFORE%"
if awk -v b="$BUSY_BEFORE" 'BEGIN { exit !(b > 10) }'; then
    log "warning: the machine is $BUSY_BEFORE% busy before the benchmark; figures will be noisy"
fi

# --- backend -----------------------------------------------------------------------------
start_backend() {
    "${PIN_BACKEND[@]}" node "$ROOT/examples/backend/server.mjs" --port 0 --quiet \
        >"$OUT/backend.out" 2>"$OUT/backend.log" &
    BACKEND_PID=$!
    local line
    line=$(wait_for_line "$OUT/backend.out" 'backend listening on 127\.0\.0\.1:[0-9]+' 15 \
        "$BACKEND_PID") || die "backend did not start: $(tail -n 5 "$OUT/backend.log")"
    BACKEND_PORT=${line##*:}
}

# --- proxy -------------------------------------------------------------------------------
write_config() {
    local max_message=$((SIZE > 1048576 ? SIZE : 1048576))
    cat >"$OUT/wsbridge.yaml" <<EOF
# Generated by bench/run.sh: one loopback listener, one route, limits out of the way.
listen:
  - address: 127.0.0.1:0
limits:
  max_connections: 20000
  max_connections_per_ip: 20000
  max_message: $max_message
  outbound_queue: $((max_message * 2))
  rate: { messages_per_second: 1000000000, burst: 1000000000 }
routes:
  - path: /echo
    backend: ws://127.0.0.1:$BACKEND_PORT/echo
EOF
}

start_proxy() {
    local tag=$1 line
    "${PIN_PROXY[@]}" "$WSBRIDGE" -c "$OUT/wsbridge.yaml" 2>"$OUT/proxy-$tag.log" &
    PROXY_PID=$!
    line=$(wait_for_line "$OUT/proxy-$tag.log" 'event=listening .*address=127\.0\.0\.1:[0-9]+' 15 \
        "$PROXY_PID") || die "proxy did not start: $(tail -n 5 "$OUT/proxy-$tag.log")"
    PROXY_PORT=$(sed -E 's/.*address=127\.0\.0\.1:([0-9]+).*/\1/' <<<"$line")
}

check_proxy_alive() {
    kill -0 "$PROXY_PID" 2>/dev/null && return 0
    wait "$PROXY_PID" && rc=0 || rc=$?
    PROXY_PID=
    die "proxy died (exit $rc) during $1; last log lines: $(tail -n 5 "$OUT"/proxy-*.log)"
}

# --- echo runs ---------------------------------------------------------------------------
# CPU accounting, to tell a noisy run from a slow proxy: `other_cpu_pct` is the share of all
# CPU time during a run spent by processes other than loadgen, proxy and backend.
TIME_CMD=()
if [[ -x /usr/bin/time ]]; then
    TIME_CMD=(/usr/bin/time -f '%U %S' -o "$OUT/loadgen.time")
fi

# Waits (at most WAIT_QUIET seconds) until other processes use at most NOISE_PCT % of the CPU
# over one second; our own backend and proxy are idle between runs.
wait_quiet() {
    local deadline=$((SECONDS + WAIT_QUIET)) sample busy
    while :; do
        sample=$(stat_cpu)
        sleep 1
        busy=$(busy_pct "$sample" "$(stat_cpu)")
        awk -v b="$busy" -v n="$NOISE_PCT" 'BEGIN { exit !(b <= n) }' && return 0
        if ((SECONDS >= deadline)); then
            log "machine still $busy% busy after ${WAIT_QUIET}s; running anyway"
            return 0
        fi
    done
}

# run_echo TAG PORT: one loadgen echo run; appends {"run":TAG,...} to runs.jsonl. A run during
# which other processes took more than NOISE_PCT % of the CPU is repeated (RETRIES times).
run_echo() {
    local tag=$1 port=$2 json rc cpu0 cpu1 be0 be1 px0 px1 lg other attempt cores
    for ((attempt = 1; attempt <= RETRIES + 1; attempt++)); do
        wait_quiet
        rc=0
        lg=0
        cpu0=$(stat_cpu)
        be0=$(proc_ticks "$BACKEND_PID")
        px0=$(proc_ticks "$PROXY_PID")
        json=$("${TIME_CMD[@]}" "${PIN_LOADGEN[@]}" "$LOADGEN" echo \
            --url "ws://127.0.0.1:$port/echo" --connections "$CONNECTIONS" --size "$SIZE" \
            --pipeline "$PIPELINE" --duration "$DURATION" --warmup "$WARMUP" \
            2>>"$OUT/loadgen.log") || rc=$?
        be1=$(proc_ticks "$BACKEND_PID")
        px1=$(proc_ticks "$PROXY_PID")
        cpu1=$(stat_cpu)
        [[ $json == \{* ]] || die "loadgen $tag failed (exit $rc): $(tail -n 5 "$OUT/loadgen.log")"
        if [[ ${#TIME_CMD[@]} -gt 0 ]]; then
            lg=$(awk -v t="$TICKS" '{ printf "%d", ($1 + $2) * t }' "$OUT/loadgen.time")
        fi
        other=$(busy_pct "$cpu0" "$cpu1" $((be1 - be0 + px1 - px0 + lg)))
        # Each process's CPU use in % of one core over the run (warm-up and closing included).
        cores=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(nproc)" -v be=$((be1 - be0)) \
            -v px=$((px1 - px0)) -v lg="$lg" 'BEGIN {
                split(a, x, " "); split(b, y, " "); wall = (y[2] - x[2]) / n;
                if (wall <= 0) wall = 1;
                printf "\"cpu_pct\":{\"loadgen\":%.0f,\"proxy\":%.0f,\"backend\":%.0f}",
                    100 * lg / wall, 100 * px / wall, 100 * be / wall }')
        log "$tag: other_cpu_pct=$other $cores $json"
        if awk -v o="$other" -v n="$NOISE_PCT" 'BEGIN { exit !(o <= n) }'; then
            break
        fi
        ((attempt <= RETRIES)) && log "$tag: other processes took $other% of the CPU; again"
    done
    printf '{"run":"%s","other_cpu_pct":%s,%s,"attempts":%d,%s\n' "$tag" "$other" "$cores" \
        $((attempt > RETRIES + 1 ? RETRIES + 1 : attempt)) "${json#\{}" >>"$OUT/runs.jsonl"
}

start_backend
write_config
start_proxy echo
log "backend on $BACKEND_PORT, proxy on $PROXY_PORT (pid $PROXY_PID)"

# Prime both paths first (unrecorded): a fresh Node backend is still optimising its hot code
# and growing its heap, which otherwise makes direct-1 the slowest run.
for port in "$BACKEND_PORT" "$PROXY_PORT"; do
    "${PIN_LOADGEN[@]}" "$LOADGEN" echo --url "ws://127.0.0.1:$port/echo" \
        --connections "$CONNECTIONS" --size "$SIZE" --pipeline "$PIPELINE" --duration 3s \
        --warmup 0 >/dev/null 2>>"$OUT/loadgen.log" || die "priming run on port $port failed"
done

run_echo direct-1 "$BACKEND_PORT"
run_echo proxy-1 "$PROXY_PORT"
check_proxy_alive "proxy-1"
run_echo direct-2 "$BACKEND_PORT"
run_echo proxy-2 "$PROXY_PORT"
check_proxy_alive "proxy-2"
ECHO_HWM_KIB=$(kib_field VmHWM "/proc/$PROXY_PID/status")
stop_pid "$PROXY_PID"
PROXY_PID=

# --- idle memory -------------------------------------------------------------------------
# A fresh proxy, so that the baseline holds no memory left over from the echo runs. Round 1
# gives the per-connection figure; round 2 repeats it on the same proxy: if memory is reused,
# RSS after the second close stays near RSS after the first (growth suggests a leak).
status_kib() { kib_field "$1" "/proc/$PROXY_PID/status"; }
pss_kib() { kib_field Pss "/proc/$PROXY_PID/smaps_rollup"; }

idle_round() {
    local round=$1 rss_before pss_before rss_held pss_held open_line json
    rss_before=$(status_kib VmRSS)
    pss_before=$(pss_kib)
    "${PIN_LOADGEN[@]}" "$LOADGEN" idle --url "ws://127.0.0.1:$PROXY_PORT/echo" \
        --connections "$IDLE" --hold "$HOLD" >"$OUT/idle-$round.out" 2>>"$OUT/loadgen.log" &
    LOADGEN_PID=$!
    open_line=$(wait_for_line "$OUT/idle-$round.out" '^(all [0-9]+ open|opened [0-9]+ of)' 180 \
        "$LOADGEN_PID") || die "idle loadgen did not open: $(tail -n 3 "$OUT/loadgen.log")"
    log "idle-$round: $open_line"
    sleep 2 # let the proxy settle (backend handshakes, deferred frees)
    check_proxy_alive "idle-$round hold"
    rss_held=$(status_kib VmRSS)
    pss_held=$(pss_kib)
    kill -INT "$LOADGEN_PID" # ends the hold: loadgen closes every connection and prints JSON
    wait "$LOADGEN_PID" || true
    LOADGEN_PID=
    json=$(grep -m1 '^{' "$OUT/idle-$round.out") || die "idle loadgen printed no JSON"
    log "idle-$round: $json"
    sleep 1
    check_proxy_alive "idle-$round close"
    printf '{"run":"idle-%s","rss_before_kib":%s,"pss_before_kib":%s,"rss_held_kib":%s,' \
        "$round" "$rss_before" "$pss_before" "$rss_held" >>"$OUT/runs.jsonl"
    printf '"pss_held_kib":%s,"rss_after_close_kib":%s,"loadgen":%s}\n' \
        "$pss_held" "$(status_kib VmRSS)" "$json" >>"$OUT/runs.jsonl"
}

IDLE_HWM_KIB=0
if ((IDLE > 0)); then
    start_proxy idle
    sleep 0.5
    idle_round 1
    idle_round 2
    IDLE_HWM_KIB=$(status_kib VmHWM)
fi

WARNINGS=$(cat "$OUT"/proxy-*.log | grep -cE 'level=(warn|error)' || true)

# --- report ------------------------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
MACHINE=$MACHINE VERSIONS=$VERSIONS LAYOUT=$LAYOUT WARNINGS=$WARNINGS ECHO_HWM_KIB=$ECHO_HWM_KIB \
    IDLE_HWM_KIB=$IDLE_HWM_KIB LOAD_BEFORE=$LOAD_BEFORE LOAD_AFTER=$LOAD_AFTER \
    BUSY_BEFORE=$BUSY_BEFORE \
    node - "$OUT/runs.jsonl" "$OUT/latest.json" <<'EOF'
const fs = require('node:fs');
const [runsPath, outPath] = process.argv.slice(2);
const runs = fs.readFileSync(runsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const echo = runs.filter((r) => r.mode === 'echo');
const idle = runs.find((r) => r.run === 'idle-1');
const idle2 = runs.find((r) => r.run === 'idle-2');
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const side = (prefix, key) => mean(echo.filter((r) => r.run.startsWith(prefix)).map((r) => r[key]));
const ratio = (key) => side('proxy', key) / side('direct', key);
const ratios = { msgs_per_sec: ratio('msgs_per_sec'), p50: ratio('p50_us'), p99: ratio('p99_us') };
const held = idle ? idle.loadgen.held || 1 : 0;
const memory = idle ? {
  connections: held,
  rss_per_conn_kib: (idle.rss_held_kib - idle.rss_before_kib) / held,
  pss_per_conn_kib: (idle.pss_held_kib - idle.pss_before_kib) / held,
  rss_growth_second_round_kib: idle2.rss_after_close_kib - idle.rss_after_close_kib,
  echo_hwm_kib: Number(process.env.ECHO_HWM_KIB), idle_hwm_kib: Number(process.env.IDLE_HWM_KIB),
  rounds: [idle, idle2],
} : null;
const pad = (s, n) => String(s).padStart(n);
const lines = [];
lines.push(`${'run'.padEnd(10)}${pad('msgs/s', 10)}${pad('p50 us', 10)}${pad('p90 us', 10)}` +
  `${pad('p99 us', 10)}${pad('max us', 10)}${pad('errors', 8)}${pad('other cpu', 11)}` +
  `  cpu% loadgen/proxy/backend`);
for (const r of echo) {
  lines.push(`${r.run.padEnd(10)}${pad(r.msgs_per_sec, 10)}${pad(r.p50_us, 10)}${pad(r.p90_us, 10)}` +
    `${pad(r.p99_us, 10)}${pad(r.max_us, 10)}${pad(r.errors, 8)}${pad(r.other_cpu_pct + '%', 11)}` +
    `  ${r.cpu_pct.loadgen}/${r.cpu_pct.proxy}/${r.cpu_pct.backend}`);
}
lines.push('');
lines.push(`proxy/direct: throughput x${ratios.msgs_per_sec.toFixed(3)}, ` +
  `p50 x${ratios.p50.toFixed(2)}, p99 x${ratios.p99.toFixed(2)}`);
if (memory) {
  lines.push(`idle: ${held} of ${idle.loadgen.connections} held (errors ${idle.loadgen.errors}, ` +
    `${idle2.loadgen.errors} in round 2); proxy RSS ${idle.rss_before_kib} -> ` +
    `${idle.rss_held_kib} KiB = ${memory.rss_per_conn_kib.toFixed(2)} KiB/conn; PSS ` +
    `${idle.pss_before_kib} -> ${idle.pss_held_kib} KiB = ${memory.pss_per_conn_kib.toFixed(2)} KiB/conn`);
  lines.push(`idle: RSS after close ${idle.rss_after_close_kib} KiB, after a second round ` +
    `${idle2.rss_after_close_kib} KiB (growth ${memory.rss_growth_second_round_kib} KiB); ` +
    `peak RSS ${memory.echo_hwm_kib} KiB in the echo runs, ${memory.idle_hwm_kib} KiB idle`);
}
lines.push(`cpu busy before start ${process.env.BUSY_BEFORE}%; load average ` +
  `${process.env.LOAD_BEFORE} before, ${process.env.LOAD_AFTER} after; ` +
  `proxy log warn/error lines: ${process.env.WARNINGS}`);
console.log(lines.join('\n'));
const result = {
  date: new Date().toISOString(), machine: process.env.MACHINE, versions: process.env.VERSIONS,
  pinning: process.env.LAYOUT, cpu_busy_before_pct: Number(process.env.BUSY_BEFORE),
  load_before: process.env.LOAD_BEFORE,
  load_after: process.env.LOAD_AFTER, echo, ratios, idle_memory: memory,
  proxy_warn_error_lines: Number(process.env.WARNINGS),
};
fs.writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n');
console.log(`results: ${outPath}`);
EOF
