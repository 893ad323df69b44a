#!/usr/bin/env bash
# Run the course's DP-FedAvg Flower app on Flower's Deployment Engine, all on 127.0.0.1:
# one SuperLink, N SuperNodes (node k holds partition k of N), then `flwr run`.
#
#   scripts/flower_local.sh [-n SUPERNODES] [-p BASE_PORT] [-t TIMEOUT_S] [-o OUT_DIR] [-c RUN_CONFIG]
#
#   -n  number of SuperNodes (default 3)
#   -p  first of N+1 consecutive ports (SuperLink, then one per SuperNode);
#       default: free ports picked by the operating system
#   -t  seconds the whole run may take before it is stopped (default 300)
#   -o  folder for logs, Flower's state and history.json (default: a new temp folder)
#   -c  extra run config, e.g. "num-rounds=3 noise-multiplier=1.0"
#
# Runtime dependency installation is off (the app's code comes from this checkout's
# environment, nothing is downloaded). Every process the script starts gets its own
# process group and is stopped on exit, on failure and on Ctrl-C. Exit status: 0 when
# the run finished and wrote history.json, non-zero otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${FLOWER_BIN:-$ROOT/.venv/bin}"
NUM_NODES=3
BASE_PORT=""
TIMEOUT=300
OUT=""
EXTRA_CONFIG=""
while getopts "n:p:t:o:c:h" opt; do
    case "$opt" in
        n) NUM_NODES="$OPTARG" ;;
        p) BASE_PORT="$OPTARG" ;;
        t) TIMEOUT="$OPTARG" ;;
        o) OUT="$OPTARG" ;;
        c) EXTRA_CONFIG="$OPTARG" ;;
        h) sed -n '2,17p' "$0"; exit 0 ;;
        *) sed -n '2,17p' "$0" >&2; exit 2 ;;
    esac
done
if ! [[ "$NUM_NODES" =~ ^[1-9][0-9]*$ ]]; then
    echo "flower_local: -n must be a positive integer, got '$NUM_NODES'" >&2; exit 2
fi
if ! [[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]]; then
    echo "flower_local: -t must be a positive integer, got '$TIMEOUT'" >&2; exit 2
fi
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/flower_local.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# Ports: the SuperLink's HTTP API (Fleet, Control and ServerApp APIs), then one
# ClientApp API port per SuperNode.
if [[ -n "$BASE_PORT" ]]; then
    PORTS=($(seq "$BASE_PORT" $((BASE_PORT + NUM_NODES))))
else
    PORTS=($("$BIN/python" - "$((NUM_NODES + 1))" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
))
fi
LINK_PORT="${PORTS[0]}"

export FLWR_TELEMETRY_ENABLED=0
export PATH="$BIN:$PATH"  # SuperLink and SuperNodes start flower-superexec, flwr-serverapp, ...
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PIDS=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.2
    done
    for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    echo "flower_local: stopped ${#PIDS[@]} process groups; logs in $OUT" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pause SECONDS: sleep in the background and wait for it, so Ctrl-C or a TERM runs its trap at
# once (bash runs a trap only after the foreground command it interrupted has finished).
pause() {
    sleep "$1" &
    wait "$!"
}

# start NAME CMD...: run CMD in its own session (so its children are stopped with it).
start() {
    local name="$1"; shift
    setsid "$@" >"$OUT/$name.log" 2>&1 &
    PIDS+=("$!")
}

echo "flower_local: SuperLink on 127.0.0.1:$LINK_PORT, $NUM_NODES SuperNodes, output in $OUT" >&2
FLWR_HOME="$OUT/superlink" start superlink "$BIN/flower-superlink" --insecure \
    --host 127.0.0.1 --port "$LINK_PORT" --disable-runtime-dependency-installation

for ((k = 0; k < NUM_NODES; k++)); do
    FLWR_HOME="$OUT/supernode-$k" start "supernode-$k" "$BIN/flower-supernode" --insecure \
        --superlink "127.0.0.1:$LINK_PORT" --host 127.0.0.1 --port "${PORTS[$((k + 1))]}" \
        --node-config "partition-id=$k num-partitions=$NUM_NODES"
done

# The flwr CLI reads its SuperLink connections from $FLWR_HOME/config.toml.
export FLWR_HOME="$OUT/cli"
mkdir -p "$FLWR_HOME"
cat >"$FLWR_HOME/config.toml" <<EOF
[superlink]
default = "local-deployment"

[superlink.local-deployment]
address = "127.0.0.1:$LINK_PORT"
insecure = true
EOF

deadline=$((SECONDS + TIMEOUT))
until "$BIN/python" - "$LINK_PORT" <<'EOF' 2>/dev/null
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
EOF
do
    if ((SECONDS > deadline)); then echo "flower_local: SuperLink did not start" >&2; exit 1; fi
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "flower_local: a process exited early" >&2; exit 1; }
    done
    pause 0.5
done

HISTORY="$OUT/history.json"
rm -f "$HISTORY"
start flwr_run "$BIN/flwr" run "$ROOT/flower" local-deployment --stream \
    --run-config "history-path=\"$HISTORY\" $EXTRA_CONFIG"
RUN_PID="${PIDS[-1]}"
while [[ ! -s "$HISTORY" ]]; do
    if ((SECONDS > deadline)); then
        echo "flower_local: no result after ${TIMEOUT}s; see $OUT/*.log" >&2; exit 1
    fi
    if ! kill -0 "$RUN_PID" 2>/dev/null; then
        pause 1
        [[ -s "$HISTORY" ]] && break
        echo "flower_local: flwr run ended without a result; see $OUT/flwr_run.log" >&2
        tail -n 20 "$OUT/flwr_run.log" >&2
        exit 1
    fi
    pause 0.5
done
"$BIN/python" - "$HISTORY" <<'EOF'
import json, sys
h = json.load(open(sys.argv[1]))
for r, acc, eps, m in zip(h["round"], h["accuracy"], h["epsilon"], h["clients"]):
    k = len(h["partitions"])
    print(f"round {r}: {m} of {k} clients sampled, test accuracy {acc:.3f}, epsilon {eps:.2f}")
print(f"federated evaluation accuracy {h['federated_accuracy']:.3f}")
EOF
echo "flower_local: done; result in $HISTORY" >&2
