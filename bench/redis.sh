#!/usr/bin/env bash
# Redis benchmark on one machine (regions on local disk):
#   capture:  redis-benchmark ops/s (SET, INCR, LPUSH; 50 clients) without
#             drd, with drd streaming into two regions, and with a plain
#             redis-server replica instead, interleaved over ROUNDS rounds
#             (medians): what drd costs the primary
#   exposure: drkit_log_shipping_lag_seconds sampled at 10 Hz during one more
#             such run, the larger of the two regions' per sample (how old
#             the oldest write drd received that a region lacks is):
#             p50/p99, and the MB/s of stream drd kept up with (checked
#             with drctl status)
#   base:     drctl backup of a KEYS x VALUE dataset (default 10M x 100 B,
#             about 1 GiB in memory) vs redis-cli --rdb to local disk,
#             interleaved over ROUNDS rounds (medians); drctl's peak RSS
#             while the RDB streamed through it
#   resync:   drd's own full resync of that dataset into two empty regions:
#             its time and drd's peak RSS (VmHWM)
#   restore:  drctl restore --target-dsn of base + the benchmark's stream into a
#             fresh redis-server: commands/s, beside redis-benchmark's SET rate
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-10000000}
VALUE=${VALUE:-100}
OPS=${OPS:-1000000}
ROUNDS=${ROUNDS:-3}
BIN=$PWD/bin
work=$(mktemp -d /tmp/drkit-bench-rd-XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}" $(cat "$work"/*/pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true; rm -rf "$work"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# start_redis NAME: a throwaway redis-server without persistence; prints its port.
start_redis() {
  local dir=$work/$1 port; port=$(freeport); mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --enable-debug-command local \
    --repl-diskless-sync-delay 0 --repl-backlog-size 256mb --client-output-buffer-limit "replica 0 0 0" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid" # this runs in $(...): the cleanup reads the pid files
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "$port"
}
bench_ops() { # ops/s summed over the three tests
  redis-benchmark -p "$1" -c 50 -n "$OPS" -t set,incr,lpush -q 2>/dev/null | tr '\r' '\n' | rps | awk '{s+=$1} END {printf "%.0f", s/3}'
}
# rps: the requests per second of each line "SET: 95057.03 requests per second, ..."
rps() { awk '/requests per second/ {for (i = 1; i < NF; i++) if ($(i+1) == "requests") print $i}'; }

src=$(start_redis src)
echo "filling $KEYS keys of $VALUE bytes ..."
redis-cli -p "$src" DEBUG POPULATE "$KEYS" key "$VALUE" >/dev/null
mem=$(redis-cli -p "$src" INFO memory | awk -F: '/^used_memory:/ {printf "%.0f", $2/1048576}')
echo "dataset: $mem MiB in memory"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# base: redis-cli --rdb vs drctl backup, interleaved over ROUNDS rounds
# (medians; the last backup is the base the stream below rolls forward)
cat >"$work/drkit.yaml" <<YAML
drd:
  listen: 127.0.0.1:$(freeport)
regions:
  - {name: a, store: 'file://$work/a'}
  - {name: b, store: 'file://$work/b'}
clusters:
  - {name: cache, engine: redis, region: a, dsn: 'redis://127.0.0.1:$src', flush_interval: 1s}
YAML
: >"$work/rdb.s"; : >"$work/backup.s"; : >"$work/backup.rss"
for round in $(seq "$ROUNDS"); do
  t0=$(now); redis-cli -p "$src" --rdb "$work/dump.rdb" >/dev/null 2>&1; t1=$(now)
  echo "$t1 - $t0" | bc >>"$work/rdb.s"
  /usr/bin/time -f "%e %M" -o "$work/backup.time" "$BIN/drctl" backup --config "$work/drkit.yaml" --cluster cache >/dev/null
  read -r s_ kb_ <"$work/backup.time"; echo "$s_" >>"$work/backup.s"; echo $((kb_ / 1024)) >>"$work/backup.rss"
  echo "base round $round: redis-cli --rdb $(tail -1 "$work/rdb.s") s, drctl backup $s_ s"
done
rdb_s=$(median <"$work/rdb.s"); backup_s=$(median <"$work/backup.s"); rss=$(sort -n "$work/backup.rss" | tail -1)
rdb_mb=$(($(stat -c %s "$work/dump.rdb") / 1048576))

# drd's own full resync: the same RDB streamed through drd into two empty
# regions; its peak RSS (VmHWM) once the base is stored
sed "s|$work/a'|$work/c'|; s|$work/b'|$work/d'|" "$work/drkit.yaml" >"$work/fresh.yaml"
t0=$(now)
"$BIN/drd" --config "$work/fresh.yaml" >"$work/drd-fresh.log" 2>&1 &
fresh=$!; pids+=($fresh)
until grep -q "stored a base backup" "$work/drd-fresh.log"; do
  kill -0 "$fresh" 2>/dev/null || { echo "drd stopped:"; cat "$work/drd-fresh.log"; exit 1; }
  sleep 0.2
done
t1=$(now); resync_s=$(echo "$t1 - $t0" | bc)
drd_rss=$(awk '/^VmHWM/ {printf "%d", $2/1024}' "/proc/$fresh/status")
kill "$fresh"; wait "$fresh" 2>/dev/null || true

# capture: the benchmark without drd, with drd attached, and with a plain
# redis-server replica attached instead (what any replica costs the primary
# here), interleaved over ROUNDS rounds; medians. This machine's throughput
# drifts by 20 % between runs: one run of each says little.
start_drd() {
  "$BIN/drd" --config "$work/drkit.yaml" >"$work/drd.log" 2>&1 &
  drd=$!; pids+=($drd)
  until grep -q "continuing the stored stream\|stored a base backup" "$work/drd.log"; do sleep 0.2; done
}
stop_drd() { kill "$drd"; wait "$drd" 2>/dev/null || true; : >"$work/drd.log"; }
rep_dir=$work/rep; mkdir -p "$rep_dir"; rep=$(freeport)
redis-server --port "$rep" --bind 127.0.0.1 --save "" --appendonly no --dir "$rep_dir" >"$rep_dir/log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rep" ping >/dev/null 2>&1 && break; sleep 0.1; done
: >"$work/plain"; : >"$work/with"; : >"$work/replica"
for round in $(seq "$ROUNDS"); do
  bench_ops "$src" >>"$work/plain"; echo >>"$work/plain"
  start_drd
  bench_ops "$src" >>"$work/with"; echo >>"$work/with"
  stop_drd
  redis-cli -p "$rep" REPLICAOF 127.0.0.1 "$src" >/dev/null
  until redis-cli -p "$rep" INFO replication | grep -q 'master_link_status:up'; do sleep 0.2; done
  bench_ops "$src" >>"$work/replica"; echo >>"$work/replica"
  redis-cli -p "$rep" REPLICAOF NO ONE >/dev/null
  echo "capture round $round: plain $(tail -1 "$work/plain"), drd $(tail -1 "$work/with"), replica $(tail -1 "$work/replica") ops/s"
done
plain=$(median <"$work/plain"); with=$(median <"$work/with"); with_replica=$(median <"$work/replica")

# exposure: drkit_log_shipping_lag_seconds sampled at 10 Hz under the same
# load (a separate run: the sampling's processes cost CPU too)
start_drd
listen=$(awk '/listen:/ {print $2; exit}' "$work/drkit.yaml")
off0=$(redis-cli -p "$src" INFO replication | awk -F: '/^master_repl_offset/ {print $2+0}')
# one sample per scrape: the larger of the two regions' lags (a write is
# exposed until every region holds it)
( while kill -0 "$drd" 2>/dev/null; do curl -s "http://$listen/metrics" | awk '/^drkit_log_shipping_lag_seconds/ {if ($2 > m) m = $2; n++} END {if (n) print m + 0}'; sleep 0.1; done ) >"$work/lag" &
pids+=($!)
t0=$(now); bench_ops "$src" >/dev/null; t1=$(now)
off1=$(redis-cli -p "$src" INFO replication | awk -F: '/^master_repl_offset/ {print $2+0}')
stream_mb=$(echo "($off1 - $off0) / 1048576 / ($t1 - $t0)" | bc -l)
sleep 3
# kept up: both regions hold the stream to where the primary stood after the load
held=$("$BIN/drctl" status --config "$work/drkit.yaml" --cluster cache --json | python3 -c 'import json,sys; print(min(r["durable_offset"] for r in json.load(sys.stdin)))')
kept="kept up (both regions hold offset $held >= $off1)"; [ "$held" -ge "$off1" ] || kept="DID NOT keep up (a region holds offset $held < $off1)"
p50=$(sort -n "$work/lag" | awk '{a[NR]=$1} END {print a[int(NR*0.5)+1]}')
p99=$(sort -n "$work/lag" | awk '{a[NR]=$1} END {print a[int(NR*0.99)+1]}')
drd_cpu=$(ps -o time= -p "$drd")
stop_drd

# restore: base + the stream, into a fresh server
dst=$(start_redis dst)
t0=$(now); out=$("$BIN/drctl" restore --config "$work/drkit.yaml" --cluster cache --to-region b --target-dsn "redis://127.0.0.1:$dst"); t1=$(now)
cmds=$(echo "$out" | sed -n 's/.*replayed \([0-9]*\) command.*/\1/p')
restore_s=$(echo "$t1 - $t0" | bc)
set_rate=$(redis-benchmark -p "$dst" -c 50 -n "$OPS" -t set -q 2>/dev/null | tr '\r' '\n' | rps | head -1)

printf 'base backup of %s MiB (RDB %s MiB), medians of %s rounds: drctl backup %.2f s (2 regions, zstd) vs redis-cli --rdb %.2f s: %.2fx its time (target <= 1.2); peak RSS while the RDB streamed through %s MiB (target <= 128)\n' \
  "$mem" "$rdb_mb" "$ROUNDS" "$backup_s" "$rdb_s" "$(echo "$backup_s / $rdb_s" | bc -l)" "$rss"
printf 'drd full resync of the same dataset into two empty regions: %.2f s, drd peak RSS %s MiB (target <= 128)\n' "$resync_s" "$drd_rss"
printf 'capture (medians of %s rounds): %s ops/s without drd, %s with it: drd costs %.1f%% (target <= 10); a redis-server replica instead: %s ops/s, %.1f%%\n' \
  "$ROUNDS" "$plain" "$with" "$(echo "(1 - $with / $plain) * 100" | bc -l)" "$with_replica" "$(echo "(1 - $with_replica / $plain) * 100" | bc -l)"
printf 'stream %.1f MB/s, %s 3 s after the load; drd CPU time over that run %s\n' "$stream_mb" "$kept" "$drd_cpu"
printf 'exposure under load: p50 %s s, p99 %s s (target p99 <= 1.5)\n' "$p50" "$p99"
printf 'restore: %s commands replayed, plus the base loaded, in %.2f s: %.0f commands/s counting the base load too, vs redis-benchmark SET %s/s on the target\n' \
  "$cmds" "$restore_s" "$(echo "$cmds / $restore_s" | bc -l)" "$set_rate"
