#!/usr/bin/env bash
# bench/run.sh: builds wsbridge (Release) into build-bench/ and measures it against the Node
# `ws` example backend. See bench/README.md for what is measured and how to read it.
#
#   bench/run.sh                      # defaults below
#   DURATION=20s IDLE=4000 bench/run.sh
#   CPU_LOADGEN=0 CPU_PROXY=1 CPU_BACKEND=1 bench/run.sh   # taskset layout (cpu lists)
#   SKIP_BUILD=1 bench/run.sh         # reuse build-bench/ binaries as they are
#   NICE=-10 bench/run.sh             # run the three processes at a higher priority
#   REFERENCES=nginx bench/run.sh     # same-run references: "nginx haproxy" (default: those
#   REFERENCES= bench/run.sh          # installed), "" skips them; a named one is installed
#
# Steps: echo direct to the backend, through the proxy, then through each reference proxy
# (nginx, HAProxy) in front of the same backend, all twice and interleaved (direct, proxy,
# nginx, haproxy, direct, proxy, nginx, haproxy) to cancel drift; then memory per idle
# connection on a fresh proxy. Results: a table on stdout and
# build-bench/bench-results/latest.json (never committed).
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
PRIME=${PRIME:-3s} # unrecorded priming run per path before the recorded ones
# Reference proxies run in the same session, as the yardstick for the proxy's ratios. Unset:
# every one that is installed. Named explicitly: a missing one is installed (root) or skipped.
REFERENCES_ASKED=${REFERENCES+yes}
REFERENCES=${REFERENCES-nginx haproxy}

BACKEND_PID=
PROXY_PID=
LOADGEN_PID=
declare -A REF_PID=() REF_PORT=() REF_BIN=() REF_VERSION=() REF_CONF=()
REFS=() # the references in use, in run order

log() { printf '%s\n' "run.sh: $*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
    local name
    stop_pid "$LOADGEN_PID"
    stop_pid "$PROXY_PID"
    for name in "${!REF_PID[@]}"; do
        stop_pid "${REF_PID[$name]}"
    done
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
rm -rf "$OUT"/runs.jsonl "$OUT"/references.jsonl "$OUT"/*.log "$OUT"/nginx "$OUT"/haproxy

# Records a reference that will not run (reason: no double quotes) for the report.
skip_reference() {
    log "reference $1: $2; skipped"
    printf '{"name":"%s","skipped":"%s"}\n' "$1" "$2" >>"$OUT/references.jsonl"
}

# install_package PKG: Debian's package, as root only. If the install starts the package's
# system service (a process named PKG that was not running before), stops it again with
# `service PKG stop`: the benchmark never uses it.
install_package() {
    local pkg=$1 before pid
    if ((EUID != 0)); then
        log "reference $pkg: not installed, and installing it needs root. Run:"
        log "  sudo apt-get install -y $pkg"
        INSTALL_WHY="not installed; installing it needs root: sudo apt-get install -y $pkg"
        return 1
    fi
    before=" $(pgrep -x "$pkg" | tr '\n' ' ' || true) "
    log "reference $pkg: installing Debian's $pkg package (log: $OUT/apt-$pkg.log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y "$pkg" >"$OUT/apt-$pkg.log" 2>&1; then
        { apt-get update && apt-get install -y "$pkg"; } >>"$OUT/apt-$pkg.log" 2>&1 || {
            log "reference $pkg: apt-get install -y $pkg failed; see $OUT/apt-$pkg.log"
            INSTALL_WHY="not installed; apt-get install -y $pkg failed (see $OUT/apt-$pkg.log)"
            return 1
        }
    fi
    for pid in $(pgrep -x "$pkg"); do
        if [[ $before != *" $pid "* ]]; then
            log "reference $pkg: the install started the system $pkg service (pid $pid);" \
                "stopping it: service $pkg stop"
            service "$pkg" stop >>"$OUT/apt-$pkg.log" 2>&1 ||
                log "warning: service $pkg stop failed; the system $pkg is not used here"
            break
        fi
    done
}

for name in $REFERENCES; do
    case $name in
    nginx | haproxy) ;;
    *) die "REFERENCES: unknown reference '$name' (known: nginx haproxy)" ;;
    esac
    [[ -z ${REF_BIN[$name]:-} ]] || continue # named twice
    bin=$(find_bin "$name") || bin=
    if [[ -z $bin && -n $REFERENCES_ASKED ]]; then
        INSTALL_WHY="not installed; the $name package installed no $name binary"
        install_package "$name" && bin=$(find_bin "$name") || bin=
        [[ -n $bin ]] || { skip_reference "$name" "$INSTALL_WHY"; continue; }
    elif [[ -z $bin ]]; then
        skip_reference "$name" "not installed (REFERENCES=$name bench/run.sh installs it)"
        continue
    fi
    REF_BIN[$name]=$bin
    case $name in
    nginx) REF_VERSION[$name]=$("$bin" -v 2>&1 | sed -n 's|^nginx version: nginx/||p') ;;
    haproxy) REF_VERSION[$name]=$("$bin" -v 2>&1 | awk 'NR == 1 { print $3 }') ;;
    esac
    REFS+=("$name")
done

# --- machine -----------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE=$(printf 'nproc=%s cpu="%s" kernel=%s' "$(nproc)" "$CPU_MODEL" "$(uname -r)")
VERSIONS=$(printf 'wsbridge=%s node=%s ws=%s libuv=%s openssl="%s" cxx="%s"' \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
    "$(node --version)" \
    "$(node -p "require('$ROOT/node_modules/ws/package.json').version")" \
    "$(pkg-config --modversion libuv)" "$(openssl version | cut -d' ' -f1-2)" \
    "$(c++ --version | head -1)")
for name in "${REFS[@]}"; do
    VERSIONS+=" $name=${REF_VERSION[$name]}"
done
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

# Connection capacity for the references: both legs of every connection, with headroom.
REF_MAXCONN=$((CONNECTIONS * 2 + 64 > 1024 ? CONNECTIONS * 2 + 64 : 1024))

# Minimal WebSocket proxying, buffering off, like wsbridge: one event loop (master_process
# off: the process runs the worker loop itself, so one PID to pin, account and stop).
write_nginx_config() {
    local dir=$1 port=$2
    mkdir -p "$dir/tmp"
    REF_CONF[nginx]=$dir/nginx.conf
    cat >"$dir/nginx.conf" <<EOF
# Generated by bench/run.sh: nginx as a same-run reference WebSocket proxy.
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $REF_MAXCONN;
}
http {
    access_log off;
    tcp_nodelay on;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location /echo {
            proxy_pass http://127.0.0.1:$BACKEND_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }
    }
}
EOF
}

# HTTP mode (HAProxy checks the handshake, then tunnels both ways after the 101), one
# thread, no logging.
write_haproxy_config() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    REF_CONF[haproxy]=$dir/haproxy.cfg
    cat >"$dir/haproxy.cfg" <<EOF
# Generated by bench/run.sh: HAProxy as a same-run reference WebSocket proxy.
global
    nbthread 1
    maxconn $REF_MAXCONN
defaults
    mode http
    maxconn $REF_MAXCONN
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend bench
    bind 127.0.0.1:$port
    default_backend node
backend node
    server node 127.0.0.1:$BACKEND_PORT
EOF
}

# start_reference NAME: on a free port, pinned like the proxy (CPU_PROXY, NICE), in the
# foreground as our child. Retries with another port when the chosen one was taken
# meanwhile. Sets REF_PID[NAME] and REF_PORT[NAME]; fails (after logging why) otherwise.
start_reference() {
    local name=$1 dir=$OUT/$1 bin=${REF_BIN[$1]} attempt port pid rc
    for attempt in 1 2 3; do
        port=$(free_port) || die "free_port failed"
        "write_${name}_config" "$dir" "$port"
        rm -f "$dir"/*.log
        case $name in
        nginx)
            "${PIN_PROXY[@]}" "$bin" -p "$dir/" -c "${REF_CONF[nginx]}" -e "$dir/error.log" \
                >"$dir/stdout.log" 2>&1 &
            ;;
        haproxy)
            "${PIN_PROXY[@]}" "$bin" -db -f "${REF_CONF[haproxy]}" >"$dir/stdout.log" 2>&1 &
            ;;
        esac
        pid=$!
        REF_PID[$name]=$pid
        for _ in $(seq 150); do
            if owns_listener "$pid" "$port"; then
                REF_PORT[$name]=$port
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            rc="not listening after 15 s"
            stop_pid "$pid"
        else
            wait "$pid" 2>/dev/null && rc="exit 0" || rc="exit $?"
        fi
        unset 'REF_PID[$name]'
        if cat "$dir"/*.log 2>/dev/null | grep -qiE 'address already in use|cannot bind'; then
            log "reference $name: port $port was taken meanwhile (attempt $attempt); another one"
            continue
        fi
        break
    done
    log "reference $name did not start ($rc); last log lines:"
    tail -n 5 "$dir"/*.log >&2 2>/dev/null || true
    return 1
}

check_reference_alive() {
    local name=$1 pid=${REF_PID[$1]} rc
    kill -0 "$pid" 2>/dev/null && return 0
    wait "$pid" && rc=0 || rc=$?
    unset 'REF_PID[$name]'
    die "reference $name died (exit $rc) during $2; last log lines:" \
        "$(tail -n 5 "$OUT/$name"/*.log)"
}

# --- echo runs ---------------------------------------------------------------------------
# CPU accounting, to tell a noisy run from a slow proxy: `other_cpu_pct` is the share of all
# CPU time during a run spent by processes other than loadgen, proxy and backend.
TIME_CMD=()
if [[ -x /usr/bin/time ]]; then
    TIME_CMD=(/usr/bin/time -f '%U %S' -o "$OUT/loadgen.time")
fi

# Summed CPU jiffies of several processes.
ticks_of() {
    local pid sum=0
    for pid in "$@"; do
        sum=$((sum + $(proc_ticks "$pid")))
    done
    echo "$sum"
}

# run_echo TAG PORT [PID]: one loadgen echo run, through the proxy PID (wsbridge or a
# reference; none for direct); appends {"run":TAG,...} to runs.jsonl. A run during which
# other processes took more than NOISE_PCT % of the CPU is repeated (RETRIES times). The
# proxies not under test sit idle; their CPU time counts as ours, not as `other`.
run_echo() {
    local tag=$1 port=$2 json rc cpu0 cpu1 be0 be1 px0 px1 all0 all1 lg other attempt cores
    local proxies=("$PROXY_PID" "${REF_PID[@]}") under=("${@:3}")
    # Direct: the `proxy` CPU column is what all the idle proxies used (about 0).
    ((${#under[@]})) || under=("${proxies[@]}")
    for ((attempt = 1; attempt <= RETRIES + 1; attempt++)); do
        wait_quiet
        rc=0
        lg=0
        cpu0=$(stat_cpu)
        be0=$(proc_ticks "$BACKEND_PID")
        px0=$(ticks_of "${under[@]}")
        all0=$(ticks_of "${proxies[@]}")
        json=$("${TIME_CMD[@]}" "${PIN_LOADGEN[@]}" "$LOADGEN" echo \
            --url "ws://127.0.0.1:$port/echo" --connections "$CONNECTIONS" --size "$SIZE" \
            --pipeline "$PIPELINE" --duration "$DURATION" --warmup "$WARMUP" \
            2>>"$OUT/loadgen.log") || rc=$?
        be1=$(proc_ticks "$BACKEND_PID")
        px1=$(ticks_of "${under[@]}")
        all1=$(ticks_of "${proxies[@]}")
        cpu1=$(stat_cpu)
        [[ $json == \{* ]] || die "loadgen $tag failed (exit $rc): $(tail -n 5 "$OUT/loadgen.log")"
        if [[ ${#TIME_CMD[@]} -gt 0 ]]; then
            lg=$(awk -v t="$TICKS" '{ printf "%d", ($1 + $2) * t }' "$OUT/loadgen.time")
        fi
        other=$(busy_pct "$cpu0" "$cpu1" $((be1 - be0 + all1 - all0 + lg)))
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
started=()
for name in "${REFS[@]}"; do
    if start_reference "$name"; then
        started+=("$name")
        log "reference $name on ${REF_PORT[$name]} (pid ${REF_PID[$name]}, ${REF_CONF[$name]})"
        printf '{"name":"%s","version":"%s","config":"%s","port":%s}\n' "$name" \
            "${REF_VERSION[$name]}" "${REF_CONF[$name]}" "${REF_PORT[$name]}" \
            >>"$OUT/references.jsonl"
    else
        skip_reference "$name" "did not start (logs in $OUT/$name)"
    fi
done
REFS=("${started[@]}")

# Prime every path first (unrecorded): a fresh Node backend is still optimising its hot code
# and growing its heap, which otherwise makes direct-1 the slowest run.
for port in "$BACKEND_PORT" "$PROXY_PORT" "${REF_PORT[@]}"; do
    "${PIN_LOADGEN[@]}" "$LOADGEN" echo --url "ws://127.0.0.1:$port/echo" \
        --connections "$CONNECTIONS" --size "$SIZE" --pipeline "$PIPELINE" --duration "$PRIME" \
        --warmup 0 >/dev/null 2>>"$OUT/loadgen.log" || die "priming run on port $port failed"
done

for round in 1 2; do
    run_echo "direct-$round" "$BACKEND_PORT"
    run_echo "proxy-$round" "$PROXY_PORT" "$PROXY_PID"
    check_proxy_alive "proxy-$round"
    for name in "${REFS[@]}"; do
        run_echo "$name-$round" "${REF_PORT[$name]}" "${REF_PID[$name]}"
        check_reference_alive "$name" "$name-$round"
    done
done
ECHO_HWM_KIB=$(kib_field VmHWM "/proc/$PROXY_PID/status")
stop_pid "$PROXY_PID"
PROXY_PID=
for name in "${REFS[@]}"; do
    stop_pid "${REF_PID[$name]}"
    unset 'REF_PID[$name]'
done

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
    node - "$OUT/runs.jsonl" "$OUT/latest.json" "$OUT/references.jsonl" <<'EOF'
const fs = require('node:fs');
const [runsPath, outPath, refsPath] = process.argv.slice(2);
const jsonl = (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8').trim().split('\n') : [])
  .filter(Boolean).map((l) => JSON.parse(l));
const runs = jsonl(runsPath);
const echo = runs.filter((r) => r.mode === 'echo');
const idle = runs.find((r) => r.run === 'idle-1');
const idle2 = runs.find((r) => r.run === 'idle-2');
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
// A run's path is its tag without the round: direct, proxy, nginx, haproxy.
const pathOf = (r) => r.run.replace(/-\d+$/, '');
const side = (path, key) => mean(echo.filter((r) => pathOf(r) === path).map((r) => r[key]));
const ratioOf = (a, b) => ({
  msgs_per_sec: side(a, 'msgs_per_sec') / side(b, 'msgs_per_sec'),
  p50: side(a, 'p50_us') / side(b, 'p50_us'), p99: side(a, 'p99_us') / side(b, 'p99_us'),
});
const ratios = ratioOf('proxy', 'direct');
// Same-run references: each one's ratios against direct, and the proxy's against it.
const references = {};
const skipped = {};
for (const ref of jsonl(refsPath)) {
  if (ref.skipped) {
    skipped[ref.name] = ref.skipped;
  } else if (echo.some((r) => pathOf(r) === ref.name)) {
    references[ref.name] = { ...ref, ratios: ratioOf(ref.name, 'direct'),
      proxy_vs_reference: ratioOf('proxy', ref.name) };
  }
}
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
const names = Object.keys(references);
const width = Math.max(13, ...names.map((n) => n.length + 8));
const ratioLine = (label, r) => lines.push(`${(label + ':').padEnd(width)} throughput ` +
  `x${r.msgs_per_sec.toFixed(3)}, p50 x${r.p50.toFixed(2)}, p99 x${r.p99.toFixed(2)}`);
ratioLine('proxy/direct', ratios);
for (const n of names) ratioLine(`${n}/direct`, references[n].ratios);
for (const n of names) ratioLine(`proxy/${n}`, references[n].proxy_vs_reference);
for (const [n, why] of Object.entries(skipped)) lines.push(`reference ${n} skipped: ${why}`);
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
  load_after: process.env.LOAD_AFTER, echo, ratios, references, references_skipped: skipped,
  idle_memory: memory,
  proxy_warn_error_lines: Number(process.env.WARNINGS),
};
fs.writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n');
console.log(`results: ${outPath}`);
EOF
