#!/bin/sh
# Run by docker/compose.yaml in temporalio/admin-tools: `schema` creates and migrates Temporal's
# two PostgreSQL databases (what the deprecated auto-setup image did); `namespace` creates the
# default namespace and durable-train's search attributes. Both are safe to run again.
set -eu
# The password comes from SQL_PASSWORD (set in compose.yaml).
sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$DB_PORT" "$@"; }
case "${1:-}" in
  schema)
    nc -z -w 10 "$POSTGRES_SEEDS" "$DB_PORT"
    for db in temporal:temporal temporal_visibility:visibility; do
      name=${db%%:*} dir=${db##*:}
      sql --db "$name" create || true  # already there on a restart
      sql --db "$name" setup-schema -v 0.0 || true
      sql --db "$name" update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
    done
    ;;
  namespace)
    temporal operator namespace describe --namespace default >/dev/null 2>&1 ||
      temporal operator namespace create --namespace default --retention 168h
    for a in DurableTrainStatus:Keyword DurableTrainEpoch:Int DurableTrainBestMetric:Double; do
      temporal operator search-attribute create --namespace default --name "${a%%:*}" --type "${a##*:}" || true
    done
    ;;
  *) echo "usage: temporal-setup.sh schema|namespace" >&2; exit 2 ;;
esac
