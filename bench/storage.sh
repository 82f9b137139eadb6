#!/usr/bin/env bash
# Storage benchmark: drkit's multipart upload vs rclone's, same data, same MinIO,
# same part size and concurrency, alternating runs. Prints throughput and peak RSS
# of each and the ratios. Usage: bench/storage.sh [SIZE_MIB ...] (default 1024 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PART_MIB=16
CONCURRENCY=4
SIZES=("${@:-1024 4096}")
[ $# -gt 0 ] || SIZES=(1024 4096)

work=$(mktemp -d /tmp/drkit-bench-storage-XXXX)
minio_pid=""
cleanup() { [ -n "$minio_pid" ] && kill "$minio_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
console=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MINIO_ROOT_USER=drkit-bench MINIO_ROOT_PASSWORD=drkit-bench-secret MINIO_BROWSER=off MINIO_UPDATE=off
bin/minio server "$work/minio" --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console" >"$work/minio.log" 2>&1 &
minio_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/minio/health/ready" >/dev/null && break; sleep 0.1; done

export AWS_ACCESS_KEY_ID=$MINIO_ROOT_USER AWS_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD AWS_EC2_METADATA_DISABLED=true
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Minio RCLONE_CONFIG_BENCH_REGION=us-east-1 \
  RCLONE_CONFIG_BENCH_ENDPOINT="http://127.0.0.1:$port" \
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$MINIO_ROOT_USER RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD
env -u AWS_CA_BUNDLE rclone mkdir bench:bench

cat >"$work/drkit.yaml" <<YAML
drd:
  state_dir: $work/state
storage:
  part_size: ${PART_MIB}MiB
  concurrency: $CONCURRENCY
  multipart_threshold: 100MiB
regions:
  - name: bench
    store: s3://bench/drkit?endpoint=http://127.0.0.1:$port&region=us-east-1
YAML

source bench/lib.sh

echo "drkit $(git rev-parse --short HEAD 2>/dev/null || echo ?) vs $(rclone version | head -1); MinIO on loopback; ${PART_MIB} MiB parts, concurrency $CONCURRENCY; $(nproc) cores"
printf '%-8s %-7s %10s %10s %12s\n' size tool "MiB/s" "seconds" "peak RSS MiB"
for size in "${SIZES[@]}"; do
  head -c "$((size * 1024 * 1024))" /dev/urandom >"$work/data"
  rounds=$ROUNDS; [ "$size" -gt 1024 ] && rounds=1
  : >"$work/drkit.s"; : >"$work/rclone.s"; : >"$work/drkit.rss"; : >"$work/rclone.rss"
  for r in $(seq "$rounds"); do
    read -r s rss < <(measure drkit bin/drctl storage put "b/$size" "$work/data" --config "$work/drkit.yaml" --region bench)
    echo "$s" >>"$work/drkit.s"; echo "$rss" >>"$work/drkit.rss"
    bin/drctl storage rm "b/$size" --config "$work/drkit.yaml" --region bench
    read -r s rss < <(measure rclone env -u AWS_CA_BUNDLE rclone copyto "$work/data" "bench:bench/rclone/$size" \
      --s3-chunk-size ${PART_MIB}M --s3-upload-concurrency $CONCURRENCY --s3-upload-cutoff 100M)
    echo "$s" >>"$work/rclone.s"; echo "$rss" >>"$work/rclone.rss"
    env -u AWS_CA_BUNDLE rclone deletefile "bench:bench/rclone/$size"
  done
  for tool in drkit rclone; do
    s=$(median <"$work/$tool.s"); rss=$(sort -n "$work/$tool.rss" | tail -1)
    printf '%-8s %-7s %10.1f %10.2f %12.1f\n' "${size}MiB" "$tool" "$(echo "$size / $s" | bc -l)" "$s" "$(echo "$rss / 1024" | bc -l)"
    eval "${tool}_s=$s; ${tool}_rss=$rss"
  done
  printf '%-8s ratio   drkit/rclone throughput %.2fx, drkit peak RSS %.0f MiB (rclone %.0f MiB); %s rounds, median time\n' \
    "${size}MiB" "$(echo "$rclone_s / $drkit_s" | bc -l)" "$(echo "$drkit_rss / 1024" | bc -l)" "$(echo "$rclone_rss / 1024" | bc -l)" "$rounds"
done
