#!/usr/bin/env bash
# A real one-node Slurm cluster on loopback, for the Slurm integration tests and for trying
# `hydra/launcher=slurm` on a laptop. Debian/Ubuntu, run as root (as in CI and docker).
#
#   bash tests/slurm/cluster.sh install   # Debian packages slurmctld slurmd slurm-client (~10 s)
#   bash tests/slurm/cluster.sh start     # writes $AIL_SLURM_DIR/slurm.conf, starts both daemons
#   export SLURM_CONF=${AIL_SLURM_DIR:-/tmp/ail-slurm}/slurm.conf   # for sbatch/squeue/submitit
#   bash tests/slurm/cluster.sh stop      # stops the daemons by their pid files
#   bash tests/slurm/cluster.sh status
#
# No systemd, no munge (auth/none), no cgroups, no accounting database: enough for submitit's
# sbatch / squeue / scontrol requeue round trips. The daemons only listen on 127.0.0.1.
set -euo pipefail

dir="${AIL_SLURM_DIR:-/tmp/ail-slurm}"
conf="$dir/slurm.conf"

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "cluster.sh: installing Slurm needs root (apt-get); run as root or install slurmctld slurmd slurm-client" >&2
        return 1
    fi
    command -v apt-get >/dev/null || { echo "cluster.sh: no apt-get on this machine" >&2; return 1; }
    # Package scripts must not try to start services (no systemd here).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    pkgs=(slurmctld slurmd slurm-client)
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; }
}

write_conf() {
    mkdir -p "$dir/state" "$dir/spool"
    # The node line comes from slurmd -C (CPUs, sockets, memory), with the name pinned to localhost.
    node="$(slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]*/NodeName=localhost NodeAddr=127.0.0.1/')"
    cat > "$conf" <<EOF
ClusterName=ail-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=${AIL_SLURMCTLD_PORT:-6817}
SlurmdPort=${AIL_SLURMD_PORT:-6818}
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

pid_of() { [ -s "$dir/$1.pid" ] && cat "$dir/$1.pid"; }
alive() { local p; p="$(pid_of "$1" || true)"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start() {
    install
    stop >/dev/null 2>&1 || true
    # A fresh state dir: job ids restart at 1, so stale submitit results can never be picked up.
    rm -rf "$dir/state" "$dir/spool"
    write_conf
    export SLURM_CONF="$conf"
    slurmctld -f "$conf"
    slurmd -f "$conf" -N localhost
    for _ in $(seq 1 100); do
        if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            echo "slurm up: export SLURM_CONF=$conf"
            return 0
        fi
        sleep 0.1
    done
    echo "cluster.sh: the node did not become idle; logs in $dir" >&2
    sinfo >&2 || true
    return 1
}

stop() {
    for d in slurmd slurmctld; do
        if alive "$d"; then kill "$(pid_of "$d")"; fi
    done
    for _ in $(seq 1 50); do
        alive slurmd || alive slurmctld || return 0
        sleep 0.1
    done
    for d in slurmd slurmctld; do alive "$d" && kill -9 "$(pid_of "$d")"; done
    return 0
}

status() {
    export SLURM_CONF="$conf"
    for d in slurmctld slurmd; do
        if alive "$d"; then echo "$d: running (pid $(pid_of "$d"))"; else echo "$d: stopped"; fi
    done
    alive slurmctld && sinfo || true
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
