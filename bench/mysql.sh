#!/usr/bin/env bash
# MariaDB benchmark on one machine and one sysbench-like database
# (TABLES x ROWS, default 8 x 500000 = ~1 GB), regions on local disk:
#   snapshot: drctl backup vs mariadb-dump --single-transaction (vs mydumper if
#             installed), ROUNDS (3) alternating rounds, medians
#   shipping: binlog catch-up throughput of drd vs mariadb-binlog
#             --read-from-remote-server --raw over the same binlog (TXNS updates),
#             ROUNDS rounds, medians
#   restore:  drctl restore (snapshot + replay of TXNS transactions) vs
#             mariadb < dump + mariadb-binlog | mariadb over the same range
#   exposure: drkit_log_shipping_lag_seconds sampled at 10 Hz while a writer runs:
#             the age of the oldest binlog drd received that the region lacks (p50/p99)
set -euo pipefail
cd "$(dirname "$0")/.."
TABLES=${TABLES:-8}
ROWS=${ROWS:-500000}
TXNS=${TXNS:-100000}
ROUNDS=${ROUNDS:-3}
BIN=$PWD/bin
work=$(mktemp -d /tmp/drkit-bench-my-XXXX); chmod 755 "$work"
pids=()
# Servers are started inside $(start_maria ...), a subshell whose pids+=() is
# lost: they are found by their pid files. (Runs before this leaked them.)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work"/*/pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  for f in "$work"/*/pid; do for _ in $(seq 100); do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && sleep 0.1 || break; done; done
  wait 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# settle waits (at most a minute) until the source server is quiet: under 2
# CPU ticks in half a second. After a write burst InnoDB purges and flushes
# for seconds; whichever tool ran first would share the cores with that.
settle() { local a b; for _ in $(seq 120); do a=$(srvticks); sleep 0.5; b=$(srvticks); [ $((b - a)) -lt 2 ] && return; done; }
secs() { # wall seconds of CMD (stdout discarded), after flushing dirty pages
  # on a quiet server; the CPU seconds of CMD and of the source server go to $work/cpu
  sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true; settle
  local s0; s0=$(srvticks)
  /usr/bin/time -f "%e %U %S" -o "$work/time.out" "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  read -r e u sy <"$work/time.out"
  echo "$(echo "$u + $sy" | bc) $(echo "scale=2; ($(srvticks) - $s0) / $(getconf CLK_TCK)" | bc)" >"$work/cpu"
  echo "$e"
}
srvticks() { [ -f "$work/src/pid" ] && awk '{print $14+$15}' "/proc/$(cat "$work/src/pid")/stat" || echo 0; }
ratio() { echo "scale=2; $1 / $2" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# start_maria NAME SERVER_ID: a throwaway mariadbd (binlog ROW, GTID strict);
# prints its port.
start_maria() {
  local dir=$work/$1 port; port=$(freeport)
  mkdir -p "$dir"; chown mysql "$dir" 2>/dev/null || true
  mariadb-install-db --no-defaults --user=mysql --datadir="$dir/data" --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
  mariadbd --no-defaults --user=mysql --datadir="$dir/data" --socket="$dir/sock" --pid-file="$dir/pid" --port="$port" \
    --bind-address=127.0.0.1 --skip-name-resolve --server-id="$2" --log-bin=mysql-bin --binlog-format=ROW --gtid-strict-mode=ON \
    --innodb-buffer-pool-size=512M --innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
    --max-allowed-packet=256M >"$dir/mariadbd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do mariadb -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
  echo "$port"
}
sqlq() { mariadb -h127.0.0.1 -P"$1" -uroot -N -B -e "$2"; }

src=$(start_maria src 1)
echo "bench: loading $TABLES tables x $ROWS rows"
sqlq "$src" "CREATE DATABASE sbtest; CREATE DATABASE seq"
for i in $(seq "$TABLES"); do
  sqlq "$src" "CREATE TABLE sbtest.sbtest$i (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_$i (k)) ENGINE=InnoDB;
    INSERT INTO sbtest.sbtest$i (k, c, pad) SELECT FLOOR(RAND()*$ROWS), CONCAT_WS('-', MD5(seq), MD5(seq+1), MD5(seq+2)), CONCAT(MD5(seq), '-pad') FROM seq.seq_1_to_$ROWS;
    ANALYZE TABLE sbtest.sbtest$i" >/dev/null
done
sqlq "$src" "DROP DATABASE seq"
size=$(sqlq "$src" "SELECT ROUND(SUM(DATA_LENGTH+INDEX_LENGTH)/1048576) FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest'")
echo "bench: database is $size MiB"
printf 'DELIMITER //\nCREATE PROCEDURE sbtest.work(n INT) BEGIN DECLARE i INT DEFAULT 0; WHILE i < n DO UPDATE sbtest.sbtest1 SET k = k + 1 WHERE id = 1 + (i * 7919) %% %s; SET i = i + 1; END WHILE; END//\n' "$ROWS" |
  mariadb -h127.0.0.1 -P"$src" -uroot

mport=$(freeport)
cat >"$work/drkit.yaml" <<CONF
drd:
  listen: 127.0.0.1:$mport
  state_dir: $work/state
regions:
  - name: local
    store: file://$work/region
clusters:
  - name: bench
    engine: mysql
    region: local
    dsn: root@tcp(127.0.0.1:$src)/
    flush_interval: 1s
CONF
start_drd() { "$BIN/drd" --config "$work/drkit.yaml" >>"$work/drd.log" 2>&1 & drd_pid=$!; pids+=($drd_pid)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null && break; sleep 0.1; done; }
durable() { "$BIN/drctl" status --config "$work/drkit.yaml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0].get("gtid_pos",""))'; }
wait_durable() { local want; want=$(sqlq "$src" "SELECT @@gtid_binlog_pos")
  for _ in $(seq 12000); do [ "$(durable)" = "$want" ] && return; sleep 0.05; done
  echo "bench: the region never reached $want; drd's log:" >&2; tail -20 "$work/drd.log" >&2; exit 1; }
# wait_shipped is wait_durable for a timed catch-up: it polls drd's shipped
# timestamp (a curl) until it has not moved for 0.3 s, and only then asks
# drctl. drctl and python3 every 50 ms cost about 30 ms of CPU each time,
# taken from the two cores drd was being timed on.
shipped_ts() { curl -s "http://127.0.0.1:$mport/metrics" | awk '/^drkit_log_shipped_timestamp_seconds/ {print $2}'; }
wait_shipped() { local want last="" same=0 cur; want=$(sqlq "$src" "SELECT @@gtid_binlog_pos")
  for _ in $(seq 12000); do
    cur=$(shipped_ts); if [ -n "$cur" ] && [ "$cur" = "$last" ]; then same=$((same + 1)); else same=0; fi; last=$cur
    [ "$same" -ge 6 ] && [ "$(durable)" = "$want" ] && return; sleep 0.05
  done
  echo "bench: the region never reached $want; drd's log:" >&2; tail -20 "$work/drd.log" >&2; exit 1; }

# The region starts one transaction before the snapshots, so it holds the
# binlog both restores replay.
start_drd
sqlq "$src" "UPDATE sbtest.sbtest1 SET k = k + 1 WHERE id = 1"
wait_durable

echo "bench: snapshot, $ROUNDS alternating rounds"
# Each tool's wall time and CPU seconds (its own, the server's) per round, in
# $work/snap.TOOL; the report takes the medians.
snap() { local tool=$1; shift; local t; t=$(secs "$@"); echo "$t $(cat "$work/cpu")" >>"$work/snap.$tool"; }
for r in $(seq "$ROUNDS"); do
  snap drkit "$BIN/drctl" backup --config "$work/drkit.yaml"
  snap dump bash -c "mariadb-dump -h127.0.0.1 -P$src -uroot --single-transaction --master-data=2 --routines --triggers --databases sbtest >$work/dump.sql"
  if command -v mydumper >/dev/null; then
    rm -rf "$work/mydumper"
    snap mydumper mydumper -h 127.0.0.1 -P "$src" -u root -B sbtest -t 4 -o "$work/mydumper"
  fi
done
col() { awk -v c="$2" '{print $c}' "$work/snap.$1" | median; } # col TOOL FIELD: the median
kill "$drd_pid"; wait "$drd_pid" 2>/dev/null || true

# ship_round: TXNS updates while drd is stopped, then drd's catch-up and
# mariadb-binlog --raw over the same binlog files, each from a quiet server.
# drd is timed from its start to its own record of the last write
# (drkit_log_shipped_timestamp_seconds); wait_shipped notices the end with a
# curl per 50 ms while drd works. Times go to $work/ship.drkit and
# $work/ship.mbinlog; drd runs on afterwards.
ship_round() {
  kill "$drd_pid" 2>/dev/null || true; wait "$drd_pid" 2>/dev/null || true
  sqlq "$src" "FLUSH BINARY LOGS"; local log t0 shipped; log=$(sqlq "$src" "SHOW MASTER STATUS" | cut -f1)
  sqlq "$src" "CALL sbtest.work($TXNS)"
  sqlq "$src" "FLUSH BINARY LOGS"
  binlog_bytes=$(sqlq "$src" "SHOW BINARY LOGS" | awk -v f="$log" '$1>=f {s+=$2} END {print s}')
  sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true; settle
  t0=$(date +%s.%N); start_drd; wait_shipped
  shipped=$(shipped_ts)
  python3 -c "print(round($shipped - $t0, 3))" >>"$work/ship.drkit"
  rm -rf "$work/rawbinlog"; mkdir -p "$work/rawbinlog"
  secs mariadb-binlog --read-from-remote-server -h127.0.0.1 -P"$src" -uroot --raw --result-file="$work/rawbinlog/" --to-last-log "$log" >>"$work/ship.mbinlog"
}

echo "bench: shipping catch-up, round 1 of $ROUNDS ($TXNS transactions while drd is stopped)"
ship_round

echo "bench: restore"
tgt1=$(start_maria tgt1 11); tgt2=$(start_maria tgt2 12)
t_drkit_restore=$(secs "$BIN/drctl" restore --config "$work/drkit.yaml" --target-dsn "root@tcp(127.0.0.1:$tgt1)/")
pos=$(grep -m1 -o "MASTER_LOG_POS=[0-9]*" "$work/dump.sql" | cut -d= -f2)
file=$(grep -m1 -o "MASTER_LOG_FILE='[^']*'" "$work/dump.sql" | cut -d"'" -f2)
logs=$(sqlq "$src" "SHOW BINARY LOGS" | awk -v f="$file" '$1>=f {print $1}' | tr '\n' ' ')
# The dump loads unlogged (as drkit loads): logged, its statements would take
# GTID sequence numbers the replay then repeats, and gtid_strict_mode rejects
# them (the WAL-G MariaDB failure).
t_anchor_restore=$(secs bash -c "mariadb -h127.0.0.1 -P$tgt2 -uroot --init-command=\"SET sql_log_bin=0\" <$work/dump.sql && cd $work/src/data && mariadb-binlog --start-position=$pos $logs | mariadb -h127.0.0.1 -P$tgt2 -uroot")
a=$(sqlq "$tgt1" "CHECKSUM TABLE sbtest.sbtest1" | cut -f2); b=$(sqlq "$tgt2" "CHECKSUM TABLE sbtest.sbtest1" | cut -f2); s=$(sqlq "$src" "CHECKSUM TABLE sbtest.sbtest1" | cut -f2)
[ "$a" = "$s" ] && [ "$b" = "$s" ] || { echo "bench: restored tables differ from the source ($a / $b / $s)" >&2; exit 1; }

echo "bench: exposure under load"
sqlq "$src" "CALL sbtest.work($TXNS)" & writer=$!
: >"$work/lag"
while kill -0 "$writer" 2>/dev/null; do
  curl -s "http://127.0.0.1:$mport/metrics" | awk '/^drkit_log_shipping_lag_seconds/ {print $2}' >>"$work/lag"; sleep 0.1
done
p() { sort -n "$work/lag" | awk -v q="$1" '{a[NR]=$1} END {i=int(NR*q); if (i<1) i=1; print a[i]}'; }

for r in $(seq 2 "$ROUNDS"); do
  echo "bench: shipping catch-up, round $r of $ROUNDS"
  ship_round
done
t_drkit_ship=$(median <"$work/ship.drkit"); t_mbinlog=$(median <"$work/ship.mbinlog")

mib=$(echo "scale=1; $binlog_bytes / 1048576" | bc)
echo
echo "== MariaDB benchmark: $TABLES x $ROWS rows ($size MiB), $TXNS transactions ($mib MiB of binlog), $(nproc) cores"
printf "snapshot   drkit %6.2f s   mariadb-dump %6.2f s   ratio %sx faster   (medians of %s rounds; drkit runs: %s)\n" \
  "$(col drkit 1)" "$(col dump 1)" "$(ratio "$(col dump 1)" "$(col drkit 1)")" "$ROUNDS" "$(awk '{print $1}' "$work/snap.drkit" | paste -sd' ')"
printf "           mariadb-dump runs: %s\n" "$(awk '{print $1}' "$work/snap.dump" | paste -sd' ')"
printf "           CPU s: drctl %s + server %s   mariadb-dump %s + server %s\n" "$(col drkit 2)" "$(col drkit 3)" "$(col dump 2)" "$(col dump 3)"
if [ -f "$work/snap.mydumper" ]; then
  printf "           mydumper -t 4 (uncompressed) %6.2f s   ratio %sx faster   CPU s: %s + server %s\n" \
    "$(col mydumper 1)" "$(ratio "$(col mydumper 1)" "$(col drkit 1)")" "$(col mydumper 2)" "$(col mydumper 3)"
fi
printf "shipping   drkit %6.3f s (%s MiB/s)   mariadb-binlog --raw %6.3f s (%s MiB/s)   ratio %sx   (medians of %s rounds)\n" \
  "$t_drkit_ship" "$(echo "scale=1; $mib / $t_drkit_ship" | bc)" "$t_mbinlog" "$(echo "scale=1; $mib / $t_mbinlog" | bc)" "$(ratio "$t_mbinlog" "$t_drkit_ship")" "$ROUNDS"
printf "           drkit runs: %s   mariadb-binlog runs: %s\n" "$(paste -sd' ' "$work/ship.drkit")" "$(paste -sd' ' "$work/ship.mbinlog")"
printf "restore    drkit %6.1f s   mariadb + mariadb-binlog|mariadb %6.1f s   ratio %sx faster\n" "$t_drkit_restore" "$t_anchor_restore" "$(ratio "$t_anchor_restore" "$t_drkit_restore")"
printf "exposure   p50 %s s   p99 %s s   max %s s   (%d samples)\n" "$(p 0.5)" "$(p 0.99)" "$(p 1.0)" "$(wc -l <"$work/lag")"
