#!/usr/bin/env bash
# Run every benchmark in turn (about 10 minutes on 2 cores); each prints its own figures.
# Usage: benchmarks/run_all.sh [python]   (default: python on PATH)
# Exit status: 0 when every benchmark ran and met its target, else 1 (all still run).
set -u
cd "$(dirname "$0")/.."
PYTHON="${1:-python}"
if [ -z "${TIKTOKEN_CACHE_DIR:-}" ] && [ -d ../shared/tiktoken ]; then
    TIKTOKEN_CACHE_DIR="$(cd ../shared/tiktoken && pwd)"
    export TIKTOKEN_CACHE_DIR
fi
status=0
missed=()
for name in overhead latency_sweep rate_limited memory sweep_setup; do
    echo "=== benchmarks/$name.py"
    if ! "$PYTHON" "benchmarks/$name.py"; then
        status=1
        missed+=("$name")
    fi
    echo
done
if [ "$status" -ne 0 ]; then
    echo "target missed or run failed: ${missed[*]}"
fi
exit "$status"
