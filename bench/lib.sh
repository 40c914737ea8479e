# Shared by the bench scripts (sourced, not run): the bench-fast build, a work directory and
# the processes to stop on exit, free loopback ports, a private redis-server, wrk's POST script.
# Sets: root, bin, work, pids (append the PIDs you start).

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
echo "building (cargo build --profile bench-fast --workspace) ..." >&2
(cd "$root" && cargo build -q --profile bench-fast --workspace --bins)
bin=${CARGO_TARGET_DIR:-$root/target}/bench-fast   # cargo builds there when CARGO_TARGET_DIR is set

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 120); do curl -sf -o /dev/null "$1" && return 0; sleep 0.5; done
  echo "$(basename "$0"): $1 did not answer" >&2; return 1
}

# start_redis: a redis-server on a free loopback port; sets rport, redis_pid and REDIS_ADDR.
start_redis() {
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_ADDR=127.0.0.1:$rport
}

# wrk -s "$work/post.lua" URL -- BODYFILE: POST the JSON body in BODYFILE on every request.
cat >"$work/post.lua" <<'LUA'
local path = nil
function init(args) path = args[1] end
function request()
  if not _G.body then local f = io.open(path, "r"); _G.body = f:read("*a"); f:close() end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, _G.body)
end
LUA
