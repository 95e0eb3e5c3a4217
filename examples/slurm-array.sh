#!/usr/bin/env bash
# One clipgen batch shard per SLURM array task, all writing into one shared folder.
#
#   sbatch examples/slurm-array.sh            (edit the paths and resources below first)
#
# Each task takes every 8th prompt of prompts.txt (--shard auto reads SLURM_ARRAY_TASK_ID,
# _COUNT and _MIN). A task that dies or hits its time limit keeps its finished prompts and
# its interrupted one's state.pt; resubmitting the same script finishes the rest (--resume
# skips what any task finished). SLURM sends SIGTERM before the time limit: clipgen saves
# the running prompt's state then and exits 130.
#SBATCH --job-name=clipgen
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=logs/clipgen-%A_%a.log
set -euo pipefail

PROMPTS=${PROMPTS:-$HOME/clipgen/prompts.txt}     # the batch file, on a shared filesystem
OUT=${OUT:-$HOME/clipgen/outputs}                 # the shared output folder
VENV=${VENV:-$HOME/clipgen/.venv}                 # where clipgen is installed

export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
"$VENV/bin/clipgen" batch "$PROMPTS" --preset vqgan --out "$OUT" --shard auto --resume --quiet
