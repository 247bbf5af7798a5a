#!/usr/bin/env bash
# Starts the Temporal dev server headless on 127.0.0.1:7233 (UI off), with durable-train's search
# attributes and a database file, so it keeps its workflows across its own restarts.
#   DT_SERVER_PORT (7233)  DT_SERVER_DB (.cache/temporal-dev.db)  TEMPORAL_CLI_PATH
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPORAL="${TEMPORAL_CLI_PATH:-$(cat "$ROOT/.cache/temporal-path" 2>/dev/null || command -v temporal)}"
PORT="${DT_SERVER_PORT:-7233}"
DB="${DT_SERVER_DB:-$ROOT/.cache/temporal-dev.db}"
exec "$TEMPORAL" server start-dev --headless --ip 127.0.0.1 --port "$PORT" --db-filename "$DB" \
  --log-level warn \
  --search-attribute DurableTrainStatus=Keyword \
  --search-attribute DurableTrainEpoch=Int \
  --search-attribute DurableTrainBestMetric=Double \
  "$@"
