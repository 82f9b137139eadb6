#!/usr/bin/env bash
# drkit demo on the embedded default: two file:// regions and a throwaway
# PostgreSQL from the system's binaries. It writes with pgbench, takes a base
# backup, writes more, kills the primary and drd (the disaster), restores from
# the second region alone, and prints the row counts of both side by side.
# Everything lives in one temporary folder, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${DRKIT_BIN:-$PWD/bin}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "demo: PostgreSQL server binaries not found: run make deps" >&2; exit 1; }

work=$(mktemp -d /tmp/drkit-demo-XXXX)
chmod 755 "$work"
drd_pid=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_pg() { [ -f "$1/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true; }
cleanup() {
  [ -n "$drd_pid" ] && kill -9 "$drd_pid" 2>/dev/null || true
  stop_pg "$work/primary/data"; stop_pg "$work/restored/data"
  rm -rf "$work"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "a throwaway PostgreSQL primary"
mkdir -p "$work/primary" "$work/restored"
[ "$(id -u)" = 0 ] && chown postgres "$work/primary" "$work/restored"
port=$(freeport)
as_pg "$PGBIN/initdb" -D "$work/primary/data" -U postgres -A trust --no-instructions >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$work/primary/data" -l "$work/primary/log" -w start \
  -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work/primary -c wal_level=replica" >/dev/null
dsn="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"

cat >"$work/drkit.yaml" <<YAML
drd:
  listen: 127.0.0.1:$(freeport)
  state_dir: $work/state
regions:
  - name: eu-west-1
    store: file://$work/regions/eu-west-1?mode=0644
  - name: us-east-1
    store: file://$work/regions/us-east-1?mode=0644
clusters:
  - name: demo
    engine: postgres
    region: eu-west-1
    dsn: $dsn
YAML
chmod 644 "$work/drkit.yaml"
echo "config: $work/drkit.yaml"; cat "$work/drkit.yaml"

say "drd streams WAL to both regions"
"$BIN/drd" --config "$work/drkit.yaml" >"$work/drd.log" 2>&1 &
drd_pid=$!

say "pgbench writes (scale 10)"
"$PGBIN/pgbench" -i -s 10 -q "$dsn" 2>&1 | tail -1

say "drctl backup: a base backup into both regions"
"$BIN/drctl" backup --config "$work/drkit.yaml" --cluster demo

say "pgbench writes more (8 s)"
"$PGBIN/pgbench" -c 2 -T 8 -n "$dsn" 2>&1 | grep -E "transactions actually processed|tps"
sleep 2  # two flush intervals: what was committed is now in every region
counts() { psql -X -A -t -F ' ' "$1" -c "SELECT (SELECT count(*) FROM pgbench_history), (SELECT sum(abalance) FROM pgbench_accounts)"; }
read -r before_hist before_sum < <(counts "$dsn")

say "disaster: the primary and drd are killed"
kill -9 "$drd_pid"; drd_pid=""
stop_pg "$work/primary/data"
echo "primary and drd are gone; region eu-west-1 is not used from here on"

say "drctl backups --region us-east-1"
"$BIN/drctl" backups --config "$work/drkit.yaml" --cluster demo --region us-east-1

say "drctl restore --to-region us-east-1 --start"
rport=$(freeport)
"$BIN/drctl" restore --config "$work/drkit.yaml" --cluster demo --to-region us-east-1 \
  --target-dir "$work/restored/data" --start --port "$rport"
read -r after_hist after_sum < <(counts "postgres://postgres@127.0.0.1:$rport/postgres?sslmode=disable")

say "row counts"
printf '%-28s %15s %15s\n' "" "primary" "restored"
printf '%-28s %15s %15s\n' "pgbench_history rows" "$before_hist" "$after_hist"
printf '%-28s %15s %15s\n' "sum(pgbench_accounts.abalance)" "$before_sum" "$after_sum"
if [ "$before_hist" = "$after_hist" ] && [ "$before_sum" = "$after_sum" ]; then
  echo "identical: every committed transaction came back from us-east-1 alone"
else
  echo "demo: the restored copy differs from the primary" >&2; exit 1
fi
