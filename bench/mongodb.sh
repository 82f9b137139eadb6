#!/usr/bin/env bash
# MongoDB benchmark on FerretDB 1.24 with SQLite (no mongod can be installed
# here; mongodump/mongorestore, the anchor, are not in Debian either), regions
# on local disk:
#   backup:   drctl backup of DOCS documents of SIZE bytes (default 200000 x
#             1000 B) into two regions: MB/s and documents/s
#   exposure: drkit_log_shipping_lag_seconds sampled at 10 Hz, the larger of
#             the two regions' per sample, while mongoload inserts, replaces and
#             deletes from 4 clients for LOAD seconds: p50/p99 (target p99 <= 2 s)
#   restore:  drctl restore --target-dsn of that base plus the load's oplog
#             into a fresh server: MB/s and documents/s
# What the anchor would need: mongodump --oplog / mongorestore --oplogReplay
# against a replica set member, on the same data.
# On FerretDB (SQLite) this measures FerretDB more than drkit: every oplog
# read scans the whole oplog, and a document is found by its _id through the
# primary key only when the _id is an ObjectID or a string (mongoload's are).
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${DOCS:-200000}
SIZE=${SIZE:-1000}
LOAD=${LOAD:-30}
BIN=$PWD/bin
work=$(mktemp -d /tmp/drkit-bench-mg-XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
go build -o "$work/mongoload" ./bench/mongoload
# start_ferret NAME: a throwaway FerretDB; sets $port.
start_ferret() {
  port=$(freeport)
  "$BIN/ferretdb-test" "127.0.0.1:$port" "$work/$1" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
}
start_ferret src; src=$port
echo "filling $DOCS documents of $SIZE bytes ..."
"$work/mongoload" fill "mongodb://127.0.0.1:$src/" "$DOCS" "$SIZE"
# The oplog begins after the fill, as a real server's has rolled past old
# history: FerretDB never trims its capped oplog and reads it whole (in
# memory, when sorted) for every read, so the fill's entries would measure
# that and not drkit.
"$work/mongoload" oplog "mongodb://127.0.0.1:$src/"
listen=127.0.0.1:$(freeport)
cat >"$work/drkit.yaml" <<YAML
drd:
  listen: $listen
regions:
  - {name: a, store: 'file://$work/a'}
  - {name: b, store: 'file://$work/b'}
clusters:
  - {name: docs, engine: mongodb, region: a, dsn: 'mongodb://127.0.0.1:$src/', flush_interval: 1s}
YAML
"$BIN/drd" --config "$work/drkit.yaml" >"$work/drd.log" 2>&1 &
drd=$!; pids+=($drd)
until [ "$(grep -c 'region holds no oplog yet' "$work/drd.log")" -ge 2 ]; do sleep 0.2; done

t0=$(now); "$BIN/drctl" backup --config "$work/drkit.yaml" --cluster docs >/dev/null; t1=$(now)
backup_s=$(echo "$t1 - $t0" | bc)
bytes=$("$BIN/drctl" backups --config "$work/drkit.yaml" --cluster docs --region a --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["bytes"])')

( while kill -0 "$drd" 2>/dev/null; do curl -s "http://$listen/metrics" | awk '/^drkit_log_shipping_lag_seconds/ {if ($2 > m) m = $2; n++} END {if (n) print m + 0}'; sleep 0.1; done ) >"$work/lag" &
pids+=($!)
ops=$("$work/mongoload" load "mongodb://127.0.0.1:$src/" "$LOAD")
sleep 3
p50=$(sort -n "$work/lag" | awk '{a[NR]=$1} END {print a[int(NR*0.5)+1]}')
p99=$(sort -n "$work/lag" | awk '{a[NR]=$1} END {print a[int(NR*0.99)+1]}')
kill "$drd"; wait "$drd" 2>/dev/null || true

start_ferret dst; dst=$port
t0=$(now); out=$("$BIN/drctl" restore --config "$work/drkit.yaml" --cluster docs --to-region b --target-dsn "mongodb://127.0.0.1:$dst/"); t1=$(now)
restore_s=$(echo "$t1 - $t0" | bc)
echo "$out"
entries=$(echo "$out" | sed -n 's/.* \([0-9]*\) oplog entr.*/\1/p')

mb=$(echo "$bytes / 1048576" | bc -l)
printf 'backup of %d documents (%.0f MiB of BSON) into two regions: %.2f s, %.1f MB/s, %.0f documents/s\n' "$DOCS" "$mb" "$backup_s" "$(echo "$mb / $backup_s" | bc -l)" "$(echo "$DOCS / $backup_s" | bc -l)"
printf 'exposure under %s ops/s of inserts, replaces and deletes (4 clients, %s s): p50 %s s, p99 %s s (target p99 <= 2)\n' "$ops" "$LOAD" "$p50" "$p99"
printf 'restore of the base plus %s oplog entries: %.2f s, %.1f MB/s, %.0f documents/s\n' "$entries" "$restore_s" "$(echo "$mb / $restore_s" | bc -l)" "$(echo "$DOCS / $restore_s" | bc -l)"
echo "anchor: mongodump --oplog / mongorestore --oplogReplay need a MongoDB replica set and mongo-tools, neither installable here"
