#!/usr/bin/env bash
# Put and get throughput of the real binary against this machine's single-core crypto limits,
# measured in the same run (the machine is shared and noisy: compare the ratios).
#
#   bash node/benches/limits.sh [SIZE_MIB] [RUNS]     (default 1024 MiB, 3 runs)
#
# Limits, from `openssl speed` with 1 MiB blocks (bytes/s):
#   put limit = 1 / (2/sha256 + 1/aes256gcm)   (convergent key hash, encryption, id hash)
#   get limit = 1 / (1/sha256 + 1/aes256gcm)   (id hash, decryption)
# Input, data directory and output all live on tmpfs (/dev/shm). Max RSS comes from GNU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-1024}
runs=${2:-3}
bash .ci/setup
source .ci/env
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null; }
cargo build --release --bin cryptosphere >&2
bin="$CARGO_TARGET_DIR/release/cryptosphere"
work=$(mktemp -d /dev/shm/cryptosphere-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

speed() { # openssl prints k (1000 bytes) per second in its last column
  openssl speed -evp "$1" -bytes 1048576 -seconds 3 2>/dev/null | awk -v name="$2" '$1 == name { sub("k", "", $NF); print $NF * 1000 }'
}
sha=$(speed sha256 sha256)
aes=$(speed aes-256-gcm AES-256-GCM)

head -c "$((size_mib << 20))" /dev/urandom > "$work/input"
bytes=$(stat -c %s "$work/input")
export CRYPTOSPHERE_DATA_DIR="$work/data"
for run in $(seq "$runs"); do
  rm -rf "$work/data" "$work/output"
  /usr/bin/time -f "%e %M" -o "$work/put.time" "$bin" put "$work/input" > "$work/cap"
  /usr/bin/time -f "%e %M" -o "$work/get.time" "$bin" get "$(cat "$work/cap")" --output "$work/output"
  cmp -s "$work/input" "$work/output" || { echo "get returned different bytes" >&2; exit 1; }
  echo "$(cat "$work/put.time") $(cat "$work/get.time")" >> "$work/results"
done

python3 - "$sha" "$aes" "$bytes" "$work/results" <<'PY'
import statistics, sys
sha, aes, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rows = [list(map(float, line.split())) for line in open(sys.argv[4])]
put_limit = 1 / (2 / sha + 1 / aes)
get_limit = 1 / (1 / sha + 1 / aes)
print(f"openssl sha256 {sha / 1e9:.3f} GB/s, aes-256-gcm {aes / 1e9:.3f} GB/s (1 MiB blocks)")
print(f"put limit {put_limit / 1e9:.3f} GB/s, get limit {get_limit / 1e9:.3f} GB/s")
print(f"input {size / 2**20:.0f} MiB on tmpfs, RocksDB data dir on tmpfs, {len(rows)} runs")
print("run  put MB/s  put/limit  put maxRSS MiB   get MB/s  get/limit  get maxRSS MiB")
for i, (pt, prss, gt, grss) in enumerate(rows, 1):
    print(f"{i:>3} {size / pt / 1e6:>9.0f} {size / pt / put_limit:>10.0%} {prss / 1024:>14.0f} "
          f"{size / gt / 1e6:>10.0f} {size / gt / get_limit:>10.0%} {grss / 1024:>14.0f}")
put = statistics.median(size / r[0] for r in rows)
get = statistics.median(size / r[2] for r in rows)
print(f"median: put {put / 1e6:.0f} MB/s = {put / put_limit:.0%} of its limit; "
      f"get {get / 1e6:.0f} MB/s = {get / get_limit:.0%} of its limit; "
      f"max RSS put {max(r[1] for r in rows) / 1024:.0f} MiB, get {max(r[3] for r in rows) / 1024:.0f} MiB")
PY
