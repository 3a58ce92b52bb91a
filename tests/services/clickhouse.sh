#!/usr/bin/env bash
# Installs (if missing) and starts Debian's clickhouse-server 18.16 for the integration tests.
#
# Idempotent: when a server already answers on the port it does nothing. Run as root.
# There is no systemd on the test machines, so the server runs as a plain background process.
#
#   YUQING_TEST_CLICKHOUSE_PORT       native TCP port (default 9000)
#   YUQING_TEST_CLICKHOUSE_HTTP_PORT  HTTP port (default 8123)
#   YUQING_TEST_CLICKHOUSE_DIR        data, config and logs (default /var/tmp/yuqing-clickhouse-<port>)
#   YUQING_TEST_CLICKHOUSE_WAIT_S     how long to wait for the server to answer (default 30)
set -euo pipefail

PORT="${YUQING_TEST_CLICKHOUSE_PORT:-9000}"
HTTP_PORT="${YUQING_TEST_CLICKHOUSE_HTTP_PORT:-8123}"
DIR="${YUQING_TEST_CLICKHOUSE_DIR:-/var/tmp/yuqing-clickhouse-${PORT}}"
WAIT_S="${YUQING_TEST_CLICKHOUSE_WAIT_S:-30}"

log() { echo "clickhouse.sh: $*" >&2; }

answers() {
    command -v clickhouse-client >/dev/null 2>&1 &&
        timeout 5 clickhouse-client --host 127.0.0.1 --port "$PORT" -q 'SELECT 1' >/dev/null 2>&1
}

# One run at a time per data directory: two concurrent runs would race to start two servers.
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock -w "$((WAIT_S + 120))" 9 || { log "another clickhouse.sh holds ${DIR}/.lock"; exit 1; }

if answers; then
    log "a server already answers on 127.0.0.1:${PORT}; nothing to do"
    exit 0
fi

if ! command -v clickhouse-server >/dev/null 2>&1 || ! command -v clickhouse-client >/dev/null 2>&1; then
    log "installing clickhouse-server and clickhouse-client from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's postinst tries to start the service; without an init system that is
    # refused, which is harmless: we start our own instance below.
    apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi

mkdir -p "$DIR/data" "$DIR/tmp" "$DIR/user_files" "$DIR/log"

# A minimal config of our own, so the packaged one (all interfaces, interserver port 9009,
# logs in /var/log) is never used. Timezone UTC: every DateTime yuqing stores is UTC.
cat >"$DIR/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>${DIR}/log/clickhouse-server.log</log>
        <errorlog>${DIR}/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>${PORT}</tcp_port>
    <http_port>${HTTP_PORT}</http_port>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>${DIR}/data/</path>
    <tmp_path>${DIR}/tmp/</tmp_path>
    <user_files_path>${DIR}/user_files/</user_files_path>
    <users_config>${DIR}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF

cat >"$DIR/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A live clickhouse-server process. Not kill -0: that is true for a zombie (nothing reaps
# orphans without an init system) and for an unrelated process that reused the pid.
alive() {
    local state
    state="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z ]] && grep -qa clickhouse-server "/proc/$1/cmdline" 2>/dev/null
}
fail() {
    log "$1; last log lines:"
    tail -n 20 "$DIR/log/clickhouse-server.err.log" "$DIR/log/stdout.log" >&2 2>/dev/null || true
    exit 1
}
# Waits until server $1 is alive and answers; returns 1 if it dies first, fails if time runs out.
wait_ready() {
    local deadline=$((SECONDS + WAIT_S))
    # Alive and answering: never mistake another server on the port for ours.
    until alive "$1" && answers; do
        alive "$1" || return 1
        ((SECONDS < deadline)) || fail "clickhouse-server pid $1 did not answer on 127.0.0.1:${PORT} within ${WAIT_S}s"
        sleep 0.2
    done
}

# An instance of ours may still be starting (or dying) in this directory: it holds the data.
if [[ -f "$DIR/server.pid" ]]; then
    old_pid="$(cat "$DIR/server.pid" || true)"
    if [[ -n "$old_pid" ]] && alive "$old_pid"; then
        log "clickhouse-server pid ${old_pid} (data in ${DIR}) runs; waiting for it"
        if wait_ready "$old_pid"; then
            log "clickhouse-server pid ${old_pid} answers on 127.0.0.1:${PORT}"
            exit 0
        fi
    fi
    rm -f "$DIR/server.pid"
fi
for port in "$PORT" "$HTTP_PORT"; do
    if port_taken "$port"; then
        log "port ${port} on 127.0.0.1 is taken by something that is not an answering ClickHouse; set"
        log "YUQING_TEST_CLICKHOUSE_PORT / YUQING_TEST_CLICKHOUSE_HTTP_PORT to free ports"
        exit 1
    fi
done

log "starting clickhouse-server on 127.0.0.1:${PORT} (data in ${DIR})"
cd "$DIR"
: >"$DIR/log/clickhouse-server.err.log"  # so a failure shows this start's errors, not old ones
# 9>&-: the server must not inherit (and so hold forever) the lock of this script.
nohup clickhouse-server --config-file="$DIR/config.xml" >"$DIR/log/stdout.log" 2>&1 </dev/null 9>&- &
server_pid=$!
echo "$server_pid" >"$DIR/server.pid"

wait_ready "$server_pid" || fail "clickhouse-server exited during start-up"
log "clickhouse-server $(clickhouse-client --host 127.0.0.1 --port "$PORT" -q 'SELECT version()') is up (pid ${server_pid})"
