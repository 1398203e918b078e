#!/usr/bin/env bash
# Fans a batch of dumps out over a Slurm cluster: one job array (one task per shard) and a collect
# job that runs after it, whatever happened to the tasks (afterany). Prints both job ids.
#
#   scripts/slurm/submit.sh MANIFEST OUTDIR [--tasks N] [--cpus C] [--mem MB] [--sweep]
#                           [--partition P] [--time T] [--sbatch "extra sbatch flags"] [lookm flags...]
#
# Every task runs `lookm compress --manifest MANIFEST --out-dir OUTDIR --shard I/N [lookm flags]`
# (`lookm sweep ...` with --sweep). Resubmitting the same command after failures, cancellations or
# timeouts redoes only what is missing: outputs that are complete and current are skipped. The
# collect job writes OUTDIR/collect.json and lists what is still missing in its log
# (OUTDIR/slurm/collect-JOBID.out); it fails while anything is.
#
# Defaults: N = min(dumps, 64) tasks; CPUs per task = min(kv heads, 4) (lookm parallelises over kv
# heads; more cores than heads sit idle); memory per task from the first dump's shape: lookm keeps
# about 2.5 x one layer's K/V bytes plus 64 MiB resident (docs/batch.md), so 3 x + 256 MiB
# (sweep: 4 x + 512 MiB, every setting's heads are held at once). Environment: LOOKM_BIN (default:
# this checkout's .build/release/lookm), HDF5_USE_FILE_LOCKING=FALSE for shared file systems.
set -euo pipefail

usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "submit: $*" >&2; exit 2; }

[ $# -ge 2 ] || usage
manifest=$1 outdir=$2
shift 2
tasks="" cpus="" mem="" command=compress partition="" time_limit="" extra_sbatch=""
lookm_flags=()
while [ $# -gt 0 ]; do
    case $1 in
        --tasks) tasks=${2:?--tasks needs a number}; shift 2 ;;
        --cpus) cpus=${2:?--cpus needs a number}; shift 2 ;;
        --mem) mem=${2:?--mem needs MiB}; shift 2 ;;
        --sweep) command=sweep; shift ;;
        --partition) partition=${2:?}; shift 2 ;;
        --time) time_limit=${2:?}; shift 2 ;;
        --sbatch) extra_sbatch=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) lookm_flags+=("$1"); shift ;;
    esac
done

here=$(cd "$(dirname "$0")/../.." && pwd)
lookm=${LOOKM_BIN:-$here/.build/release/lookm}
[ -x "$lookm" ] || die "no lookm binary at $lookm (run scripts/setup.sh, or set LOOKM_BIN)"
command -v sbatch >/dev/null || die "sbatch not found: is this a Slurm login node?"
[ -r "$manifest" ] || die "cannot read the manifest $manifest"
manifest=$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")
mkdir -p "$outdir/slurm"
outdir=$(cd "$outdir" && pwd)

# The dumps, as lookm reads them (relative paths are relative to the manifest's folder).
mapfile -t dumps < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$manifest" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
((${#dumps[@]})) || die "$manifest lists no dumps"
first=${dumps[0]}
[[ $first = /* ]] || first=$(dirname "$manifest")/$first

if [ -z "$tasks" ]; then tasks=$((${#dumps[@]} < 64 ? ${#dumps[@]} : 64)); fi
if [ -z "$cpus" ] || [ -z "$mem" ]; then
    shape=$("$lookm" inspect --json "$first") || die "cannot inspect $first (the first dump) to size the tasks; pass --cpus and --mem"
    read -r kv_heads layer_bytes < <(python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["shape"]["num_kv_heads"], d["kv_bytes"] // max(d["shape"]["num_layers"], 1))' <<<"$shape")
    [ -n "$cpus" ] || cpus=$((kv_heads < 4 ? kv_heads : 4))
    if [ -z "$mem" ]; then
        if [ "$command" = sweep ]; then mem=$(((4 * layer_bytes >> 20) + 512)); else mem=$(((3 * layer_bytes >> 20) + 256)); fi
    fi
fi

sbatch_common=(--parsable --export=ALL,HDF5_USE_FILE_LOCKING=FALSE)
[ -n "$partition" ] && sbatch_common+=(--partition "$partition")
[ -n "$time_limit" ] && sbatch_common+=(--time "$time_limit")
# shellcheck disable=SC2206
[ -n "$extra_sbatch" ] && sbatch_common+=($extra_sbatch)

quoted_flags=""
((${#lookm_flags[@]})) && quoted_flags=$(printf ' %q' "${lookm_flags[@]}")
array_job=$(sbatch "${sbatch_common[@]}" --job-name="lookm-$command" --array="0-$((tasks - 1))" \
    --cpus-per-task="$cpus" --mem="${mem}M" --output="$outdir/slurm/%A_%a.out" <<JOB
#!/bin/bash
export HDF5_USE_FILE_LOCKING=FALSE
exec $(printf '%q' "$lookm") $command --manifest $(printf '%q' "$manifest") --out-dir $(printf '%q' "$outdir") \\
    --shard "\$SLURM_ARRAY_TASK_ID/\$SLURM_ARRAY_TASK_COUNT"$quoted_flags
JOB
)
array_job=${array_job%%;*}

collect_job=$(sbatch "${sbatch_common[@]}" --job-name="lookm-collect" --dependency="afterany:$array_job" \
    --cpus-per-task=1 --mem=512M --output="$outdir/slurm/collect-%j.out" <<JOB
#!/bin/bash
export HDF5_USE_FILE_LOCKING=FALSE
exec $(printf '%q' "$lookm") collect $(printf '%q' "$outdir") --manifest $(printf '%q' "$manifest") --kind $command --format json \\
    > $(printf '%q' "$outdir/collect.json")
JOB
)
collect_job=${collect_job%%;*}

echo "submit: ${#dumps[@]} dumps, $tasks tasks x $cpus CPUs x ${mem} MiB; array job $array_job, collect job $collect_job" >&2
echo "array_job=$array_job"
echo "collect_job=$collect_job"
