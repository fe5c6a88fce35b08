#!/usr/bin/env bash
# Runs DynamoDB Local in the foreground on 127.0.0.1:PORT only: in memory,
# one shared database for every key/region, no telemetry. exec's java, so this
# script's PID is the server's PID; kill it to stop the server.
# Usage: infra/run-dynamodb-local.sh PORT   (after infra/install.sh)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ddb="$root/.local/dynamodb-local"

port="${1:-}"
if [[ $# -ne 1 || ! $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
  echo "usage: $0 PORT  (1-65535)" >&2
  exit 2
fi
if [[ ! -f $ddb/classes/LoopbackLauncher.class || ! -f $ddb/home/DynamoDBLocal.jar ]]; then
  echo "$0: DynamoDB Local is not installed; run infra/install.sh first" >&2
  exit 1
fi

# DynamoDB Local's SQLiteLibraryLoader tries org.sqlite.lib.path/name first and
# otherwise copies the libsqlite4java.so inside the jar to /tmp (removed only on
# a clean exit), even when java.library.path is set: point it at the shipped lib.
arch="$(uname -m)"
case "$arch" in
  x86_64) sqlite_lib=libsqlite4java-linux-amd64.so ;;
  aarch64 | arm64) sqlite_lib=libsqlite4java-linux-aarch64.so ;;
  *) echo "$0: no sqlite4java native library for $arch" >&2; exit 1 ;;
esac

# TieredStopAtLevel=1: C1 only; starts faster and is quicker over a short test run.
# -XX:-UsePerfData: no /tmp/hsperfdata_* file (it would outlive a kill -9).
# preferIPv4Stack: a plain IPv4 socket on 127.0.0.1 (not a v4-mapped IPv6 one).
# DYNAMODB_LOCAL_HEAP: the Java heap (default 512m; `make bench-scale` needs more).
heap="${DYNAMODB_LOCAL_HEAP:-512m}"
if [[ ! $heap =~ ^[0-9]{1,6}[mg]$ ]]; then
  echo "$0: DYNAMODB_LOCAL_HEAP must look like 512m or 4g" >&2
  exit 2
fi
export DDB_LOCAL_TELEMETRY=0
exec java -Xmx"$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
  -Djava.net.preferIPv4Stack=true \
  -Dorg.sqlite.lib.path="$ddb/home/DynamoDBLocal_lib" -Dorg.sqlite.lib.name="$sqlite_lib" \
  -Djava.library.path="$ddb/home/DynamoDBLocal_lib" \
  -cp "$ddb/classes:$ddb/home/DynamoDBLocal.jar" \
  LoopbackLauncher "$((10#$port))"
