#!/bin/sh
# Starts Redis for Tandem with password authentication: compose and Kubernetes run this as the
# Redis container's command (the official redis image; it runs as the image's `redis` user).
#
#   REDIS_PASSWORD=… sh start.sh [redis-server options…]
#
# Writes an ACL file with two users, then execs redis-server with redis.conf beside this file:
# - `default` (what a client that never authenticates is) is off: nothing answers without a
#   password, so a process that merely reaches the port (a notebook kernel, anything else on
#   the network) can neither read nor write a token record;
# - `tandem`, the user every collab and runtime node logs in as (`TANDEM_REDIS_URL` =
#   `redis://tandem:PASSWORD@HOST:6379/0`), may run only the commands Tandem sends, on keys and
#   pub/sub channels under the default `--redis-prefix` (`tandem:`); nothing that changes the
#   server (CONFIG SET, MODULE, DEBUG, REPLICAOF, ACL, FLUSHALL, SHUTDOWN, …) and no KEYS.
#   A deployment with another `--redis-prefix` changes `~tandem:*` and `&tandem:*` below.
#
# - `admin`, only when REDIS_ADMIN_PASSWORD is set: every command, for an operator's
#   `redis-cli --user admin` from inside the Redis container (INFO, ACL LOG, SLOWLOG, backups).
#
# The password comes from the environment (a Kubernetes Secret, compose's .env), never from a
# file in the image or on the command line. It must be at least 16 characters of A-Z a-z 0-9
# . _ ~ - (the characters a URL carries as they are), so the nodes' URL needs no escaping:
#   head -c 32 /dev/urandom | base64 | tr -d '=+/'
#
# REDIS_CONF (default: redis.conf beside this script) and REDIS_ACL_FILE (default:
# /run/redis/users.acl, a memory-backed volume in Kubernetes, a tmpfs in compose) may be set;
# extra arguments go to redis-server after the config file (tests pass --port, --dir).
set -eu

fail() {
    echo "tandem redis: $*" >&2
    exit 1
}

# check_password NAME VALUE
check_password() {
    case $2 in
    *[!A-Za-z0-9._~-]*) fail "$1 may hold only A-Z a-z 0-9 . _ ~ - (it goes into a URL as is)" ;;
    esac
    [ "${#2}" -ge 16 ] || fail "$1 is shorter than 16 characters"
}

# sha256 VALUE: the hex digest, as ACL's `#<hash>` takes it (the file never holds a password).
sha256() {
    printf %s "$1" | sha256sum | cut -c1-64
}

[ -n "${REDIS_PASSWORD:-}" ] ||
    fail "REDIS_PASSWORD is not set: refusing to start Redis without a password"
check_password REDIS_PASSWORD "$REDIS_PASSWORD"
[ -z "${REDIS_ADMIN_PASSWORD:-}" ] || check_password REDIS_ADMIN_PASSWORD "$REDIS_ADMIN_PASSWORD"

conf=${REDIS_CONF:-$(dirname "$0")/redis.conf}
acl_file=${REDIS_ACL_FILE:-/run/redis/users.acl}

# What Tandem sends (services/collab/src/store/redis*, cluster/, runtime_hub/redis.rs,
# services/runtime/src/node/redis*); tests/tests/infra.rs runs a cluster as this user and
# fails on any command Redis refused, so a command added to the code must be added here.
commands="+hello +auth +ping +select +multi +exec +discard
+evalsha +script|load
+get +set +psetex +getdel +del +exists +pexpire +pexpireat
+hget +hset +hsetnx +hmset +hmget +hgetall +hdel +hkeys +hvals
+rpush +lrange +lrem +blpop
+sadd +srem +smembers +sismember
+zadd +zrem +zcount +zremrangebyscore
+xadd +xrange +xread +xreadgroup +xack +xdel +xtrim +xgroup|create
+publish +subscribe +unsubscribe
+config|get"
# Clients announce their library with CLIENT SETINFO (Redis 7.2+; older servers reject the
# rule). Refusing it would only fill ACL LOG: the client ignores the answer.
case $(redis-server --version) in
*v=6.* | *v=7.0.* | *v=7.1.*) ;;
*) commands="$commands +client|setinfo" ;;
esac

umask 077
mkdir -p "$(dirname "$acl_file")"
{
    echo "user default off resetpass nocommands resetkeys resetchannels"
    # shellcheck disable=SC2086 # one line: the rules are words
    echo "user tandem on #$(sha256 "$REDIS_PASSWORD") resetkeys ~tandem:* resetchannels &tandem:* -@all" $commands
    if [ -n "${REDIS_ADMIN_PASSWORD:-}" ]; then
        echo "user admin on #$(sha256 "$REDIS_ADMIN_PASSWORD") allkeys allchannels +@all"
    fi
} >"$acl_file"

exec redis-server "$conf" --aclfile "$acl_file" "$@"
