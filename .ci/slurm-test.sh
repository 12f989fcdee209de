#!/usr/bin/env bash
# A real single-node Slurm on this machine, and Launch/slurm.sbatch run through it: a 2-rank GPTQ
# quantize of a tiny generated model, then checks of the job and of what it wrote.
#
#   bash .ci/slurm-test.sh                 # as root on Debian 12; QDIST=/path/to/qdist to pick a binary
#   QDIST_SLURM_KEEP=1 bash .ci/slurm-test.sh   # keep the job logs and outputs (/tmp/qdist-slurm-test.*)
#   QDIST_SLURM_CPUS=4 QDIST_SLURM_CPUS_PER_TASK=2 bash .ci/slurm-test.sh   # 2 BLAS threads per rank
#
# Installs slurm-wlm and munge with apt when missing, starts munged, slurmctld and slurmd on
# localhost (no systemd; config and state under $QDIST_SLURM_DIR, default /tmp/qdist-slurm,
# reached through SLURM_CONF so /etc/slurm stays untouched), waits for the node to be idle and
# submits `sbatch --wait Launch/slurm.sbatch quantize …` with 2 tasks. Asserts: the job is
# COMPLETED with exit code 0, the output folder has config.json with quantization_config and
# safetensors, the log shows world_size 2 and the launcher used, quantization_report.json says
# world_size 2 and `qdist eval` loads the output. Then the same job through the script's mpirun
# path (QDIST_LAUNCH=mpirun), and a job that must fail (the script's default command with a
# missing QDIST_CONFIG) so that a non-zero qdist status reaches the job's exit code and sbatch --wait. The daemons this script started are
# stopped on exit, and leftovers of an earlier run are stopped before the start: safe to rerun.
# The last line is `slurm-test: PASS (N s)`, `slurm-test: FAIL: why (N s)` (exit 1) or
# `slurm-test: SKIP: why` (exit 77, when not root).
set -Eeuo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
start=$(date +%s)
state=${QDIST_SLURM_DIR:-/tmp/qdist-slurm}
qdist=${QDIST:-$repo/.build/release/qdist}
data=${QDIST_CALIBRATION:-$repo/../shared/data/wikitext-2/valid.txt}
export SLURM_CONF=$state/slurm.conf
reason="" jobs_checked=0

say() { echo "slurm-test: $*"; }
fail() { reason=$*; exit 1; }
trap 'reason=${reason:-"line $LINENO: $BASH_COMMAND failed"}' ERR

if [ "$(id -u)" != 0 ]; then say "SKIP: needs root (apt, munged, slurmd)"; exit 77; fi
[ -f "$data" ] || { say "FAIL: no calibration text at $data"; exit 1; }

# A process is gone when /proc has no entry or it is a zombie (container without init reaping).
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# Stop the daemon whose pid is in file $1 if it still runs program $2 (a reused pid is left alone).
stop_pidfile() {
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1" 2>/dev/null) || return 0
  if [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$1"
}
stop_all() {
  local pid
  pid=$(cat "$state/slurmctld.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && alive "$pid" && [ -f "$SLURM_CONF" ]; then
    # Jobs first, so that no slurmstepd or qdist rank outlives the daemons.
    scancel --quiet --full --state=RUNNING,PENDING --user=root 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  stop_pidfile "$state/slurmd.pid" slurmd
  stop_pidfile "$state/slurmctld.pid" slurmctld
  if [ -f "$state/munged.ours" ]; then
    stop_pidfile /run/munge/munged.pid munged
    rm -f "$state/munged.ours"
  fi
}
finish() {
  local rc=$?
  trap - ERR EXIT
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    for f in "$work"/*.out "$state/slurmctld.log" "$state/slurmd.log"; do
      [ -f "$f" ] && { echo "--- tail $f"; tail -n 25 "$f"; }
    done
  fi
  stop_all
  if [ "$rc" = 0 ] && [ -z "${QDIST_SLURM_KEEP:-}" ]; then rm -rf "$work"; fi
  if [ "$rc" = 0 ]; then say "PASS ($jobs_checked jobs, $(( $(date +%s) - start )) s)"
  elif [ "$rc" != 77 ]; then say "files kept in $work"; say "FAIL: ${reason:-exit status $rc} ($(( $(date +%s) - start )) s)"; rc=1
  fi
  exit "$rc"
}
work=$(mktemp -d /tmp/qdist-slurm-test.XXXXXX)
trap finish EXIT
trap 'reason="interrupted"; exit 130' INT TERM

# 1. Packages (idempotent).
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in slurm-wlm munge; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. The binary (CI builds it before this script; a run by hand builds it once here).
if [ ! -x "$qdist" ]; then
  [ -n "${QDIST:-}" ] && fail "QDIST=$QDIST is not an executable"
  say "building $qdist"
  swift build -c release --product qdist
fi

# 3. Daemons: stop an earlier run's, then a fresh state and config.
mkdir -p "$state"
stop_all
rm -rf "$state/ctld" "$state/spool" "$state"/*.log
mkdir -p "$state/ctld" "$state/spool"
# config_overrides lets the node claim more CPUs than it has (at least 2, for 2 tasks).
cpus=${QDIST_SLURM_CPUS:-$(nproc)}; [ "$cpus" -ge 2 ] || cpus=2
mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
cat >"$state/slurm.conf" <<EOF
# Written by .ci/slurm-test.sh: one node, localhost, no systemd, no accounting.
ClusterName=qdist-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running; using it"
else
  runuser -u munge -- /usr/sbin/munged
  touch "$state/munged.ours"
  munge -n </dev/null | unmunge >/dev/null || fail "munged does not answer"
fi
/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost
node=""
for _ in $(seq 150); do
  node=$(sinfo -h -o %T 2>/dev/null || true)
  [ "$node" = idle ] && break
  sleep 0.2
done
[ "$node" = idle ] || fail "node not idle after 30 s (sinfo: ${node:-no answer})"
say "slurm up ($(sinfo -h -o '%N %c CPUs %T'), $(( $(date +%s) - start )) s)"

# 4. A tiny model and a small GPTQ recipe (12 windows × 64 tokens: 6 per rank).
"$qdist" tiny-model "$work/tiny" --layers 2 --hidden 64 --heads 4 --kv-heads 2 --intermediate 128 --seed 7 >/dev/null
cat >"$work/recipe.yaml" <<EOF
format: compressed-tensors
calibration: {data: $data, samples: 12, seq_len: 64, seed: 1}
sequential: block
recipe:
  GPTQModifier:
    targets: [Linear]
    ignore: [lm_head]
    actorder: static
    config_groups:
      g0: {targets: [Linear], weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}}
EOF
export QDIST=$qdist
cpt=${QDIST_SLURM_CPUS_PER_TASK:-1}
two_ranks=(--nodes=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task="$cpt" --time=5)

job_field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# check_quantize ID LOG OUT LAUNCHER: the assertions on a finished 2-rank quantize job.
check_quantize() {
  local id=$1 log=$2 out=$3 launcher=$4 jstate ecode
  jstate=$(job_field "$id" JobState) ecode=$(job_field "$id" ExitCode)
  [ "$jstate" = COMPLETED ] || fail "job $id state $jstate, expected COMPLETED"
  [ "$ecode" = 0:0 ] || fail "job $id exit code $ecode, expected 0:0"
  [ -f "$log" ] || fail "job $id wrote no log at $log"
  grep -q "slurm.sbatch: .*$launcher" "$log" || fail "job $id log does not show the launcher '$launcher'"
  grep -q "slurm.sbatch: .* 2 ranks, $cpt cpus per rank, $cpt BLAS threads per rank" "$log" \
    || fail "job $id log does not show 2 ranks with $cpt BLAS threads each"
  grep -Eq '"world_size": *2([^0-9]|$)' "$log" || fail "job $id log does not show world_size 2"
  grep -q "slurm.sbatch: output: $out\$" "$log" || fail "job $id log does not say where the output went"
  grep -q quantization_config "$out/config.json" 2>/dev/null || fail "no quantization_config in $out/config.json"
  compgen -G "$out/*.safetensors" >/dev/null || fail "no safetensors in $out"
  grep -Eq '"world_size": *2([^0-9]|$)' "$out/quantization_report.json" || fail "$out/quantization_report.json: world_size is not 2"
  "$qdist" eval --model "$out" --data "$data" --seq-len 64 --windows 4 --json >"$work/eval.json" 2>"$work/eval.err" \
    || fail "qdist eval could not load $out"
  grep -q '"ppl"' "$work/eval.json" || fail "qdist eval printed no ppl for $out"
  jobs_checked=$((jobs_checked + 1))
  grep -E '^slurm\.sbatch:|"world_size"' "$log" | sed 's/^/  | /'
  say "job $id ($launcher): COMPLETED 0:0, world_size 2, $(grep -o '"ppl"[^,}]*' "$work/eval.json")"
}
# wait_job ID: poll until the job leaves the queue (faster than sbatch --wait's 10 s polling).
wait_job() {
  for _ in $(seq 600); do [ -z "$(squeue -h -j "$1" -o %i 2>/dev/null)" ] && return 0; sleep 0.2; done
  fail "job $1 still in the queue after 120 s"
}

# 5. The job under test: sbatch --wait, launcher chosen by the script (srun --mpi=pmix here).
expect=mpirun
srun --mpi=list 2>&1 | grep -qw pmix && expect="srun --mpi=pmix"
set +e
id=$(timeout 300 sbatch --wait --parsable --job-name=qdist-ci --output="$work/%x-%j.out" "${two_ranks[@]}" \
     Launch/slurm.sbatch quantize --config "$work/recipe.yaml" --model "$work/tiny" --output "$work/q-auto" --json)
rc=$?
set -e
id=${id%%;*}
[ -n "$id" ] || fail "sbatch printed no job id (status $rc)"
[ "$rc" = 0 ] || fail "sbatch --wait exited with $rc for job $id"
check_quantize "$id" "$work/qdist-ci-$id.out" "$work/q-auto" "$expect"

# 6. The script's other launcher: mpirun inside the allocation.
id=$(QDIST_LAUNCH=mpirun sbatch --parsable --job-name=qdist-ci --output="$work/%x-%j.out" "${two_ranks[@]}" \
     Launch/slurm.sbatch quantize --config "$work/recipe.yaml" --model "$work/tiny" --output "$work/q-mpirun" --json)
id=${id%%;*}
wait_job "$id"
check_quantize "$id" "$work/qdist-ci-$id.out" "$work/q-mpirun" "mpirun"

# 7. A failing qdist fails the job, and sbatch --wait reports it. No arguments: the script's
#    default command, quantize with QDIST_CONFIG / QDIST_MODEL / QDIST_OUTPUT from the environment.
set +e
id=$(QDIST_CONFIG=$work/missing.yaml QDIST_MODEL=$work/tiny QDIST_OUTPUT=$work/q-none \
     timeout 120 sbatch --wait --parsable --job-name=qdist-ci --output="$work/%x-%j.out" "${two_ranks[@]}" \
     Launch/slurm.sbatch)
rc=$?
set -e
id=${id%%;*}
[ "$rc" != 0 ] || fail "sbatch --wait exited 0 for a job whose qdist failed (job $id)"
[ "$(job_field "$id" JobState)" = FAILED ] || fail "job $id (missing recipe) state $(job_field "$id" JobState), expected FAILED"
[ "$(job_field "$id" ExitCode)" != 0:0 ] || fail "job $id (missing recipe) exit code 0:0"
[ ! -e "$work/q-none" ] || fail "a failed quantize left $work/q-none"
grep -q "quantize --config $work/missing.yaml --model $work/tiny --output $work/q-none" "$work/qdist-ci-$id.out" \
  || fail "job $id log does not show the default command built from QDIST_CONFIG/QDIST_MODEL/QDIST_OUTPUT"
grep -q "missing.yaml: cannot read" "$work/qdist-ci-$id.out" || fail "job $id log does not name the missing recipe"
jobs_checked=$((jobs_checked + 1))
say "job $id (missing recipe): FAILED $(job_field "$id" ExitCode), sbatch --wait exit $rc"
