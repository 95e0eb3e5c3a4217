#!/usr/bin/env bash
# The prepared GPU check: everything a lent CUDA machine should tell us, in one go, in
# under 8 minutes, into one folder.
#
#   scripts/gpu_check.sh OUT_DIR
#
# Uses $PYTHON, else .venv/bin/python, else python3 — whichever can import clipgen. If
# none can, installs once as README does (pip install -e '.[all,test]'; with WHEELS=DIR,
# from that folder of wheels only, for machines without PyPI). Each part has its own time
# limit and writes as it goes, so one that hangs or runs long costs only itself:
#   env.json               nvidia-smi, torch / CUDA / cuDNN versions, the card
#   gpu_check.log          what each part said, with its exit status and time
#   cuda-tests.log, .xml   pytest -m cuda (every generator on cuda in fp32/bf16/fp16, resume GPU→GPU and GPU→CPU,
#                          no host sync inside a step)
#   bench.jsonl            clipgen bench's five GPU cases × precision auto/fp32 × compile off/on
#   memory.json            the largest VQGAN size at cutn 32 by the estimate, one real step there, ± checkpointing
#   summary.md             the tables
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 CLIPGEN_OFFLINE=1 PYTHONUNBUFFERED=1 CLIPGEN_HOME="${TMPDIR:-/tmp}/clipgen-gpu-check-home"
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }
log() { echo "[gpu_check $(elapsed)s] $*" | tee -a "$OUT/gpu_check.log"; }

pick_python() {
    for candidate in "${PYTHON:-}" .venv/bin/python python3; do
        if [ -n "$candidate" ] && "$candidate" -c "import clipgen, pytest" 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}
if ! PY=$(pick_python); then
    log "no Python here imports clipgen: installing once"
    if [ -n "${WHEELS:-}" ]; then
        python3 -m pip install -q --no-index --find-links "$WHEELS" -e '.[test]' >>"$OUT/install.log" 2>&1
    else
        python3 -m pip install -q -e '.[all,test]' >>"$OUT/install.log" 2>&1
    fi
    PY=$(pick_python) || { log "install failed: see install.log"; exit 1; }
fi
log "python: $PY"

timeout 60 "$PY" scripts/gpu_check.py env "$OUT" >>"$OUT/gpu_check.log" 2>&1
log "env: exit $? — $("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get('device'), d['torch'], d['cuda'])" "$OUT/env.json" 2>&1)"

timeout 170 "$PY" -m pytest -m cuda -q -p no:cacheprovider --junitxml "$OUT/cuda-tests.xml" tests \
    >"$OUT/cuda-tests.log" 2>&1
log "pytest -m cuda: exit $? — $(tail -1 "$OUT/cuda-tests.log")"

# What is left of 8 minutes goes to the bench, keeping ~100 s for the memory search.
budget=$(( 380 - $(elapsed) )); [ "$budget" -lt 60 ] && budget=60
timeout $(( budget + 60 )) "$PY" scripts/gpu_check.py bench "$OUT" --budget-s "$budget" >>"$OUT/gpu_check.log" 2>&1
log "bench: exit $?, $(wc -l <"$OUT/bench.jsonl" 2>/dev/null || echo 0) runs"

timeout $(( 470 - $(elapsed) > 30 ? 470 - $(elapsed) : 30 )) "$PY" scripts/gpu_check.py memory "$OUT" \
    >>"$OUT/gpu_check.log" 2>&1
log "memory: exit $?"

"$PY" scripts/gpu_check.py summary "$OUT" >>"$OUT/gpu_check.log" 2>&1
log "done; summary in $OUT/summary.md"
