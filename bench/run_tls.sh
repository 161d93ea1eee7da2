#!/usr/bin/env bash
# bench/run_tls.sh: wsbridge with a TLS listener against nginx and HAProxy terminating TLS, in
# the same run, in front of the same plain Node `ws` backend as bench/run.sh. See
# bench/README.md ("TLS benchmark") for what is measured and how to read it.
#
#   bench/run_tls.sh                    # defaults below (about 10 minutes)
#   ROUNDS=5 DURATION=10s bench/run_tls.sh
#   IDLE=0 HANDSHAKES=0 bench/run_tls.sh   # echo only
#   SKIP_BUILD=1 bench/run_tls.sh       # reuse build-bench/ binaries as they are
#
# Steps, all three servers up at once on free loopback ports:
#   1. wss echo: CONNECTIONS × SIZE-byte messages, ROUNDS rounds, the three servers interleaved
#      (the order rotates each round); msgs/s, p50/p99, server CPU µs per echoed message.
#   2. TLS handshakes: full TLS 1.3 handshakes/s and resumed (PSK from session tickets)
#      handshakes/s, ROUNDS rounds interleaved; server CPU µs per handshake.
#   3. idle memory: a fresh instance of each server, IDLE idle wss connections holding one echo
#      each; server RSS growth per connection.
# Every server negotiates the same thing: the same ECDSA P-256 certificate (generated here),
# TLS 1.3 with CIPHER and GROUP (the load generator offers nothing else).
# Results: a table on stdout and build-bench/bench-results-tls/latest.json (never committed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
OUT=$BUILD/bench-results-tls
CONNECTIONS=${CONNECTIONS:-100}
SIZE=${SIZE:-64}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
PRIME=${PRIME:-3s}
ROUNDS=${ROUNDS:-3}
HANDSHAKES=${HANDSHAKES:-1}      # 0 skips the handshake step
HS_DURATION=${HS_DURATION:-5s}
HS_CONNECTIONS=${HS_CONNECTIONS:-4} # handshakes in flight
IDLE=${IDLE:-4000}               # 0 skips the memory step
IDLE_SETTLE=${IDLE_SETTLE:-12}   # seconds between all idle connections open and the RSS reading
CIPHER=${CIPHER:-TLS_AES_128_GCM_SHA256}
GROUP=${GROUP:-X25519}
WAIT_QUIET=${WAIT_QUIET:-60}     # seconds to wait for a quiet machine before each run
NOISE_PCT=${NOISE_PCT:-10}       # "quiet": other processes use at most this % of all CPUs
SERVERS=(wsbridge nginx haproxy)

BACKEND_PID=
LOADGEN_PID=
declare -A PID=() PORT=() BIN=() VERSION=() CONF=()

log() { printf '%s\n' "run_tls.sh: $*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

cleanup() {
    local name
    stop_pid "$LOADGEN_PID"
    for name in "${!PID[@]}"; do
        stop_pid "${PID[$name]}"
    done
    stop_pid "$BACKEND_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- limits, build -----------------------------------------------------------------------
# wsbridge holds two sockets per idle connection (client + backend), the loadgen one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
[[ $FDS == unlimited || $FDS -ge $((IDLE * 2 + 256)) ]] ||
    die "ulimit -n is $FDS (hard $(ulimit -Hn)); need $((IDLE * 2 + 256)) for IDLE=$IDLE"
if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building Release into $BUILD"
    mkdir -p "$BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPROXY_TESTS=OFF >/dev/null ||
        die "cmake configure failed"
    cmake --build "$BUILD" --target wsbridge loadgen -j "$(nproc)" >"$BUILD/build.log" 2>&1 ||
        die "build failed; see $BUILD/build.log"
fi
LOADGEN=$BUILD/bench/loadgen
BIN[wsbridge]=$BUILD/wsbridge
[[ -x $LOADGEN && -x ${BIN[wsbridge]} ]] || die "build did not produce loadgen and wsbridge"
[[ -d $ROOT/node_modules/ws ]] || (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
rm -rf "$OUT"
mkdir -p "$OUT"

for name in nginx haproxy; do
    bin=$(find_bin "$name") || bin=
    if [[ -z $bin ]]; then
        ((EUID == 0)) || die "$name is not installed; run: sudo apt-get install -y $name"
        before=" $(pgrep -x "$name" | tr '\n' ' ' || true) "
        log "installing Debian's $name (log: $OUT/apt-$name.log)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$name" >"$OUT/apt-$name.log" 2>&1 ||
            { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "$name"; } \
                >>"$OUT/apt-$name.log" 2>&1 || die "apt-get install -y $name failed"
        for pid in $(pgrep -x "$name"); do # the package's own service: not ours, stop it
            [[ $before == *" $pid "* ]] || { service "$name" stop >/dev/null 2>&1 || true; break; }
        done
        bin=$(find_bin "$name") || die "no $name binary after installing it"
    fi
    BIN[$name]=$bin
done
VERSION[nginx]=$("${BIN[nginx]}" -v 2>&1 | sed -n 's|^nginx version: nginx/||p')
VERSION[haproxy]=$("${BIN[haproxy]}" -v 2>&1 | awk 'NR == 1 { print $3 }')
VERSION[wsbridge]=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE=$(printf 'nproc=%s cpu="%s" kernel=%s' "$(nproc)" "$CPU_MODEL" "$(uname -r)")
VERSIONS=$(printf 'wsbridge=%s nginx=%s haproxy=%s openssl="%s" node=%s' "${VERSION[wsbridge]}" \
    "${VERSION[nginx]}" "${VERSION[haproxy]}" "$(openssl version | cut -d' ' -f1-2)" \
    "$(node --version)")
echo "machine:  $MACHINE"
echo "versions: $VERSIONS"
echo "tls:      TLS 1.3 $CIPHER $GROUP, ECDSA P-256 certificate"

# --- certificate: ECDSA P-256, generated for this run ------------------------------------
TLSDIR=$OUT/tls
mkdir -p "$TLSDIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$TLSDIR/key.pem" -out "$TLSDIR/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 ||
    die "openssl req failed"
cat "$TLSDIR/cert.pem" "$TLSDIR/key.pem" >"$TLSDIR/combined.pem" # HAProxy's crt
chmod 600 "$TLSDIR"/*.pem

# --- backend -----------------------------------------------------------------------------
node "$ROOT/examples/backend/server.mjs" --port 0 --quiet >"$OUT/backend.out" 2>"$OUT/backend.log" &
BACKEND_PID=$!
line=$(wait_for_line "$OUT/backend.out" 'backend listening on 127\.0\.0\.1:[0-9]+' 15 \
    "$BACKEND_PID") || die "backend did not start: $(tail -n 5 "$OUT/backend.log")"
BACKEND_PORT=${line##*:}

MAXCONN=$(((IDLE > CONNECTIONS ? IDLE : CONNECTIONS) * 2 + 256))

write_wsbridge_config() {
    local dir=$1 port=$2
    CONF[wsbridge]=$dir/wsbridge.yaml
    cat >"$dir/wsbridge.yaml" <<EOF
# Generated by bench/run_tls.sh: one TLS loopback listener, one route, limits out of the way.
listen:
  - address: 127.0.0.1:$port
    tls: {cert: $TLSDIR/cert.pem, key: $TLSDIR/key.pem}
limits:
  max_connections: 20000
  max_connections_per_ip: 20000
  max_message: 1048576
  outbound_queue: 2097152
  rate: { messages_per_second: 1000000000, burst: 1000000000 }
routes:
  - path: /echo
    backend: ws://127.0.0.1:$BACKEND_PORT/echo
EOF
}

# nginx: one process running the worker loop; TLS with its defaults (tickets on).
write_nginx_config() {
    local dir=$1 port=$2
    mkdir -p "$dir/tmp"
    CONF[nginx]=$dir/nginx.conf
    cat >"$dir/nginx.conf" <<EOF
# Generated by bench/run_tls.sh: nginx terminating TLS as a same-run reference.
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $(($(ulimit -n) < 4 * MAXCONN ? $(ulimit -n) : 4 * MAXCONN));
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    # nginx starts reusing (closing) connections once fewer than 1/16 are free: headroom.
    worker_connections $((2 * MAXCONN));
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
        listen 127.0.0.1:$port ssl;
        ssl_certificate $TLSDIR/cert.pem;
        ssl_certificate_key $TLSDIR/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
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

# HAProxy: one thread, HTTP mode (tunnel after the 101), TLS with its defaults (tickets on).
write_haproxy_config() {
    local dir=$1 port=$2
    CONF[haproxy]=$dir/haproxy.cfg
    cat >"$dir/haproxy.cfg" <<EOF
# Generated by bench/run_tls.sh: HAProxy terminating TLS as a same-run reference.
global
    nbthread 1
    maxconn $MAXCONN
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    maxconn $MAXCONN
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
frontend bench
    bind 127.0.0.1:$port ssl crt $TLSDIR/combined.pem alpn http/1.1
    default_backend node
backend node
    server node 127.0.0.1:$BACKEND_PORT
EOF
}

# start_server NAME TAG: on a free port, in the foreground as our child; sets PID/PORT.
start_server() {
    local name=$1 tag=$2 dir=$OUT/$1 attempt port pid
    mkdir -p "$dir"
    for attempt in 1 2 3; do
        port=$(free_port) || die "free_port failed"
        "write_${name}_config" "$dir" "$port"
        case $name in
        wsbridge) "${BIN[wsbridge]}" -c "${CONF[wsbridge]}" 2>"$dir/$tag.log" & ;;
        nginx) "${BIN[nginx]}" -p "$dir/" -c "${CONF[nginx]}" -e "$dir/error.log" \
            >"$dir/$tag.log" 2>&1 & ;;
        haproxy) "${BIN[haproxy]}" -db -f "${CONF[haproxy]}" >"$dir/$tag.log" 2>&1 & ;;
        esac
        pid=$!
        PID[$name]=$pid
        for _ in $(seq 150); do
            if owns_listener "$pid" "$port"; then
                PORT[$name]=$port
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        stop_pid "$pid"
        unset 'PID[$name]'
        log "$name did not start on port $port (attempt $attempt): $(tail -n 3 "$dir"/*.log)"
    done
    die "$name did not start"
}

stop_server() {
    stop_pid "${PID[$1]}"
    unset 'PID[$1]'
}

check_alive() {
    kill -0 "${PID[$1]}" 2>/dev/null || die "$1 died during $2: $(tail -n 5 "$OUT/$1"/*.log)"
}

# run_load KIND NAME TAG ARGS...: one loadgen run against server NAME with CPU accounting;
# appends {"run":TAG,"server":NAME,"kind":KIND,"other_cpu_pct":..,"server_cpu_s":..,...}.
run_load() {
    local kind=$1 name=$2 tag=$3 json rc=0 cpu0 cpu1 px0 px1 be0 be1 lg0 lg1 other
    shift 3
    wait_quiet
    cpu0=$(stat_cpu)
    px0=$(proc_ticks "${PID[$name]}")
    be0=$(proc_ticks "$BACKEND_PID")
    lg0=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat) # our children: the loadgen
    json=$("$LOADGEN" "$@" --tls-ciphersuites "$CIPHER" --tls-groups "$GROUP" \
        2>>"$OUT/loadgen.log") || rc=$?
    lg1=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
    px1=$(proc_ticks "${PID[$name]}")
    be1=$(proc_ticks "$BACKEND_PID")
    cpu1=$(stat_cpu)
    [[ $json == \{* ]] || die "loadgen $tag failed (exit $rc): $(tail -n 5 "$OUT/loadgen.log")"
    other=$(busy_pct "$cpu0" "$cpu1" $((px1 - px0 + be1 - be0 + lg1 - lg0)))
    json=$(printf '{"run":"%s","server":"%s","kind":"%s","other_cpu_pct":%s,"server_cpu_s":%s,"backend_cpu_s":%s,"loadgen_cpu_s":%s,%s' \
        "$tag" "$name" "$kind" "$other" \
        "$(awk -v t="$((px1 - px0))" -v h="$TICKS" 'BEGIN { printf "%.2f", t / h }')" \
        "$(awk -v t="$((be1 - be0))" -v h="$TICKS" 'BEGIN { printf "%.2f", t / h }')" \
        "$(awk -v t="$((lg1 - lg0))" -v h="$TICKS" 'BEGIN { printf "%.2f", t / h }')" \
        "${json#\{}")
    log "$tag: $json"
    printf '%s\n' "$json" >>"$OUT/runs.jsonl"
}

# Rotates the server order by round, so that drift does not favour one position.
order_for_round() {
    local r=$1 i n=${#SERVERS[@]}
    for ((i = 0; i < n; i++)); do
        printf '%s\n' "${SERVERS[$(((i + r) % n))]}"
    done
}

for name in "${SERVERS[@]}"; do
    start_server "$name" echo
    log "$name on ${PORT[$name]} (pid ${PID[$name]}, ${CONF[$name]})"
done

# --- 1. wss echo ---------------------------------------------------------------------------
for name in "${SERVERS[@]}"; do # unrecorded priming: Node's JIT, the servers' pools
    "$LOADGEN" echo --url "wss://127.0.0.1:${PORT[$name]}/echo" --connections "$CONNECTIONS" \
        --size "$SIZE" --duration "$PRIME" --warmup 0 --tls-ciphersuites "$CIPHER" \
        --tls-groups "$GROUP" >/dev/null 2>>"$OUT/loadgen.log" || die "priming $name failed"
done
for ((round = 1; round <= ROUNDS; round++)); do
    for name in $(order_for_round "$round"); do
        run_load echo "$name" "echo-$name-$round" echo \
            --url "wss://127.0.0.1:${PORT[$name]}/echo" --connections "$CONNECTIONS" \
            --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP"
        check_alive "$name" "echo-$round"
    done
done

# --- 2. handshakes -------------------------------------------------------------------------
if ((HANDSHAKES > 0)); then
    for ((round = 1; round <= ROUNDS; round++)); do
        for name in $(order_for_round "$round"); do
            for resume in 0 1; do
                run_load "handshake-$([[ $resume == 1 ]] && echo resumed || echo full)" "$name" \
                    "hs$resume-$name-$round" handshake --url "wss://127.0.0.1:${PORT[$name]}/" \
                    --connections "$HS_CONNECTIONS" --duration "$HS_DURATION" --warmup 0 \
                    --resume "$resume"
                check_alive "$name" "handshakes-$round"
            done
        done
    done
fi
for name in "${SERVERS[@]}"; do
    stop_server "$name"
done

# --- 3. idle memory ------------------------------------------------------------------------
# A fresh server each, so the baseline holds nothing left from the runs above.
if ((IDLE > 0)); then
    for name in "${SERVERS[@]}"; do
        start_server "$name" idle
        sleep 1
        rss_before=$(kib_field VmRSS "/proc/${PID[$name]}/status")
        "$LOADGEN" idle --url "wss://127.0.0.1:${PORT[$name]}/echo" --connections "$IDLE" \
            --hold 300s --echo 1 --tls-ciphersuites "$CIPHER" --tls-groups "$GROUP" \
            >"$OUT/idle-$name.out" 2>>"$OUT/loadgen.log" &
        LOADGEN_PID=$!
        open_line=$(wait_for_line "$OUT/idle-$name.out" '^(all [0-9]+ open|opened [0-9]+ of)' \
            240 "$LOADGEN_PID") || die "idle loadgen did not open: $(tail -n 3 "$OUT/loadgen.log")"
        log "idle $name: $open_line"
        # Held connections are measured settled: deferred frees done, and wsbridge's heap
        # trimmer (every 10 s, proxy/core/heap_trim.h) has given back the handshake burst's
        # free pages. The references are measured after the same wait.
        sleep "$IDLE_SETTLE"
        check_alive "$name" "idle hold"
        rss_held=$(kib_field VmRSS "/proc/${PID[$name]}/status")
        kill -INT "$LOADGEN_PID"
        wait "$LOADGEN_PID" || true
        LOADGEN_PID=
        json=$(grep -m1 '^{' "$OUT/idle-$name.out") || die "idle loadgen printed no JSON"
        printf '{"run":"idle-%s","server":"%s","kind":"idle","rss_before_kib":%s,"rss_held_kib":%s,"loadgen":%s}\n' \
            "$name" "$name" "$rss_before" "$rss_held" "$json" >>"$OUT/runs.jsonl"
        log "idle $name: RSS $rss_before -> $rss_held KiB; $json"
        stop_server "$name"
    done
fi

# --- report --------------------------------------------------------------------------------
MACHINE=$MACHINE VERSIONS=$VERSIONS CIPHER=$CIPHER GROUP=$GROUP CONNECTIONS=$CONNECTIONS \
    SIZE=$SIZE node - "$OUT/runs.jsonl" "$OUT/latest.json" <<'EOF'
const fs = require('node:fs');
const [runsPath, outPath] = process.argv.slice(2);
const runs = fs.readFileSync(runsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const servers = ['wsbridge', 'nginx', 'haproxy'];
const refs = ['nginx', 'haproxy'];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const of = (kind, server) => runs.filter((r) => r.kind === kind && r.server === server);
const lines = [];
const result = { date: new Date().toISOString(), machine: process.env.MACHINE,
  versions: process.env.VERSIONS, tls: `TLSv1.3 ${process.env.CIPHER} ${process.env.GROUP} ECDSA P-256`,
  echo: {}, handshakes: {}, idle: {}, ratios: {} };
const fmt = (v, d = 0) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
// Per metric, the better reference (higher for rates, lower for latency and cost).
const better = (table, key, higher) => {
  const vals = refs.filter((r) => table[r]).map((r) => [r, table[r][key]]);
  vals.sort((a, b) => (higher ? b[1] - a[1] : a[1] - b[1]));
  return vals[0];
};
const ratioLine = (label, table, key, higher) => {
  const [ref, v] = better(table, key, higher);
  const r = table.wsbridge[key] / v;
  result.ratios[label] = { ratio: r, reference: ref };
  return `${label}: x${r.toFixed(3)} of ${ref} (${fmt(table.wsbridge[key], 1)} vs ${fmt(v, 1)})`;
};

if (runs.some((r) => r.kind === 'echo')) {
  lines.push(`wss echo, ${process.env.CONNECTIONS} connections x ${process.env.SIZE} B, medians of rounds:`);
  lines.push(`${'server'.padEnd(10)}${'msgs/s'.padStart(9)}${'p50 us'.padStart(9)}${'p99 us'.padStart(9)}` +
    `${'cpu us/msg'.padStart(12)}${'errors'.padStart(8)}  rounds (msgs/s; other cpu %)`);
  for (const s of servers) {
    const rs = of('echo', s);
    const e = { msgs_per_sec: median(rs.map((r) => r.msgs_per_sec)), p50_us: median(rs.map((r) => r.p50_us)),
      p99_us: median(rs.map((r) => r.p99_us)),
      cpu_us_per_msg: median(rs.map((r) => (1e6 * r.server_cpu_s) / r.sent)),
      errors: rs.reduce((a, r) => a + r.errors, 0), rounds: rs.length };
    result.echo[s] = e;
    lines.push(`${s.padEnd(10)}${fmt(e.msgs_per_sec).padStart(9)}${fmt(e.p50_us, 1).padStart(9)}` +
      `${fmt(e.p99_us, 1).padStart(9)}${fmt(e.cpu_us_per_msg, 2).padStart(12)}${String(e.errors).padStart(8)}  ` +
      rs.map((r) => `${r.msgs_per_sec} (${r.other_cpu_pct}%)`).join(', '));
  }
  lines.push(ratioLine('echo msgs/s', result.echo, 'msgs_per_sec', true));
  lines.push(ratioLine('echo p50', result.echo, 'p50_us', false));
  lines.push(ratioLine('echo p99', result.echo, 'p99_us', false));
  lines.push(ratioLine('echo cpu/msg', result.echo, 'cpu_us_per_msg', false));
  lines.push('');
}
for (const kind of ['handshake-full', 'handshake-resumed']) {
  if (!runs.some((r) => r.kind === kind)) continue;
  const table = {};
  lines.push(`${kind} (medians):`);
  for (const s of servers) {
    const rs = of(kind, s);
    const h = { per_sec: median(rs.map((r) => r.handshakes_per_sec)), p50_us: median(rs.map((r) => r.p50_us)),
      cpu_us_per_handshake: median(rs.map((r) => (1e6 * r.server_cpu_s) / Math.max(1, r.handshakes))),
      resumed_share: median(rs.map((r) => r.resumed / Math.max(1, r.handshakes))),
      errors: rs.reduce((a, r) => a + r.errors, 0) };
    table[s] = h;
    lines.push(`  ${s.padEnd(10)} ${fmt(h.per_sec).padStart(6)}/s  p50 ${fmt(h.p50_us).padStart(6)} us  ` +
      `server cpu ${fmt(h.cpu_us_per_handshake).padStart(5)} us/handshake  resumed ${fmt(100 * h.resumed_share)}%  ` +
      `errors ${h.errors}  rounds ${rs.map((r) => r.handshakes_per_sec).join(', ')}`);
  }
  result.handshakes[kind] = table;
  lines.push(`  ${ratioLine(`${kind}/s`, table, 'per_sec', true)}`);
  lines.push(`  ${ratioLine(`${kind} cpu`, table, 'cpu_us_per_handshake', false)}`);
  lines.push('');
}
for (const s of servers) {
  const r = runs.find((x) => x.kind === 'idle' && x.server === s);
  if (!r) continue;
  const held = r.loadgen.held || 1;
  result.idle[s] = { connections: held, rss_before_kib: r.rss_before_kib, rss_held_kib: r.rss_held_kib,
    kib_per_conn: (r.rss_held_kib - r.rss_before_kib) / held, errors: r.loadgen.errors };
  lines.push(`idle ${s.padEnd(9)} ${held} held (echoed ${r.loadgen.echoed}, errors ${r.loadgen.errors}): RSS ` +
    `${r.rss_before_kib} -> ${r.rss_held_kib} KiB = ${result.idle[s].kib_per_conn.toFixed(2)} KiB/conn`);
}
console.log(lines.join('\n'));
fs.writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n');
console.log(`results: ${outPath}`);
EOF
