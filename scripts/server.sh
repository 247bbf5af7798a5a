#!/usr/bin/env bash
# Starts the Temporal dev server on 127.0.0.1:7233 with its Web UI (http://127.0.0.1:8233), with
# durable-train's search attributes and a database file, so it keeps its workflows across its own
# restarts.
#   DT_SERVER_PORT (7233)  DT_SERVER_UI_PORT (8233)  DT_SERVER_HEADLESS=1 (no UI)
#   DT_SERVER_DB (.cache/temporal-dev.db)  TEMPORAL_CLI_PATH
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPORAL="${TEMPORAL_CLI_PATH:-$(cat "$ROOT/.cache/temporal-path" 2>/dev/null || command -v temporal)}"
PORT="${DT_SERVER_PORT:-7233}"
DB="${DT_SERVER_DB:-$ROOT/.cache/temporal-dev.db}"
UI_PORT="${DT_SERVER_UI_PORT:-8233}"
if [[ "${DT_SERVER_HEADLESS:-}" == "1" ]]; then
  UI_ARGS=(--headless)
else
  UI_ARGS=(--ui-ip 127.0.0.1 --ui-port "$UI_PORT")
  echo "[server] Temporal Web UI: http://127.0.0.1:$UI_PORT/namespaces/default/workflows (runs: DurableTrainStatus=\"training\")" >&2
fi
exec "$TEMPORAL" server start-dev "${UI_ARGS[@]}" --ip 127.0.0.1 --port "$PORT" --db-filename "$DB" \
  --log-level warn \
  --search-attribute DurableTrainStatus=Keyword \
  --search-attribute DurableTrainEpoch=Int \
  --search-attribute DurableTrainBestMetric=Double \
  "$@"
