#!/usr/bin/env bash
# PostgreSQL benchmark, one run on one machine and one pgbench database
# (SCALE, default 60 = ~0.9 GB), targets on local disk, then on a loopback MinIO
# (HTTPS with a throwaway certificate: pgBackRest speaks only TLS to S3):
#   base backup: drkit vs pgBackRest (zst, process-max 2) vs pg_basebackup
#   restore (files ready, server not started): drkit vs pgBackRest
#   exposure: seconds from a commit to its WAL being durable in every region,
#             p50/p99 while pgbench runs (bench/pgexposure)
#   WAL replay: a base backup plus WAL_MB (default 2048) of pgbench WAL written
#             after it, restored and replayed to the end: drkit (wal-fetch with
#             prefetch) vs pgBackRest (archive-get, archive-async, process-max 2)
# PARTS (default "base exposure replay") chooses the sections.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-60}
BIN=$PWD/bin
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/drkit-bench-pg-XXXX); chmod 755 "$work"
drd_pid=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PG=(); [ "$(id -u)" = 0 ] && PG=(runuser -u postgres --)  # the same, for commands run under /usr/bin/time
stop_pg() { [ -f "$1/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true; }
minio_pid=""
cleanup() {
  [ -n "$drd_pid" ] && kill "$drd_pid" 2>/dev/null; [ -n "$minio_pid" ] && kill "$minio_pid" 2>/dev/null
  stop_pg "$work/primary/data"; wait 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# secs CMD...: wall seconds of CMD, after flushing dirty pages so that no run pays
# for the previous one's writeback (without it, whichever ran second was throttled).
# It prints the wall seconds and appends "user sys" CPU seconds to $work/cpu.$CPU.
secs() {
  sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %U %S" -o "$work/time.out" "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  read -r wall user sys <"$work/time.out"
  echo "$user $sys" >>"$work/cpu.${CPU:-x}"
  echo "$wall"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ROUNDS=${ROUNDS:-3}
PARTS=${PARTS:-base exposure replay}
WAL_MB=${WAL_MB:-2048}
part() { [[ " $PARTS " == *" $1 "* ]]; }
owned() { mkdir -p "$@"; [ "$(id -u)" = 0 ] && chown postgres "$@"; true; }

owned "$work/primary" "$work/pgbr" "$work/pgbr-log" "$work/pgbr-spool" "$work/pgbr-lock" "$work/pgbr-restore" "$work/pgbb" "$work/drkit-restore"
port=$(freeport)

# MinIO over HTTPS, its certificate trusted by drkit through AWS_CA_BUNDLE.
mport=$(freeport)
mkdir -p "$work/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/certs/private.key" -out "$work/certs/public.crt" 2>/dev/null
chmod 644 "$work/certs/public.crt"
export MINIO_ROOT_USER=drkit-bench MINIO_ROOT_PASSWORD=drkit-bench-secret MINIO_BROWSER=off MINIO_UPDATE=off
"$BIN/minio" server "$work/minio" --quiet --certs-dir "$work/certs" --address "127.0.0.1:$mport" --console-address "127.0.0.1:$(freeport)" >"$work/minio.log" 2>&1 &
minio_pid=$!
for _ in $(seq 100); do curl -skf "https://127.0.0.1:$mport/minio/health/ready" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=$MINIO_ROOT_USER AWS_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD AWS_EC2_METADATA_DISABLED=true AWS_CA_BUNDLE=$work/certs/public.crt
env -u AWS_CA_BUNDLE RCLONE_CONFIG_M_TYPE=s3 RCLONE_CONFIG_M_PROVIDER=Minio RCLONE_CONFIG_M_ENDPOINT="https://127.0.0.1:$mport" \
  RCLONE_CONFIG_M_ACCESS_KEY_ID=$MINIO_ROOT_USER RCLONE_CONFIG_M_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD \
  rclone --no-check-certificate mkdir m:bench 2>/dev/null

cat >"$work/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbr
compress-type=zst
process-max=2
start-fast=y
log-level-console=warn
log-path=$work/pgbr-log
spool-path=$work/pgbr-spool
lock-path=$work/pgbr-lock
[global:archive-get]
archive-async=y
process-max=2
archive-get-queue-max=1GiB
[bench]
pg1-path=$work/primary/data
pg1-port=$port
pg1-socket-path=$work/primary
repo2-type=s3
repo2-path=/pgbackrest
repo2-s3-bucket=bench
repo2-s3-endpoint=127.0.0.1
repo2-storage-port=$mport
repo2-s3-uri-style=path
repo2-s3-region=us-east-1
repo2-s3-key=$MINIO_ROOT_USER
repo2-s3-key-secret=$MINIO_ROOT_PASSWORD
repo2-storage-verify-tls=n
CONF
chmod 644 "$work/pgbackrest.conf"
as_pg "$PGBIN/initdb" -D "$work/primary/data" -U postgres -A trust --no-instructions >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$work/primary/data" -l "$work/primary/log" -w start -o "-c port=$port -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories=$work/primary -c wal_level=replica -c max_wal_size=2GB -c archive_mode=on \
  -c archive_command='pgbackrest --config=$work/pgbackrest.conf --stanza=bench archive-push %p'" >/dev/null
dsn="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
cat >"$work/drkit.yaml" <<YAML
drd:
  state_dir: $work/state
regions:
  - name: local
    store: file://$work/drkit-repo?mode=0644
clusters:
  - name: bench
    engine: postgres
    region: local
    dsn: $dsn
YAML
sed -e "s|name: local|name: minio|" -e "s|file://$work/drkit-repo?mode=0644|s3://bench/drkit?endpoint=https://127.0.0.1:$mport\&region=us-east-1|" \
  -e "s|region: local|region: minio|" "$work/drkit.yaml" >"$work/drkit-minio.yaml"
echo "pgbench -i -s $SCALE ..."
"$PGBIN/pgbench" -i -s "$SCALE" -q "$dsn" >/dev/null 2>&1
size=$(psql -X -A -t "$dsn" -c "SELECT pg_size_pretty(pg_database_size('postgres'))")
as_pg pgbackrest --config="$work/pgbackrest.conf" --stanza=bench stanza-create >/dev/null

echo "drkit $(git rev-parse --short HEAD 2>/dev/null) vs $(pgbackrest version) vs pg_basebackup $("$PGBIN/pg_basebackup" --version | awk '{print $3}'); database $size; $(nproc) cores; local disk"
base_part() {
# Alternate the tools, ROUNDS times each, and keep the medians.
for r in $(seq "$ROUNDS"); do
  CPU=t_pgbb secs "${PG[@]}" "$PGBIN/pg_basebackup" -d "$dsn" -D "$work/pgbb/tar" -Ft -X fetch -c fast >>"$work/t_pgbb"
  rm -rf "$work/pgbb/tar"
  CPU=t_pgbr secs "${PG[@]}" pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --repo=1 --type=full backup >>"$work/t_pgbr"
  CPU=t_drkit secs "$BIN/drctl" backup --config "$work/drkit.yaml" --cluster bench >>"$work/t_drkit"
  CPU=m_pgbr secs "${PG[@]}" env AWS_CA_BUNDLE= pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --repo=2 --type=full backup >>"$work/m_pgbr"
  CPU=m_drkit secs "$BIN/drctl" backup --config "$work/drkit-minio.yaml" --cluster bench >>"$work/m_drkit"
done
for r in $(seq "$ROUNDS"); do
  rm -rf "$work/pgbr-restore/data" "$work/drkit-restore/data"
  CPU=r_pgbr secs "${PG[@]}" pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --repo=1 --pg1-path="$work/pgbr-restore/data" restore >>"$work/r_pgbr"
  CPU=r_drkit secs "$BIN/drctl" restore --config "$work/drkit.yaml" --cluster bench --to-region local --target-dir "$work/drkit-restore/data" >>"$work/r_drkit"
  rm -rf "$work/pgbr-restore/data" "$work/drkit-restore/data"
  CPU=mr_pgbr secs "${PG[@]}" pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --repo=2 --pg1-path="$work/pgbr-restore/data" restore >>"$work/mr_pgbr"
  CPU=mr_drkit secs "$BIN/drctl" restore --config "$work/drkit-minio.yaml" --cluster bench --to-region minio --target-dir "$work/drkit-restore/data" >>"$work/mr_drkit"
done
for v in t_pgbb t_pgbr t_drkit r_pgbr r_drkit m_pgbr m_drkit mr_pgbr mr_drkit; do eval "$v=$(median <"$work/$v")"; done
echo "medians of $ROUNDS alternating rounds, dirty pages flushed before each run"
# cpu NAME: median user and sys CPU seconds (the client process; the server's
# work during a backup is not counted).
cpu() { printf '%6.2f %6.2f' "$(awk '{print $1}' "$work/cpu.$1" | median)" "$(awk '{print $2}' "$work/cpu.$1" | median)"; }
printf '%-38s %8s %6s %6s\n' "base backup" "wall s" "user" "sys"
printf '%-38s %8.2f %s\n' "pg_basebackup -Ft (uncompressed)" "$t_pgbb" "$(cpu t_pgbb)" \
  "pgBackRest full (zst, process-max 2)" "$t_pgbr" "$(cpu t_pgbr)" "drkit backup (server zstd 1, default)" "$t_drkit" "$(cpu t_drkit)"
printf '%-38s %8s %6s %6s\n' "restore (files ready)" "wall s" "user" "sys"
printf '%-38s %8.2f %s\n' "pgBackRest restore (process-max 2)" "$r_pgbr" "$(cpu r_pgbr)" "drkit restore" "$r_drkit" "$(cpu r_drkit)"
printf 'local disk: backup pgBackRest/drkit %.2fx (target >= 2), drkit/pg_basebackup %.2fx (target <= 1.2); restore pgBackRest/drkit %.2fx (target >= 1.5)\n' \
  "$(echo "$t_pgbr / $t_drkit" | bc -l)" "$(echo "$t_drkit / $t_pgbb" | bc -l)" "$(echo "$r_pgbr / $r_drkit" | bc -l)"
printf '%-38s %8s %6s %6s\n' "MinIO (HTTPS, loopback)" "wall s" "user" "sys"
printf '%-38s %8.2f %s\n' "pgBackRest full backup" "$m_pgbr" "$(cpu m_pgbr)" "drkit backup" "$m_drkit" "$(cpu m_drkit)" \
  "pgBackRest restore" "$mr_pgbr" "$(cpu mr_pgbr)" "drkit restore" "$mr_drkit" "$(cpu mr_drkit)"
printf 'MinIO: backup pgBackRest/drkit %.2fx; restore pgBackRest/drkit %.2fx\n' "$(echo "$m_pgbr / $m_drkit" | bc -l)" "$(echo "$mr_pgbr / $mr_drkit" | bc -l)"
echo "stored for $ROUNDS backups: pgBackRest $(du -sh "$work/pgbr/backup" | cut -f1), drkit $(du -sh "$work/drkit-repo/bench/base" | cut -f1)"

}
part base && base_part

# exposure LABEL CONFIG: drd ships from the primary into CONFIG's regions while
# pgbench runs; bench/pgexposure times commits until they are durable everywhere.
exposure() {
  "$BIN/drd" --config "$2" --listen "127.0.0.1:$(freeport)" >"$work/drd-$1.log" 2>&1 &
  drd_pid=$!
  sleep 2
  "$PGBIN/pgbench" -c 2 -T 25 -n "$dsn" >"$work/pgbench.out" 2>&1 &
  local load=$!
  echo -n "$1: "; go run ./bench/pgexposure -config "$2" -duration 20s
  wait "$load" || true
  grep -E "^tps" "$work/pgbench.out" | sed 's/^/  pgbench meanwhile: /'
  kill "$drd_pid"; wait "$drd_pid" 2>/dev/null || true; drd_pid=""
}
if part exposure; then
  exposure "local disk" "$work/drkit.yaml"
  exposure MinIO "$work/drkit-minio.yaml"
fi
# WAL replay: both tools restore the same base backup (taken by each after the
# sections above) and replay the same WAL_MB of pgbench WAL to its end, after
# flushing dirty pages. pgBackRest: restore, then pg_ctl start until
# pg_is_in_recovery() is false. drkit: drctl restore --start (its own recovery
# run and restart); a files-only restore in the same round gives the split.
sql() { psql -X -A -t "$dsn" -c "$1"; }
# fsecs CMD...: wall seconds of a shell function, after flushing dirty pages.
fsecs() {
  sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
  local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
# recover DIR [OPTIONS]: start a restored folder on a free port (with extra
# server OPTIONS), wait until recovery ended.
recover() {
  local rport; rport=$(freeport)
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$1/recovery.log" -w -t 3600 start -o "-c port=$rport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$1 ${2:-}" >/dev/null
  until [ "$(psql -X -A -t "postgres://postgres@127.0.0.1:$rport/postgres?sslmode=disable" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.05; done
  as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null
}
# recover_synced DIR OPTIONS: recover, then sync, as drkit does after a
# recovery run without fsync.
recover_synced() { recover "$@"; sync; }
replay_part() {
  "$BIN/drd" --config "$work/drkit.yaml" --listen "127.0.0.1:$(freeport)" >"$work/drd-replay.log" 2>&1 &
  drd_pid=$!
  sleep 2
  "$BIN/drctl" backup --config "$work/drkit.yaml" --cluster bench >/dev/null
  as_pg pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --repo=1 --type=full backup >/dev/null
  local start_lsn; start_lsn=$(sql "SELECT pg_current_wal_lsn()")
  echo "writing ${WAL_MB} MB of WAL with pgbench ..."
  while [ "$(sql "SELECT ((pg_current_wal_lsn() - '$start_lsn') / 1048576)::int")" -lt "$WAL_MB" ]; do
    "$PGBIN/pgbench" -c 4 -j 2 -T 10 -n "$dsn" >/dev/null 2>&1
  done
  local end_lsn last_seg; end_lsn=$(sql "SELECT pg_current_wal_lsn()")
  last_seg=$(sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
  sql "SELECT pg_switch_wal()" >/dev/null
  local wal_mb; wal_mb=$(sql "SELECT round((pg_current_wal_lsn() - '$start_lsn') / 1048576.0)")
  # Both hold every segment before the end: pgBackRest's archiver, drd's region.
  until [ "$(sql "SELECT coalesce(last_archived_wal, '') >= '$last_seg' FROM pg_stat_archiver")" = t ]; do sleep 0.5; done
  until "$BIN/drctl" status --config "$work/drkit.yaml" --json | python3 -c "import json,sys; r=json.load(sys.stdin)[0]; h,l=r['durable_lsn'].split('/'); e='$end_lsn'.split('/'); sys.exit(0 if (int(h,16)<<32|int(l,16)) >= (int(e[0],16)<<32|int(e[1],16)) else 1)" 2>/dev/null; do sleep 0.5; done
  kill "$drd_pid"; wait "$drd_pid" 2>/dev/null || true; drd_pid=""
  stop_pg "$work/primary/data" # the restores have the machine to themselves
  echo "WAL replay: ${wal_mb} MB of WAL after the base backup; medians of $ROUNDS alternating rounds"
  # drctl restore --start's recovery options (snapshots/postgres/start.go).
  local mem_mb; mem_mb=$(awk '/MemTotal/ {m=int($2/1024/4); if (m<128) m=128; if (m>8192) m=8192; print m}' /proc/meminfo)
  local replay_opts="-c shared_buffers=${mem_mb}MB -c max_wal_size=64GB -c checkpoint_timeout=1h -c fsync=off -c maintenance_io_concurrency=64 -c wal_decode_buffer_size=4MB -c recovery_prefetch=on"
  for r in $(seq "$ROUNDS"); do
    rm -rf "$work/pgbr-restore/data" "$work/drkit-restore/data" "$work/pgbr-spool"/*
    CPU=wr_pgbr secs "${PG[@]}" pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --repo=1 --pg1-path="$work/pgbr-restore/data" \
      --archive-mode=off restore >>"$work/wr_pgbr"
    fsecs recover "$work/pgbr-restore/data" >>"$work/wp_pgbr"
    # pgBackRest again, its recovery run with drkit's replay settings: the
    # difference to drkit is then fetching alone, not server tuning.
    rm -rf "$work/pgbr-restore/data" "$work/pgbr-spool"/*
    CPU=wr_pgbt secs "${PG[@]}" pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --repo=1 --pg1-path="$work/pgbr-restore/data" \
      --archive-mode=off restore >>"$work/wr_pgbt"
    fsecs recover_synced "$work/pgbr-restore/data" "$replay_opts" >>"$work/wp_pgbt"
    CPU=wr_drkit secs "$BIN/drctl" restore --config "$work/drkit.yaml" --cluster bench --to-region local --target-dir "$work/drkit-restore/data" >>"$work/wr_drkit"
    rm -rf "$work/drkit-restore/data"
    # drkit's own start: recovery with replay settings, then a restart with the folder's own.
    CPU=wt_drkit secs "$BIN/drctl" restore --config "$work/drkit.yaml" --cluster bench --to-region local --target-dir "$work/drkit-restore/data" --start --port "$(freeport)" >>"$work/wt_drkit"
    as_pg "$PGBIN/pg_ctl" -D "$work/drkit-restore/data" -m fast -w stop >/dev/null
  done
  # drkit's fetch rate alone: every segment through wal-fetch, as recovery asks for them.
  mkdir -p "$work/fetch"; chmod 777 "$work/fetch"
  local t0 t1 n=0
  t0=$(date +%s.%N)
  for f in $(ls "$work/drkit-repo/bench/wal" | grep -E '^[0-9A-F]{24}\.' | cut -c1-24 | sort -u); do
    "$BIN/drctl" wal-fetch --config "$work/drkit.yaml" --cluster bench "$f" "$work/fetch/RECOVERYXLOG" >/dev/null 2>&1 && n=$((n + 1))
    rm -f "$work/fetch/RECOVERYXLOG"
  done
  t1=$(date +%s.%N)
  local wr_pgbr wp_pgbr wr_pgbt wp_pgbt wr_drkit wt_drkit wp_drkit
  for v in wr_pgbr wp_pgbr wr_pgbt wp_pgbt wr_drkit wt_drkit; do eval "$v=$(median <"$work/$v")"; done
  wp_drkit=$(echo "$wt_drkit - $wr_drkit" | bc -l) # replay and start: the --start run less the files-only run
  printf '%-38s %8s %8s %8s %12s\n' "restore + replay to the end" "files s" "replay s" "total s" "replay MB/s"
  printf '%-38s %8.2f %8.2f %8.2f %12.1f\n' \
    "pgBackRest (archive-get async, pm 2)" "$wr_pgbr" "$wp_pgbr" "$(echo "$wr_pgbr + $wp_pgbr" | bc -l)" "$(echo "$wal_mb / $wp_pgbr" | bc -l)" \
    "pgBackRest, drkit's replay settings" "$wr_pgbt" "$wp_pgbt" "$(echo "$wr_pgbt + $wp_pgbt" | bc -l)" "$(echo "$wal_mb / $wp_pgbt" | bc -l)" \
    "drkit (restore --start)" "$wr_drkit" "$wp_drkit" "$wt_drkit" "$(echo "$wal_mb / $wp_drkit" | bc -l)"
  printf 'WAL replay: pgBackRest/drkit %.2fx total (target >= 1.5), %.2fx replay phase; with the same replay settings %.2fx total, %.2fx replay phase; drkit wal-fetch alone: %d segments at %.1f MB/s\n' \
    "$(echo "($wr_pgbr + $wp_pgbr) / $wt_drkit" | bc -l)" "$(echo "$wp_pgbr / $wp_drkit" | bc -l)" \
    "$(echo "($wr_pgbt + $wp_pgbt) / $wt_drkit" | bc -l)" "$(echo "$wp_pgbt / $wp_drkit" | bc -l)" \
    "$n" "$(echo "$n * 16 / ($t1 - $t0)" | bc -l)"
}
part replay && replay_part
