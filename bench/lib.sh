# Helpers shared by bench/run.sh, bench/run_tls.sh and bench/run_sessions.sh, which source this file after defining
# log() (their own prefix) and the settings these read (WAIT_QUIET, NOISE_PCT, ...).

die() { log "$*"; exit 1; }

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

# --- reference proxies -------------------------------------------------------------------
# A free loopback port: bound by the OS (port 0), then released for nginx/HAProxy to take.
free_port() {
    node -e "const s = require('node:net').createServer();
        s.listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); });"
}

# True when PID holds the listening socket on 127.0.0.1:PORT (and not some other process).
owns_listener() {
    local pid=$1 port=$2 inode fd
    inode=$(awk -v a="$(printf '0100007F:%04X' "$port")" \
        '$2 == a && $4 == "0A" { print $10; exit }' /proc/net/tcp)
    [[ -n $inode ]] || return 1
    for fd in "/proc/$pid/fd"/*; do
        [[ $(readlink "$fd" 2>/dev/null) == "socket:[$inode]" ]] && return 0
    done
    return 1
}

# --- reference proxies: which ones -------------------------------------------------------
# nginx and HAProxy, each as the current user with its own config in $OUT, in front of the
# same backend; never their system services or system config.
find_bin() { command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; }; }

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
