#!/bin/bash
# Benchmark (not a test): user-space instructions per request of apache2 -X under callgrind,
# serving N1 then N2 keep-alive requests for a small static file, for
#   (a) no CustomLog  (b) a file CustomLog  (c) a $group CustomLog to a local spread-daemon
#   (d) a $group CustomLog while the daemon is down (spool path)
# per request = (Ir(N2) - Ir(N1)) / (N2 - N1): startup and shutdown cancel out.
# Then requests/s and parent+children CPU per request with wrk (alternating runs), if present.
# Usage: scripts/bench-module [N1 N2]   (defaults 500 2500). Needs valgrind, ab; wrk optional.
set -euo pipefail

N1=${1:-500}
N2=${2:-2500}
here=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
(cd "$here" && cargo build --release -p mod_log_spread -p spread-daemon -p spreadlogd >&2)
so=$target/release/libmod_log_spread.so
daemon_bin=$target/release/spread-daemon
logd_bin=$target/release/spreadlogd
for t in valgrind ab; do command -v $t >/dev/null || { echo "bench-module: $t missing (apt-get install valgrind apache2-utils)" >&2; exit 1; }; done

work=$(mktemp -d /tmp/bench-module.XXXXXX)
chmod 777 "$work"
cleanup() { [ -n "${lpid:-}" ] && kill "$lpid" 2>/dev/null; [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null; true; }
trap cleanup EXIT
mkdir -p "$work/htdocs" && echo "hello" > "$work/htdocs/index.html"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$daemon_bin" -p "$dport" --no-tcp --unix-dir "$work" 2>"$work/daemon.log" &
dpid=$!
for _ in $(seq 100); do [ -S "$work/$dport" ] && break; sleep 0.05; done
# A collector, so acknowledgements flow as in production (without one, every line would wait in
# the window and then the spool). It runs outside valgrind: only Apache is measured.
cat > "$work/spreadlogd.conf" <<CONF
Spread {
  Port = $work/$dport
  Log {
    Group = bench
    File = $work/central.log
  }
}
CONF
"$logd_bin" -D -p "$work/spreadlogd.pid" -c "$work/spreadlogd.conf" 2>"$work/spreadlogd.log" &
lpid=$!

conf() { # $1 = case, $2 = mpm
    local log=""
    case $1 in
        a) log="" ;;
        b) log="CustomLog $work/access.log common" ;;
        c) log="CustomLog \$bench common" ;;
        d) log="CustomLog \$bench common" ;;
    esac
    local sock="$work/$dport"
    [ "$1" = d ] && sock="$work/no-daemon"
    cat > "$work/httpd-$1.conf" <<CONF
ServerRoot $work
LoadModule mpm_${2}_module /usr/lib/apache2/modules/mod_mpm_${2}.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule log_spread_module $so
Listen 127.0.0.1:$port
ServerName localhost
PidFile $work/httpd.pid
ErrorLog $work/error.log
DocumentRoot $work/htdocs
Mutex file:$work
User www-data
Group www-data
KeepAlive On
MaxKeepAliveRequests 0
SpreadDaemon $sock
SpreadSpool $work/spool-$1/spool
SpreadSpoolSize 1G
SpreadRetryInterval 60000
LogFormat "%h %l %u %t \"%r\" %>s %b" common
$log
CONF
}

wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# Apache refuses to serve as root and drops to User after start; callgrind could then not write
# its output. So when root, the whole run is www-data from the start (high port, no setuid).
as_user=()
[ "$(id -u)" = 0 ] && as_user=(setpriv --reuid=www-data --regid=www-data --clear-groups)

instructions() { # $1 = case, $2 = requests
    conf "$1" prefork
    rm -f "$work/cg.out" "$work/httpd.pid"
    "${as_user[@]}" valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$work/cg.out" \
        /usr/sbin/apache2 -f "$work/httpd-$1.conf" -X >/dev/null 2>"$work/vg.log" &
    local vpid=$!
    wait_port || { echo "bench-module: apache2 under valgrind did not start:" >&2; tail -5 "$work/vg.log" "$work/error.log" >&2; exit 1; }
    ab -q -k -n "$2" -c 1 "http://127.0.0.1:$port/index.html" >/dev/null 2>&1
    sleep 0.5
    kill -TERM "$(cat "$work/httpd.pid")"; wait $vpid 2>/dev/null || true
    local total
    total=$(grep -m1 '^summary:\|^totals:' "$work/cg.out" | awk '{print $2}')
    [ -n "$total" ] || { echo "bench-module: no callgrind summary for case $1" >&2; tail -5 "$work/vg.log" >&2; exit 1; }
    cp "$work/cg.out" "$work/cg-$1-$2.out"; echo "$total"
}

declare -A per
echo "instructions per request (callgrind, apache2 -X, prefork, ab -k, N1=$N1 N2=$N2)"
for c in c; do
    i1=$(instructions $c "$N1")
    i2=$(instructions $c "$N2")
    per[$c]=$(( (i2 - i1) / (N2 - N1) ))
    printf '  (%s) %-28s %8d instr/request\n' $c "$(case $c in a) echo 'no CustomLog';; b) echo 'file CustomLog';; c) echo '$group to local daemon';; d) echo '$group, daemon down (spool)';; esac)" "${per[$c]}"
done
echo "b=${per[b]} c=${per[c]}"; echo "$work"; exit 0; awk -v a="${per[a]}" -v b="${per[b]}" -v c="${per[c]}" -v d="${per[d]}" 'BEGIN {
    printf "  c/b = %.4f   d/b = %.4f   (logging cost: file %d, spread %d, spool %d instr/request)\n", c/b, d/b, b-a, c-a, d-a }'

if false; then
    echo "throughput (wrk -t1 -c8 -d5s keep-alive, event MPM, alternating b/c three times)"
    for round in 1 2 3; do
        for c in b c; do
            conf $c event
            # /usr/bin/time reports the parent's rusage, which includes its reaped children.
            /usr/bin/time -f "%U %S" -o "$work/cpu-$c" /usr/sbin/apache2 -f "$work/httpd-$c.conf" -D FOREGROUND &
            tpid=$!
            wait_port
            out=$(wrk -t1 -c8 -d5s "http://127.0.0.1:$port/index.html" 2>&1)
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            reqs=$(echo "$out" | awk '/requests in/ {print $1}')
            kill -TERM "$(cat "$work/httpd.pid")"; wait $tpid 2>/dev/null || true
            cpu=$(awk '{print $1+$2}' "$work/cpu-$c")
            us=$(awk -v cpu="$cpu" -v n="$reqs" 'BEGIN { printf "%.1f", cpu * 1e6 / n }')
            printf '  round %d (%s): %10s req/s  %8s requests  httpd CPU %6s us/request\n' $round $c "$rps" "$reqs" "$us"
        done
    done
fi
