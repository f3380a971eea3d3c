#!/bin/bash
# Runs inside the VM (see run.sh): one PHASE per boot, because IPVS keeps deleted
# destinations in a trash list that every later destination add walks (ip_vs_trash_get_dest),
# so a run after `ipvsadm -C` is slowed by the one before it. Prints lines starting "BENCH".
set -euo pipefail
N=${N:-10000}; D=${D:-10}; K=${K:-1000}; KE=${KE:-200}
now() { echo "$EPOCHREALTIME"; }
count() { ipvsadm -Ln | grep -c '^TCP' || true; }
case "$PHASE" in
  restore)  # baseline: ipvsadm -R of the same rules, from empty
    ipvs_bench rules "$N" "$D" > /tmp/rules
    t0=$(now); ipvsadm -R < /tmp/rules; t1=$(now)
    [ "$(count)" -eq "$N" ] || { echo "ipvsadm -R did not program $N services"; exit 1; }
    echo "BENCH restore ${N}x${D}: ipvsadm -R $(echo "$t1 $t0" | awk '{printf "%.3f", $1 - $2}') s" ;;
  program)
    echo "BENCH $(ipvs_bench program "$N" "$D")"
    [ "$(count)" -eq "$N" ] || { echo "nodeagent did not program $N services"; exit 1; } ;;
  latency)  # 1,000 services, then grown to N in the same VM: K changes each, after W untimed
    ipvs_bench latency 1000 "$D" "$K" "${W:-500}" "$N" "${REPEAT:-1}" | sed 's/^/BENCH /' ;;
  ipvsadm-e)
    echo "BENCH $(ipvs_bench ipvsadm-e "$N" "$D" "$KE")" ;;
  rss)
    mkdir -p /tmp/na/state
    ipvs_bench services "$N" "$D" > /tmp/na/services.yaml
    cat > /tmp/na/config.yaml <<CFG
agent: {state_dir: /tmp/na/state}
control: {socket: /tmp/na/agent.sock}
sysctl: {enabled: false}
ipvs: {enabled: true, services_file: /tmp/na/services.yaml}
CFG
    t0=$(now)
    nodeagentd --config /tmp/na/config.yaml > /tmp/na/agent.log 2>&1 &
    pid=$!
    for i in $(seq 1 1200); do
      grep -q "applied" /tmp/na/agent.log && [ "$(count)" -eq "$N" ] && break
      sleep 1
    done
    t1=$(now)
    sleep 3
    mem() { grep -E 'VmRSS|VmHWM|RssAnon|RssFile' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ' '; }
    echo "BENCH daemon ${N}x${D} from a services file: in sync after $(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}') s; $(mem)"
    # Idle through one periodic resync (full kernel read, default every 60 s).
    sleep ${IDLE:-65}
    echo "BENCH daemon ${N}x${D} after a resync: $(mem)"
    # A reload: SIGHUP after one endpoint's weight changed in the file.
    sed -i '0,/port: 8080}/s//port: 8080, weight: 3}/' /tmp/na/services.yaml
    kill -HUP $pid
    for i in $(seq 1 120); do grep -q "1 changed" /tmp/na/agent.log && break; sleep 1; done
    sleep 3
    echo "BENCH daemon ${N}x${D} after SIGHUP with one change: $(mem)"
    grep -E "applied|changed|rror" /tmp/na/agent.log | tail -5
    kill $pid; wait $pid || true ;;
esac
