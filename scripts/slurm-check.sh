#!/usr/bin/env bash
# Runs an experiment through `circuitry submit --slurm` (3 shards and an assemble job) on a
# one-node SLURM cluster started here, and checks that its tables equal a local run's byte for
# byte and that the assemble job computed nothing. Needs root (scripts/slurm-local.sh).
#
# Usage: scripts/slurm-check.sh CIRCUITRY_BINARY [EXPERIMENT_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1")
file=${2:-experiments/default.toml}
name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$file" | head -n1)
work=$(mktemp -d /tmp/circuitry-slurm.XXXXXX)

scripts/slurm-local.sh install >/dev/null
eval "$(scripts/slurm-local.sh start "$work/cluster")"
trap 'scripts/slurm-local.sh stop "$work/cluster" || true' EXIT

"$bin" run "$file" --out "$work/local" --quiet
submitted=$("$bin" submit "$file" --slurm --shards 3 --out "$work/outputs")
echo "$submitted"
shards=$(sed -n 's/^shards job \([0-9]*\).*/\1/p' <<<"$submitted")
assemble=$(sed -n 's/^assemble job \([0-9]*\).*/\1/p' <<<"$submitted")
[ -n "$shards" ] && [ -n "$assemble" ] || { echo "no job ids in: $submitted" >&2; exit 1; }
if ! SLURM_LOCAL_TIMEOUT=900 scripts/slurm-local.sh wait "$shards" "$assemble"; then
  tail -n 40 "$work"/outputs/.circuitry/slurm/"$name"/*/*.out >&2 || true
  exit 1
fi

local_tables=$(cd "$work/local/$name" && ls ./*.parquet)
slurm_tables=$(cd "$work/outputs/$name" && ls ./*.parquet)
[ "$local_tables" = "$slurm_tables" ] || {
  echo "table sets differ: local [$local_tables] slurm [$slurm_tables]" >&2
  exit 1
}
for t in $local_tables; do
  cmp "$work/local/$name/$t" "$work/outputs/$name/$t"
done
python3 - "$work/outputs/$name/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
computed = [n["name"] for n in m["nodes"] if n["computed"]]
assert not computed and m["forward_passes"] == 0, f"the assemble job computed {computed}"
print(f"slurm: {len(m['tables'])} tables from {len(m['nodes'])} cached nodes, byte-identical to the local run")
PY
rm -rf "$work/local" "$work/outputs"
