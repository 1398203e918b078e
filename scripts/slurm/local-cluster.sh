#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for lookm's tests and for trying
# scripts/slurm/submit.sh: munged, slurmctld and slurmd from Debian's packages, started by hand (no
# systemd needed). Root only.
#
#   scripts/slurm/local-cluster.sh start   # installs the packages if missing; waits for an idle node
#   scripts/slurm/local-cluster.sh stop    # stops exactly what start started, removes its files
#   scripts/slurm/local-cluster.sh status
#
# State (config, spool, logs, pids) lives in $LOOKM_SLURM_DIR (default /tmp/lookm-slurm). The config
# is also linked at /etc/slurm/slurm.conf so sbatch/squeue find it, but only when no slurm.conf is
# there already: on a machine with a real Slurm, start refuses instead of touching it.
set -euo pipefail
state=${LOOKM_SLURM_DIR:-/tmp/lookm-slurm}
conf=/etc/slurm/slurm.conf
marker="# lookm local cluster: $state"

die() { echo "local-cluster: $*" >&2; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Waits until a daemon's pid file names a live process (slurmd/slurmctld return before writing it).
wait_pid() {
    local file=$1 name=$2 pid
    for _ in $(seq 1 100); do
        pid=$(cat "$file" 2>/dev/null || true)
        if alive "$pid"; then echo "$pid"; return 0; fi
        sleep 0.1
    done
    die "$name did not start; see $state/log"
}

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root (it starts system daemons)"
    if [ -f "$state/started" ]; then die "already started (state in $state); stop it first"; fi
    if [ -e "$conf" ] && ! grep -qF "$marker" "$conf" 2>/dev/null; then
        die "$conf exists and is not ours: this machine has a Slurm configuration already"
    fi
    local missing=()
    for p in slurmctld slurmd slurm-client munge; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "local-cluster: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi

    rm -rf "$state"
    mkdir -p "$state"/{spool/ctld,spool/d,log,run}
    : > "$state/started"          # what stop must undo, one "kind value" per line

    local host cpus mem
    host=$(hostname -s)
    if ! getent hosts "$host" >/dev/null; then
        echo "127.0.1.1 $host $marker" >> /etc/hosts
        echo "hosts $host" >> "$state/started"
    fi
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.95 }' /proc/meminfo)

    # munge: reuse a running one (another service may need it), else start ours.
    if ! (munge -n | unmunge) >/dev/null 2>&1; then
        mkdir -p /run/munge && chown munge: /run/munge
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
        echo "munged $(wait_pid /run/munge/munged.pid munged)" >> "$state/started"
        (munge -n | unmunge) >/dev/null 2>&1 || die "munge does not work; see /var/log/munge"
    fi

    cat > "$state/slurm.conf" <<CONF
$marker
ClusterName=lookm
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MaxArraySize=100001
MinJobAge=300
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    mkdir -p /etc/slurm
    ln -sf "$state/slurm.conf" "$conf"
    echo "conf $conf" >> "$state/started"

    slurmctld
    echo "slurmctld $(wait_pid "$state/run/slurmctld.pid" slurmctld)" >> "$state/started"
    slurmd
    echo "slurmd $(wait_pid "$state/run/slurmd.pid" slurmd)" >> "$state/started"

    for _ in $(seq 1 300); do
        if sinfo -h -o %T 2>/dev/null | grep -q '^idle'; then
            echo "local-cluster: up: node $host, $cpus CPUs, $mem MiB (state in $state)" >&2
            return 0
        fi
        sleep 0.1
    done
    die "the node did not become idle in 30 s; see $state/log"
}

stop() {
    [ -f "$state/started" ] || { echo "local-cluster: not started (no $state/started)" >&2; return 0; }
    # Undo in reverse order: daemons first (by the pid recorded at start, never by name).
    tac "$state/started" | while read -r kind value; do
        case $kind in
            slurmd|slurmctld|munged)
                if alive "$value"; then
                    kill "$value"
                    for _ in $(seq 1 150); do alive "$value" || break; sleep 0.1; done
                    if alive "$value"; then kill -9 "$value"; fi
                fi ;;
            conf) if [ "$(readlink "$value")" = "$state/slurm.conf" ]; then rm -f "$value"; fi ;;
            hosts) sed -i "\|$marker\$|d" /etc/hosts ;;
        esac
    done
    rm -rf "$state"
    echo "local-cluster: stopped" >&2
}

status() {
    [ -f "$state/started" ] || { echo "not started"; return 1; }
    cat "$state/started"
    sinfo
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
