#!/usr/bin/env bash
# The OOS hop of an OUTSCALE cross-Region copy: one exported object copied
# between two S3 servers (two MinIOs on loopback stand in for two Regions'
# OOS), drkit's copy stage (bench/ooshop: outscale.CopyObject) vs
# `rclone copyto` between two remotes, same part size and concurrency,
# alternating runs. Prints throughput, peak RSS and the ratios.
# Usage: bench/outscale.sh [SIZE_MIB] (default 4096); ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-4096}
ROUNDS=${ROUNDS:-3}
PART_MIB=16
CONCURRENCY=4

work=$(mktemp -d /tmp/drkit-bench-oos-XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export MINIO_ROOT_USER=drkit-bench MINIO_ROOT_PASSWORD=drkit-bench-secret MINIO_BROWSER=off MINIO_UPDATE=off
declare -A port
for r in a b; do
  port[$r]=$(freeport)
  bin/minio server "$work/minio-$r" --quiet --address "127.0.0.1:${port[$r]}" --console-address "127.0.0.1:$(freeport)" >"$work/minio-$r.log" 2>&1 &
  pids+=($!)
done
for r in a b; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${port[$r]}/minio/health/ready" >/dev/null && break; sleep 0.1; done
done

export AWS_ACCESS_KEY_ID=$MINIO_ROOT_USER AWS_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD AWS_EC2_METADATA_DISABLED=true
for r in a b; do
  R=${r^^}
  export RCLONE_CONFIG_${R}_TYPE=s3 RCLONE_CONFIG_${R}_PROVIDER=Minio RCLONE_CONFIG_${R}_REGION=us-east-1 \
    RCLONE_CONFIG_${R}_ENDPOINT="http://127.0.0.1:${port[$r]}" \
    RCLONE_CONFIG_${R}_ACCESS_KEY_ID=$MINIO_ROOT_USER RCLONE_CONFIG_${R}_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD
  env -u AWS_CA_BUNDLE rclone mkdir "$r:oos"
done
store() { echo "s3://oos/$2?endpoint=http://127.0.0.1:${port[$1]}&region=us-east-1&path_style=true"; }

# The exported object, in Region a's bucket.
head -c "$((SIZE * 1024 * 1024))" /dev/urandom >"$work/data"
env -u AWS_CA_BUNDLE rclone copyto "$work/data" "a:oos/export/snap-1.qcow2.gz" --s3-chunk-size ${PART_MIB}M --s3-upload-concurrency $CONCURRENCY
rm -f "$work/data"
go build -o "$work/ooshop" ./bench/ooshop

source bench/lib.sh

echo "drkit $(git rev-parse --short HEAD 2>/dev/null || echo ?) vs $(rclone version | head -1); two MinIOs on loopback; ${SIZE} MiB object; ${PART_MIB} MiB parts, concurrency $CONCURRENCY; $(nproc) cores"
: >"$work/drkit.s"; : >"$work/rclone.s"; : >"$work/drkit.rss"; : >"$work/rclone.rss"
for _ in $(seq "$ROUNDS"); do
  read -r s rss < <(measure drkit "$work/ooshop" -from "$(store a export)" -to "$(store b drkit)" -key snap-1.qcow2.gz \
    -part-size $((PART_MIB << 20)) -concurrency $CONCURRENCY)
  echo "$s" >>"$work/drkit.s"; echo "$rss" >>"$work/drkit.rss"
  env -u AWS_CA_BUNDLE rclone deletefile "b:oos/drkit/snap-1.qcow2.gz"
  read -r s rss < <(measure rclone env -u AWS_CA_BUNDLE rclone copyto "a:oos/export/snap-1.qcow2.gz" "b:oos/rclone/snap-1.qcow2.gz" \
    --s3-chunk-size ${PART_MIB}M --s3-upload-concurrency $CONCURRENCY --s3-upload-cutoff 100M)
  echo "$s" >>"$work/rclone.s"; echo "$rss" >>"$work/rclone.rss"
  env -u AWS_CA_BUNDLE rclone deletefile "b:oos/rclone/snap-1.qcow2.gz"
done
printf '%-7s %10s %10s %12s\n' tool "MiB/s" "seconds" "peak RSS MiB"
for tool in drkit rclone; do
  s=$(median <"$work/$tool.s"); rss=$(sort -n "$work/$tool.rss" | tail -1)
  printf '%-7s %10.1f %10.2f %12.1f\n' "$tool" "$(echo "$SIZE / $s" | bc -l)" "$s" "$(echo "$rss / 1024" | bc -l)"
  eval "${tool}_s=$s; ${tool}_rss=$rss"
done
printf 'ratio   drkit/rclone throughput %.2fx (target >= 1.2x), drkit peak RSS %.0f MiB (target <= 128; rclone %.0f MiB); %s rounds, median time\n' \
  "$(echo "$rclone_s / $drkit_s" | bc -l)" "$(echo "$drkit_rss / 1024" | bc -l)" "$(echo "$rclone_rss / 1024" | bc -l)" "$ROUNDS"
