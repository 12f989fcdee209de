#!/usr/bin/env bash
# qdist across hosts with plain Open MPI mpirun (ssh between hosts, no batch system).
#
#   Launch/mpirun-hostfile.sh [-r RANKS_PER_HOST] [-t THREADS] HOSTFILE QDIST_ARGS...
#
#   Launch/mpirun-hostfile.sh hosts.txt env --json                  # check every collective first
#   Launch/mpirun-hostfile.sh -r 4 hosts.txt quantize --config Configs/quantize/smollm2-gptq-w4a16-asym.yaml \
#          --model ~/.cache/qdist/smollm2-135m-instruct --output out/w4
#   echo localhost > hosts.txt && Launch/mpirun-hostfile.sh -r 2 hosts.txt env   # one machine, 2 ranks
#
# HOSTFILE: one host per line (`#` comments and Open MPI's `slots=N` are allowed; slots are
# replaced by RANKS_PER_HOST). Every host must reach the others by passwordless ssh and see the
# qdist binary, the Swift runtime, the model and the recipe at the same paths (a shared
# filesystem). Run it from the repository root on the first host.
#
#   -r RANKS_PER_HOST  ranks on each host (default: $QDIST_RANKS_PER_HOST, else 4, at most the cores)
#   -t THREADS         BLAS threads per rank (default: $QDIST_THREADS, else cores / RANKS_PER_HOST,
#                      at least 1), so ranks × threads never oversubscribe a host's cores
# Cores per host are this host's (`nproc`) unless QDIST_CORES says otherwise (hosts are assumed
# alike). QDIST is the binary (default .build/release/qdist). The exit status is qdist's.
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
rpn=${QDIST_RANKS_PER_HOST:-}
threads=${QDIST_THREADS:-}
while getopts "r:t:h" opt; do
  case "$opt" in
    r) rpn=$OPTARG ;;
    t) threads=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
hostfile=$1
shift
[ -r "$hostfile" ] || { echo "mpirun-hostfile.sh: cannot read hostfile $hostfile" >&2; exit 2; }

qdist=${QDIST:-$PWD/.build/release/qdist}
[ -x "$qdist" ] || { echo "mpirun-hostfile.sh: no qdist binary at $qdist (set QDIST or swift build -c release)" >&2; exit 2; }
case "$qdist" in /*) ;; *) qdist=$PWD/$qdist ;; esac

hosts=()
while read -r host _; do
  case "$host" in ''|'#'*) continue ;; esac
  hosts+=("$host")
done <"$hostfile"
[ ${#hosts[@]} -gt 0 ] || { echo "mpirun-hostfile.sh: no hosts in $hostfile" >&2; exit 2; }

cores=${QDIST_CORES:-$(nproc)}
if [ -z "$rpn" ]; then rpn=$(( cores < 4 ? cores : 4 )); fi
[ "$rpn" -ge 1 ] 2>/dev/null || { echo "mpirun-hostfile.sh: ranks per host must be a positive number" >&2; exit 2; }
[ -n "$threads" ] || threads=$(( cores / rpn > 0 ? cores / rpn : 1 ))
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads

slots=$(mktemp)
trap 'rm -f "$slots"' EXIT
for h in "${hosts[@]}"; do echo "$h slots=$rpn"; done >"$slots"
ranks=$(( ${#hosts[@]} * rpn ))

# --bind-to none: mpirun would pin each rank to one core and its BLAS threads with it.
# --oversubscribe only matters when RANKS_PER_HOST exceeds a host's cores (then use -t 1).
cmd=(mpirun -n "$ranks" --hostfile "$slots" --map-by "ppr:$rpn:node" --bind-to none
     -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
[ "$rpn" -gt "$cores" ] && cmd+=(--oversubscribe)
[ "$(id -u)" = 0 ] && cmd+=(--allow-run-as-root)
cmd+=("$qdist" "$@")

echo "mpirun-hostfile.sh: ${#hosts[@]} host(s) × $rpn ranks = $ranks ranks, $threads BLAS threads per rank ($cores cores per host)"
echo "mpirun-hostfile.sh: ${cmd[*]}"
"${cmd[@]}"
status=$?
echo "mpirun-hostfile.sh: qdist $1 exited with status $status"
exit "$status"
