#!/bin/bash
# Runs once, when the postgres container initialises an empty data volume
# (/docker-entrypoint-initdb.d). Creates one role + database for the Prefect server
# and one for the resistomics catalog, so neither can touch the other's tables.
# Passwords come from the container environment (compose.yaml, values in deploy/.env);
# psql variables (:'name') quote them, so they never appear in this file.
set -euo pipefail

: "${PREFECT_DB_PASSWORD:?PREFECT_DB_PASSWORD is not set}"
: "${RESISTOMICS_DB_PASSWORD:?RESISTOMICS_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 \
     --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-postgres}" \
     -v prefect_pw="$PREFECT_DB_PASSWORD" \
     -v resistomics_pw="$RESISTOMICS_DB_PASSWORD" <<'EOSQL'
CREATE ROLE prefect LOGIN PASSWORD :'prefect_pw';
CREATE DATABASE prefect OWNER prefect;
CREATE ROLE resistomics LOGIN PASSWORD :'resistomics_pw';
CREATE DATABASE resistomics OWNER resistomics;
\connect prefect
-- Prefect's migrations create pg_trgm; create it here as superuser so the
-- migration does not depend on the extension being "trusted".
CREATE EXTENSION IF NOT EXISTS pg_trgm;
EOSQL
