#!/usr/bin/env bash
# qdist under PBS Pro / Torque: one batch job runs one qdist command with Open MPI's mpirun over
# the hosts in $PBS_NODEFILE. Submit from the repository root (the job moves to $PBS_O_WORKDIR).
#
#   qsub Launch/pbs.sh                                          # quantize by $QDIST_CONFIG
#   qsub -v QDIST_MODEL=$HOME/models/smollm2,QDIST_OUTPUT=out/w4 Launch/pbs.sh
#   qsub -v QDIST_ARGS="eval --model out/w4 --data ../shared/data/wikitext-2/test.txt" Launch/pbs.sh
#   qsub -l nodes=4:ppn=16 -l walltime=06:00:00 -v QDIST_RANKS_PER_NODE=8 Launch/pbs.sh
#   bash Launch/pbs.sh env --json      # inside an interactive job (qsub -I): arguments work too
#
# qsub passes no arguments to a batch script, so the qdist command line comes from QDIST_ARGS
# (any subcommand, without the binary); with neither arguments nor QDIST_ARGS the job runs
# `qdist quantize --config $QDIST_CONFIG [--model $QDIST_MODEL] [--output $QDIST_OUTPUT]`
# (QDIST_CONFIG default: Configs/quantize/smollm2-gptq-w4a16-asym.yaml). QDIST_ARGS is split on
# spaces: paths in it must not contain any. The log is qdist.o<jobid> in the submit folder; its
# last lines say where the output went. The job's exit status is qdist's.
#
#   QDIST                 the binary (default: .build/release/qdist under $PBS_O_WORKDIR), the same
#                         path on every node
#   QDIST_RANKS_PER_NODE  ranks per node (default: 4, at most the node's slots in $PBS_NODEFILE)
#   QDIST_THREADS         BLAS threads per rank (default: slots per node / ranks per node, ≥ 1);
#                         OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to it, so ranks ×
#                         threads never exceed the cores PBS gave the job
#
#PBS -N qdist
#PBS -l nodes=1:ppn=8
#PBS -l walltime=02:00:00
#PBS -j oe
set -uo pipefail

say() { echo "pbs.sh: $*"; }
die() { echo "pbs.sh: error: $*" >&2; exit 2; }

if [ -z "${PBS_NODEFILE:-}" ] || [ ! -r "$PBS_NODEFILE" ]; then
  die "no \$PBS_NODEFILE: submit with qsub (or use Launch/mpirun-hostfile.sh)"
fi
cd "${PBS_O_WORKDIR:-.}" || die "cannot enter the submit folder ${PBS_O_WORKDIR:-.}"

qdist=${QDIST:-$PWD/.build/release/qdist}
[ -x "$qdist" ] || die "no qdist binary at $qdist (set QDIST, or swift build -c release)"

if [ $# -eq 0 ] && [ -n "${QDIST_ARGS:-}" ]; then
  read -r -a qargs <<<"$QDIST_ARGS"
  set -- "${qargs[@]}"
fi
if [ $# -eq 0 ]; then
  set -- quantize --config "${QDIST_CONFIG:-Configs/quantize/smollm2-gptq-w4a16-asym.yaml}"
  [ -n "${QDIST_MODEL:-}" ] && set -- "$@" --model "$QDIST_MODEL"
  [ -n "${QDIST_OUTPUT:-}" ] && set -- "$@" --output "$QDIST_OUTPUT"
fi

# $PBS_NODEFILE lists each host once per slot (core) it gave the job.
mapfile -t hosts < <(awk 'NF && !seen[$1]++ { print $1 }' "$PBS_NODEFILE")
slots=$(awk -v h="${hosts[0]}" '$1 == h' "$PBS_NODEFILE" | wc -l)
rpn=${QDIST_RANKS_PER_NODE:-$(( slots < 4 ? slots : 4 ))}
threads=${QDIST_THREADS:-$(( slots / rpn > 0 ? slots / rpn : 1 ))}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
ranks=$(( ${#hosts[@]} * rpn ))

hostfile=$(mktemp)
trap 'rm -f "$hostfile"' EXIT
for h in "${hosts[@]}"; do echo "$h slots=$rpn"; done >"$hostfile"

# --bind-to none: mpirun would pin each rank to one core and its BLAS threads with it.
cmd=(mpirun -n "$ranks" --hostfile "$hostfile" --map-by "ppr:$rpn:node" --bind-to none
     -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
[ "$(id -u)" = 0 ] && cmd+=(--allow-run-as-root)
cmd+=("$qdist" "$@")

say "job ${PBS_JOBID:-?}: ${#hosts[@]} node(s) × $rpn ranks = $ranks ranks, $threads BLAS threads per rank ($slots slots per node)"
say "$(date '+%F %T') ${cmd[*]}"
start=$(date +%s)
"${cmd[@]}"
status=$?
say "$(date '+%F %T') qdist $1 exited with status $status after $(( $(date +%s) - start )) s"

out=""
prev=""
for a in "$@"; do
  case "$a" in --output=*) out=${a#--output=} ;; esac
  [ "$prev" = --output ] && out=$a
  prev=$a
done
if [ -z "$out" ] && [ "$1" = quantize ]; then
  prev=""
  for a in "$@"; do
    case "$a" in --config=*) a=${a#--config=}; prev=--config ;; esac
    [ "$prev" = --config ] && [ -f "$a" ] && out=$(sed -n 's/^output:[[:space:]]*//p' "$a" | sed 's/[[:space:]]*#.*//; s/^["'\'']//; s/["'\'']$//' | head -n 1)
    prev=$a
  done
fi
if [ -n "$out" ]; then
  case "$out" in /*) ;; "~"/*) out=$HOME/${out#"~/"} ;; *) out=$PWD/$out ;; esac
  if [ "$status" = 0 ] && [ -e "$out" ]; then say "output: $out"; else say "no output written (intended: $out)"; fi
fi
jobid=${PBS_JOBID:-}
[ -n "$jobid" ] && say "log: ${PBS_O_WORKDIR:-$PWD}/${PBS_JOBNAME:-qdist}.o${jobid%%.*} (PBS copies it there when the job ends)"
exit "$status"
