#!/usr/bin/env bash
# Throughput of batch compression through Slurm on this machine: N copies of a LLaVA-1.5-7B-shaped
# synth dump (32 layers x 32 heads x 4096 tokens x 128, float16, 2 GiB each; made once in
# bench-data/, not committed), compressed by `scripts/slurm/submit.sh` as 1 array task with every
# core, then as 2 tasks with one core each. Prints dumps per minute, from submission to the end of
# the collect job (so Slurm's scheduling is included), and the mean seconds per dump.
#
#   scripts/slurm/bench.sh [--dumps N]      # root: starts the local cluster if none is running
set -euo pipefail
cd "$(dirname "$0")/../.."
n=6
[ "${1:-}" = "--dumps" ] && n=${2:?}
lookm=$PWD/.build/release/lookm
data=$PWD/bench-data
mkdir -p "$data/cluster"
base=$data/llava7b-32l.h5    # the same file scripts/bench.py makes
if [ ! -f "$base" ]; then
    echo "bench: making $base (once, about 2 minutes)" >&2
    "$lookm" synth -o "$base" --layers 32 --heads 32 --head-dim 128 --images 6 --image-tokens 576 --text-tokens 640 --probes 8
fi
: > "$data/cluster/manifest.txt"
for i in $(seq 0 $((n - 1))); do
    [ -f "$data/cluster/dump$i.h5" ] || cp "$base" "$data/cluster/dump$i.h5"
    echo "$data/cluster/dump$i.h5" >> "$data/cluster/manifest.txt"
done

started=""
if ! sinfo -h >/dev/null 2>&1; then
    scripts/slurm/local-cluster.sh start
    started=1
fi
cleanup() { [ -z "$started" ] || scripts/slurm/local-cluster.sh stop; }
trap cleanup EXIT

cpus=$(nproc)
for setup in "1 $cpus" "2 $((cpus / 2))"; do
    read -r tasks per <<<"$setup"
    out=$data/cluster/out-$tasks
    rm -rf "$out"
    t0=$(date +%s.%N)
    ids=$(scripts/slurm/submit.sh "$data/cluster/manifest.txt" "$out" --tasks "$tasks" --cpus "$per" 2>/dev/null)
    collect=$(sed -n 's/^collect_job=//p' <<<"$ids")
    while squeue -h -j "$collect" -o %i 2>/dev/null | grep -q .; do sleep 0.2; done
    t1=$(date +%s.%N)
    python3 - "$out" "$n" "$tasks" "$per" "$t0" "$t1" <<'PY'
import glob, json, sys
out, n, tasks, per, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
recs = [json.loads(l) for f in glob.glob(f"{out}/results/*.jsonl") for l in open(f)]
ok = [r for r in recs if r["status"] == "ok"]
wall = t1 - t0
print(f"{tasks} task(s) x {per} CPU(s): {len(ok)}/{n} dumps in {wall:.1f} s = {60 * len(ok) / wall:.2f} dumps/min; "
      f"{sum(r['seconds'] for r in ok) / max(len(ok), 1):.2f} s per dump inside lookm")
PY
done
