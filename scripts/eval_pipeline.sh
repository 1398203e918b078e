#!/usr/bin/env bash
# Compress every dump of a directory with several methods and budgets, report each cache against
# its dump, and collect one CSV: how lookm sits in an evaluation script (shell tools and lookm only).
#
#   scripts/eval_pipeline.sh DUMP_DIR OUT_DIR [METHODS] [BUDGETS]
#   scripts/eval_pipeline.sh dumps/ results/ "lookm h2o random" "0.05 0.2 0.5"
#
# Writes OUT_DIR/<dump>.<method>-<budget>.lookm.h5, a JSON report beside each, and OUT_DIR/results.csv
# (dump, method, budget, then the columns of `lookm report --format csv`). Exits non-zero if any run failed.
set -euo pipefail
dumps=${1:?usage: eval_pipeline.sh DUMP_DIR OUT_DIR [METHODS] [BUDGETS]}
out=${2:?usage: eval_pipeline.sh DUMP_DIR OUT_DIR [METHODS] [BUDGETS]}
methods=${3:-lookm h2o snapkv random}
budgets=${4:-0.05 0.1 0.2 0.5}
lookm=${LOOKM:-$(dirname "$0")/../.build/release/lookm}
mkdir -p "$out"
csv="$out/results.csv"
failed=0
header_written=0
: > "$csv"
for dump in "$dumps"/*.h5; do
    name=$(basename "$dump" .h5)
    for method in $methods; do
        for budget in $budgets; do
            cache="$out/$name.$method-$budget.lookm.h5"
            if ! "$lookm" compress "$dump" -o "$cache" --method "$method" --budget "$budget" --force 2>> "$out/errors.log"; then
                echo "failed: $dump $method $budget" >&2; failed=1; continue
            fi
            "$lookm" report "$cache" --reference "$dump" --format json > "${cache%.h5}.report.json"
            # One header row, then one row per run: the report's own CSV, prefixed with the run.
            "$lookm" report "$cache" --reference "$dump" --format csv | {
                read -r header
                if [ "$header_written" = 0 ]; then echo "dump,method,budget,$header" >> "$csv"; fi
                while read -r row; do echo "$name,$method,$budget,$row" >> "$csv"; done
            }
            header_written=1
        done
    done
done
echo "wrote $csv ($(($(wc -l < "$csv") - 1)) runs)" >&2
exit $failed
