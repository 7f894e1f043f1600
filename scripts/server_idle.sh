#!/usr/bin/env bash
# Server idle benchmark: `opsdeck run` with a ledger and a configured export schedule, one
# dashboard-like client on /v1/events, then SECONDS of nothing. Reports RSS and the context
# switches of every thread over the window (per thread id, so threads that end do not
# subtract), and the CPU time used.
# Run: cargo build --release && scripts/server_idle.sh [BINARY] [SECONDS]
set -euo pipefail
bin=$(realpath "${1:-target/release/opsdeck}")
secs=${2:-30}
dir=$(mktemp -d)
trap 'kill "$srv" "$sub" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat > "$dir/config.toml" <<TOML
[releases]
deployer = "command"
[[releases.services]]
name = "api"
[releases.command]
deploy = ["true"]
[export]
dir = "$dir/exports"
TOML
OPSDECK_CONFIG="$dir/config.toml" OPSDECK_DATA_DIR="$dir/state" OPSDECK_SOCKET="$dir/s.sock" \
  RUST_LOG=warn "$bin" run 2>"$dir/server.log" &
srv=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.1; done
curl -sN --unix-socket "$dir/s.sock" http://opsdeck/v1/events >/dev/null &
sub=$!
sleep 3 # start-up: reconcile, first listing, the client's hello
snap() { for t in /proc/"$srv"/task/*; do
  echo "$(basename "$t") $(awk '/ctxt_switches/ {n += $2} END {print n}' "$t/status")"; done; }
snap > "$dir/a"
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$srv/stat")
sleep "$secs"
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$srv/stat")
snap > "$dir/b"
rss=$(awk '/VmRSS/ {print $2, $3}' "/proc/$srv/status")
threads=$(wc -l < "$dir/b")
switches=$(awk 'NR == FNR {a[$1] = $2; next} {n += $2 - (($1 in a) ? a[$1] : 0)} END {print n}' "$dir/a" "$dir/b")
hz=$(getconf CLK_TCK)
echo "server idle ${secs} s with one client on /v1/events: RSS ${rss}, ${threads} threads," \
  "${switches} context switches in all ($(awk -v n="$switches" -v s="$secs" 'BEGIN {printf "%.1f", n / s}')/s)," \
  "CPU $(( (u1 - u0) + (s1 - s0) )) ticks of 1/${hz} s"
