#!/usr/bin/env bash
# redis_fixture.sh - the redis-server the fleet tests share (a CTest
# fixture): started on a free loopback port, nothing saved to disk, a
# password; stopped by its PID. Never a system service.
#
#   redis_fixture.sh start DIR    writes DIR/port, DIR/password, DIR/pid
#                                 (or DIR/skip with the reason)
#   redis_fixture.sh stop DIR     kills the PID in DIR/pid
#   redis_fixture.sh restart DIR  starts it again on the same port (after a
#                                 test killed it: its data is gone)
set -u
cmd="${1:-}"
dir="${2:-}"
[ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

case "$cmd" in
start)
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "redis-server is not installed (scripts/deps.sh --test)" >"$dir/skip"
        echo "SKIP: redis-server not installed"
        exit 0
    fi
    printf 'fleet-test-%s\n' "$RANDOM$RANDOM" >"$dir/password"
    chmod 600 "$dir/password"
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            continue # taken
        fi
        redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly no --daemonize yes --pidfile "$dir/pid" \
            --logfile "$dir/redis.log" --dir "$dir" \
            --requirepass "$(cat "$dir/password")" >/dev/null 2>&1 || continue
        for _ in $(seq 1 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                echo "$port" >"$dir/port"
                echo "redis-server on 127.0.0.1:$port (pid $(cat "$dir/pid"))"
                exit 0
            fi
            sleep 0.05
        done
        [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null
    done
    echo "could not start redis-server on a free port" >"$dir/skip"
    cat "$dir/redis.log" 2>/dev/null | tail -5
    exit 1
    ;;
restart)
    port="$(cat "$dir/port")"
    redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize yes --pidfile "$dir/pid" \
        --logfile "$dir/redis.log" --dir "$dir" \
        --requirepass "$(cat "$dir/password")" >/dev/null 2>&1 || exit 1
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            exit 0
        fi
        sleep 0.05
    done
    exit 1
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        pid="$(cat "$dir/pid")"
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null
    fi
    exit 0
    ;;
*)
    echo "usage: $0 start|stop|restart DIR" >&2
    exit 2
    ;;
esac
