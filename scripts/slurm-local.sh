#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (root, Debian 12, no systemd, no cgroups), for running
# circuitry's SLURM path locally and in CI. On a real cluster none of this is needed.
#
# Usage:
#   scripts/slurm-local.sh install          apt-get slurm-wlm and munge (skipped if present)
#   scripts/slurm-local.sh start DIR        config, state, spool, logs and pids under DIR; prints
#                                           the exports callers need: eval "$(... start DIR)"
#   scripts/slurm-local.sh stop DIR         cancels jobs, stops the daemons start started
#   scripts/slurm-local.sh wait JOBID...    waits until the jobs (array jobs: every task) have
#                                           left the queue; fails unless all ended COMPLETED
# Environment: SLURM_CONF (wait, and every sbatch/squeue: DIR/slurm.conf), SLURM_LOCAL_TIMEOUT
# (wait's bound in seconds, default 3600), SLURM_LOCAL_POLL (seconds between polls, default 2).
set -euo pipefail

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*" >&2; }

# True if the pid in file $1 is a live process.
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

absdir() { mkdir -p "$1" && (cd "$1" && pwd); }

cmd_install() {
  if command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  local pkgs=(slurm-wlm munge)
  # The package lists are usually there already; refresh them only when they are not enough.
  apt-get install -y --no-install-recommends "${pkgs[@]}" ||
    { apt-get update && apt-get install -y --no-install-recommends "${pkgs[@]}"; }
}

write_conf() {
  local dir=$1 host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # slurmd checks RealMemory against what it measures itself; a larger value drains the node.
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
  [ -n "$mem" ] || mem=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-local.sh start; rewritten on every start.
ClusterName=circuitry-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# No cgroups and no systemd here: track processes by /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A node that was down (e.g. after a restart) comes back when its slurmd registers.
ReturnToService=2
# Finished jobs stay visible to scontrol for a day, so wait can read how they ended
# (no accounting; the default 300 s is shorter than some experiments take to be waited on).
MinJobAge=86400
# A job whose dependency failed is cancelled instead of pending forever
# (reason DependencyNeverSatisfied), so wait terminates. 22.05 reads it here only: in
# SchedulerParameters it is silently ignored.
DependencyParameters=kill_invalid_depend
# No mail program is installed; the default one makes slurmctld log an error.
MailProg=/bin/true
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
  local dir=$1
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0 # someone else's munged; leave it to them
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  # As Debian's init script does: munged runs as munge, which owns its key and directories.
  runuser -u munge -- munged
  touch "$dir/run/munged.started"
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

show_logs() {
  local dir=$1 f
  for f in "$dir/log/slurmctld.log" "$dir/log/slurmd.log" /var/log/munge/munged.log; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 30 "$f" >&2; }
  done
  return 0
}

cmd_start() {
  [ $# -eq 1 ] || die "usage: start DIR"
  local dir host state
  dir=$(absdir "$1")
  host=$(hostname -s)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
  command -v slurmctld >/dev/null || die "slurm is not installed: run '$0 install'"
  write_conf "$dir"
  export SLURM_CONF=$dir/slurm.conf
  start_munged "$dir" || { show_logs "$dir"; die "munged did not come up"; }
  # The state dir is reused, so job ids keep counting up across restarts.
  alive "$dir/run/slurmctld.pid" || slurmctld -f "$SLURM_CONF" ||
    { show_logs "$dir"; die "slurmctld failed to start"; }
  alive "$dir/run/slurmd.pid" || slurmd -f "$SLURM_CONF" ||
    { show_logs "$dir"; die "slurmd failed to start"; }
  for _ in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case "$state" in
      idle | mixed | allocated) break ;;
      # Left drained by an earlier run (e.g. different memory): ReturnToService does not undo that.
      drain* | down*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    state=
    sleep 1
  done
  if [ -z "$state" ]; then
    sinfo >&2 || true
    show_logs "$dir"
    die "node $host is not idle after 60 s"
  fi
  say "node $host is $state"
  echo "export SLURM_CONF=$SLURM_CONF"
}

# Sends TERM to the pid in file $1 and waits up to 15 s for it to exit, then KILLs it.
stop_pid() {
  local f=$1 pid
  alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

cmd_stop() {
  [ $# -eq 1 ] || die "usage: stop DIR"
  local dir=$1
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  export SLURM_CONF=$dir/slurm.conf
  # Running jobs' slurmstepd outlives slurmd; cancel the jobs so nothing is left running.
  if alive "$dir/run/slurmctld.pid" && [ -n "$(squeue -h -o %A 2>/dev/null)" ]; then
    say "cancelling the jobs still queued"
    squeue -h -o %A | sort -u | xargs -r scancel --full 2>/dev/null || true
    for _ in $(seq 30); do
      [ -z "$(squeue -h -t running,completing -o %A 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_pid "$dir/run/slurmd.pid"
  stop_pid "$dir/run/slurmctld.pid"
  if [ -e "$dir/run/munged.started" ]; then
    stop_pid /run/munge/munged.pid
    rm -f "$dir/run/munged.started"
  fi
}

# Prints "STATE REASON EXITCODE JOBID" for each record of job $1 (an array job has one per task,
# or one for its still-pending tasks), or "UNKNOWN" if slurmctld has forgotten it; fails when
# slurmctld cannot be asked (2: no slurm.conf found, i.e. SLURM_CONF is not set).
job_records() {
  local out
  if out=$(scontrol -o show job "$1" 2>&1); then
    awk '{
      delete f
      for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
      id = ("ArrayTaskId" in f) ? f["ArrayJobId"] "_" f["ArrayTaskId"] : f["JobId"]
      print f["JobState"], f["Reason"], f["ExitCode"], id
    }' <<<"$out"
  elif grep -q 'Invalid job id' <<<"$out"; then
    echo UNKNOWN
  elif grep -q 'configuration source' <<<"$out"; then
    echo "$out" >&2
    return 2
  else
    echo "$out" >&2
    return 1
  fi
}

cmd_wait() {
  [ $# -ge 1 ] || die "usage: wait JOBID..."
  local timeout=${SLURM_LOCAL_TIMEOUT:-3600} poll=${SLURM_LOCAL_POLL:-2}
  local start=$SECONDS errors_since='' id recs rc pending failed state reason code jid
  while :; do
    pending=0
    failed=()
    for id in "$@"; do
      rc=0
      recs=$(job_records "$id") || rc=$?
      [ "$rc" != 2 ] || die "no slurm.conf: export SLURM_CONF=DIR/slurm.conf (printed by start)"
      if [ "$rc" != 0 ]; then
        # A restarting slurmctld answers again within seconds; a wrong SLURM_CONF never does.
        errors_since=${errors_since:-$SECONDS}
        [ $((SECONDS - errors_since)) -lt 60 ] || die "slurmctld unreachable for 60 s"
        pending=1
        continue
      fi
      errors_since=''
      while read -r state reason code jid; do
        case "$state" in
          COMPLETED) ;;
          UNKNOWN) failed+=("$id:UNKNOWN(purged or never submitted)") ;;
          PENDING)
            # Without kill_invalid_depend such a job would stay pending forever.
            if [ "$reason" = DependencyNeverSatisfied ]; then
              failed+=("$jid:PENDING($reason)")
            else
              pending=1
            fi
            ;;
          RUNNING | CONFIGURING | COMPLETING | SUSPENDED | REQUEUED* | RESIZING | SIGNALING | \
            STAGE_OUT | STOPPED | POWER_UP_NODE | UPDATE_DB)
            pending=1
            ;;
          *) failed+=("$jid:$state(reason=$reason,exit=$code)") ;;
        esac
      done <<<"$recs"
    done
    if [ "$pending" = 0 ]; then
      if [ ${#failed[@]} -gt 0 ]; then
        say "not completed: ${failed[*]}"
        return 1
      fi
      return 0
    fi
    [ $((SECONDS - start)) -lt "$timeout" ] || die "jobs $* still queued after ${timeout}s"
    sleep "$poll"
  done
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  wait) shift; cmd_wait "$@" ;;
  *) die "usage: $0 install | start DIR | stop DIR | wait JOBID..." ;;
esac
