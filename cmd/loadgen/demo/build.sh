#!/usr/bin/env bash
# build.sh SRC OUT: builds DBOS's own Go demo shop (dbos-demo-apps,
# golang/widget-store, checked out at SRC) as the reference that loadgen
# compares this shop with, into the directory OUT: OUT/widget-store and
# OUT/migrations/. Nothing of the demo enters this repository: SRC is
# copied to a temporary directory and patched there.
#
# The patches are the fewest that let loadgen run it beside this shop:
#   - DBOS Transact Go v1.8.0, the version the demo is measured on as the
#     anchor (issue 15); the shop itself is on v1.9.0 (go.mod);
#   - no AdminServer (v1.8.0's admin server listens on a fixed port, 3001);
#   - 127.0.0.1 rather than every address, on the port in PORT (8080
#     without it), so that runs take free ports and serve this machine only.
# loadgen gives it a fresh database, runs OUT/migrations/*.up.sql, sets
# DBOS_SYSTEM_DATABASE_URL and tops its stock up (see cmd/loadgen/demo.go).
#
# SRC is golang/widget-store of a checkout of dbos-inc/dbos-demo-apps,
# e.g. extracted with git archive into a temporary directory.
set -euo pipefail
if [ $# -ne 2 ] || [ ! -f "$1/main.go" ] || [ ! -f "$1/migrations/001_widget_store.up.sql" ]; then
	echo "usage: $0 DEMO_SOURCE_DIR OUT_DIR (DEMO_SOURCE_DIR: dbos-demo-apps/golang/widget-store)" >&2
	exit 2
fi
src=$1
mkdir -p "$2"
out=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$src/." "$work"
cd "$work"

go get github.com/dbos-inc/dbos-transact-golang@v1.8.0
grep -q 'AdminServer: *true,' main.go
sed -i '/AdminServer: *true,/d' main.go
grep -q 'r.Run(":8080")' main.go
sed -i 's|r.Run(":8080")|r.Run("127.0.0.1:" + cmp.Or(os.Getenv("PORT"), "8080"))|' main.go
sed -i 's|^import (|import (\n\t"cmp"|' main.go
gofmt -l . >/dev/null
go mod tidy
go build -o "$out/widget-store" .
mkdir -p "$out/migrations"
cp migrations/*.up.sql "$out/migrations/"
echo "built $out/widget-store"
