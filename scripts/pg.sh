#!/usr/bin/env bash
# A throw-away PostgreSQL server for the test suite: data directory and socket under .build/pg,
# listening on 127.0.0.1 only, on a free port, trust authentication (nothing else can reach it).
#
#   scripts/pg.sh start        initdb if needed, start, print the SQLAlchemy URL
#   scripts/pg.sh url          print the URL of the running server
#   scripts/pg.sh stop         stop it (fast shutdown) and remove the data directory
#   scripts/pg.sh run CMD...   start, run CMD with FORESEER_TEST_PG_URL set, stop (also on failure
#                              or Ctrl-C); where no server can be started, CMD still runs with
#                              FORESEER_TEST_PG_SKIP set to the reason, and the PostgreSQL tests
#                              are skipped showing it.
set -euo pipefail
cd "$(dirname "$0")/.."
set_build() { BUILD=$1; DATA=$BUILD/data; LOG=$BUILD/server.log; }
set_build "${PG_BUILD_DIR:-$PWD/.build/pg}"
PY=${PYTHON:-python3}

bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    # Explicit statuses: a bare `return` in an EXIT trap returns the status that fired the trap.
    if [[ -n $dir && -x $dir/pg_ctl ]]; then echo "$dir"; return 0; fi
    if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return 0; fi
    return 1
}

# initdb and the server refuse to run as root: run them as the `postgres` user then.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        PATH=$PATH:/usr/sbin:/sbin runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() {
    [[ -f $BUILD/port ]] || { echo "no server: run scripts/pg.sh start" >&2; return 1; }
    echo "postgresql+psycopg://postgres@127.0.0.1:$(cat "$BUILD/port")/postgres"
}

start() {
    local bin port
    bin=$(bindir) || { echo "PostgreSQL is not installed (no pg_ctl; apt-get install postgresql)" >&2; return 1; }
    if [[ -f $DATA/postmaster.pid ]] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        url; return $?
    fi
    rm -rf "$BUILD"
    mkdir -p "$DATA"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || { echo "no 'postgres' user to run the server as" >&2; return 1; }
        chown -R postgres: "$BUILD"
        # The server runs as `postgres`: it must be able to reach its data directory.
        as_owner test -w "$DATA" || { echo "user postgres cannot write $DATA" >&2; return 1; }
    fi
    as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-sync >"$BUILD/initdb.log" 2>&1 \
        || { cat "$BUILD/initdb.log" >&2; echo "initdb failed" >&2; return 1; }
    port=$(free_port)
    # fsync off: a throw-away server; nothing here must survive a power cut.
    as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $BUILD -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null || { tail -n 20 "$LOG" >&2; echo "the PostgreSQL server did not start" >&2; return 1; }
    echo "$port" >"$BUILD/port"
    url
}

stop() {
    local bin
    bin=$(bindir) || return 0
    if [[ -f $DATA/postmaster.pid ]]; then
        as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || true
    fi
    rm -rf "$BUILD"
}

# Under .build/ in the checkout, unless the `postgres` user cannot reach it there (a checkout in
# a private folder, e.g. one made by mktemp -d): then a folder of its own under /tmp.
run_dir() {
    local dir=$PWD/.build/pg-run-$$
    if [[ $(id -u) -eq 0 ]] && ! as_owner test -x "$PWD/.build" 2>/dev/null; then
        dir=$(mktemp -d /tmp/foreseer-pg-run.XXXXXX)
        rmdir "$dir"
    fi
    echo "$dir"
}

run() {
    local pg_url rc=0
    # One server per run, so two suites started side by side never share or stop each other's.
    [[ -n ${PG_BUILD_DIR:-} ]] || set_build "$(run_dir)"
    if pg_url=$(start 2>"$BUILD.err"); then
        export FORESEER_TEST_PG_URL=$pg_url
        echo "PostgreSQL for the tests: $pg_url (data in $DATA)"
        trap 'stop; rm -f "$BUILD.err"' EXIT
        trap 'exit 130' INT TERM
    else
        export FORESEER_TEST_PG_SKIP="could not start a throw-away PostgreSQL: $(tr '\n' ' ' <"$BUILD.err")"
        echo "$FORESEER_TEST_PG_SKIP" >&2
    fi
    "$@" || rc=$?
    return $rc
}

mkdir -p .build
case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/pg.sh start|stop|url|run CMD..." >&2; exit 2 ;;
esac
