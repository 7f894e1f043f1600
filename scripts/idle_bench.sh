#!/usr/bin/env bash
# Idle benchmark: `opsdeck demo` in tmux, then one idle minute. Reports what the dashboard
# wrote to the terminal in that minute (every frame writes at least the changed cells, so
# 0 bytes means 0 frames) and the CPU time it used (from /proc/PID/stat).
# Run: cargo build --release && scripts/idle_bench.sh [BINARY] [SECONDS]
set -euo pipefail
bin=${1:-target/release/opsdeck}
secs=${2:-60}
sock="opsdeck-idle-$$"
out=$(mktemp)
trap 'tmux -L "$sock" kill-server 2>/dev/null || true; rm -f "$out"' EXIT

tmux -L "$sock" new-session -d -s t -x 120 -y 35 "exec $bin demo"
sleep 8 # start-up: first frames, run history, health probe
pid=$(tmux -L "$sock" display-message -p -t t '#{pane_pid}')
tmux -L "$sock" pipe-pane -t t -o "cat >> $out"
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
start_min=$(date -u +%H:%M)
sleep "$secs"
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
end_min=$(date -u +%H:%M)
tmux -L "$sock" pipe-pane -t t
bytes=$(stat -c %s "$out")
hz=$(getconf CLK_TCK)
ticks=$(( (u1 - u0) + (s1 - s0) ))
pct=$(awk -v t="$ticks" -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.3f", t / hz / s * 100 }')
minutes_crossed=$([ "$start_min" = "$end_min" ] && echo 0 || echo 1)
echo "idle ${secs} s: ${bytes} bytes written to the terminal (clock minute changes in the window: ${minutes_crossed}); CPU ${ticks} ticks of 1/${hz} s = ${pct}%"
tmux -L "$sock" send-keys -t t q
sleep 1
