#!/bin/sh
# Secrets as files, never as URL literals: for every VAR_FILE in the environment (Docker secrets at
# /run/secrets/..., Kubernetes Secret volumes), export VAR with the file's content, then run the
# command. Database URLs carry no password; libpq (psycopg, under SQLAlchemy, MLflow and Foreseer)
# reads it from PGPASSWORD.
set -eu
for name in PGPASSWORD MLFLOW_AUTH_ADMIN_PASSWORD RAY_AUTH_TOKEN; do
    file=$(printenv "${name}_FILE" || true)
    if [ -n "$file" ]; then
        if [ ! -r "$file" ]; then
            echo "foreseer-entrypoint: ${name}_FILE=$file is not a readable file" >&2
            exit 2
        fi
        export "$name=$(cat "$file")"
        unset "${name}_FILE"
    fi
done
exec "$@"
