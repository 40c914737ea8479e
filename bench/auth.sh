#!/usr/bin/env bash
# What access control costs: `larder serve` answering get-online-features 1x7 at 8 connections
# without authentication, and with `auth: oidc` (every request carries an RS256 bearer token,
# verified against a JWKS served on loopback, cached per token) and Feast permissions in the
# registry (READ_ONLINE checked on every view of every request). Both servers run at once over
# one private redis-server and the same data; rounds rotate between three runs so the machine's
# noise falls on all alike:
#   plain        the server without auth, requests without a token
#   plain+token  the same server sent the same token (it ignores it): the request bytes of
#                `secured`, so `secured / plain+token` is what verifying and checking cost
#   secured      auth: oidc and permissions, requests with the token
# Reports the median of the rounds and the ratios.
#
#   bench/auth.sh                           5 rounds of 3 x 10 s (about 3 minutes)
#   ROUNDS=9 DURATION=15s bench/auth.sh
#
# Needs: cargo, redis-server, redis-cli, wrk, curl, python3 and the test virtualenv (PyJWT and
# cryptography, installed with Feast; $LARDER_VENV, default ~/.cache/larder/venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${LARDER_VENV:-$HOME/.cache/larder/venv}
dur=${DURATION:-10s}
rounds=${ROUNDS:-5}
drivers=${DRIVERS:-10000}

for tool in redis-server redis-cli wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "auth.sh: $tool is not installed (scripts/test.sh installs it)" >&2; exit 1; }
done
"$venv/bin/python" -c 'import jwt, cryptography' 2>/dev/null ||
  { echo "auth.sh: no PyJWT in $venv (run scripts/test.sh or set LARDER_VENV)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
start_redis

echo "== data: $drivers drivers x 7 features; a plain and a secured repository" >&2
plain=$work/plain
secured=$work/secured
for repo in "$plain" "$secured"; do
  mkdir -p "$repo/data"
  cp "$root/examples/driver/feature_store.yaml" "$root/examples/driver/features.yaml" "$repo/"
done
(cd "$plain" && "$bin/larder" example-data --drivers "$drivers" --hours 1 --end 2026-01-01T00:00:00Z >/dev/null)
cp "$plain/data/"*.parquet "$secured/data/"
cat >>"$secured/features.yaml" <<'EOF'

permissions:
  read_driver_views:
    types: [FEATURE_VIEW]
    name_patterns: ["driver_.*"]
    actions: [READ_ONLINE]
    policy: {roles: [reader]}
  write_fresh:
    types: [FEATURE_VIEW]
    name_patterns: [driver_fresh]
    actions: [WRITE_ONLINE]
    policy: {groups: [writers]}
EOF

echo "== an OpenID provider on loopback (discovery document, JWKS) and a reader's token" >&2
oport=$(free_port)
"$venv/bin/python" - "$oport" "$work" <<'EOF' &
import json, sys, time, http.server
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
port, work = int(sys.argv[1]), sys.argv[2]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="bench-1", alg="RS256", use="sig")
issuer = f"http://127.0.0.1:{port}"
now = int(time.time())
claims = {"iss": issuer, "aud": "larder", "sub": "bench", "preferred_username": "bench",
          "resource_access": {"larder": {"roles": ["reader"]}}, "iat": now, "exp": now + 6 * 3600}
open(f"{work}/token", "w").write(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench-1"}))
docs = {"/.well-known/openid-configuration": {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"},
        "/jwks": {"keys": [jwk]}}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(docs.get(self.path, {})).encode()
        self.send_response(200 if self.path in docs else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
pids+=("$!")
wait_http "http://127.0.0.1:$oport/jwks"
for _ in $(seq 50); do [ -s "$work/token" ] && break; sleep 0.1; done
cat >>"$secured/feature_store.yaml" <<EOF
auth:
  type: oidc
  auth_discovery_url: http://127.0.0.1:$oport/.well-known/openid-configuration
  client_id: larder
  audience: larder
  issuer: http://127.0.0.1:$oport
EOF

for repo in "$plain" "$secured"; do (cd "$repo" && "$bin/larder" apply >/dev/null); done
"$bin/larder" materialize --repo "$plain" 2025-01-01T00:00:00Z 2026-01-02T00:00:00Z >/dev/null
echo "Redis holds $(redis-cli -p "$rport" dbsize) keys" >&2

features='"driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips", "driver_hourly_stats:miles_driven", "driver_hourly_stats:rating", "driver_hourly_stats:city", "driver_hourly_stats:is_active"'
echo "{\"features\": [$features], \"entities\": {\"driver_id\": [1001]}}" >"$work/body.json"
cat >"$work/post-auth.lua" <<'LUA'
local body_path, token_path = nil, nil
function init(args) body_path, token_path = args[1], args[2] end
local function slurp(p) local f = io.open(p, "r"); local s = f:read("*a"); f:close(); return s end
function request()
  if not _G.body then
    _G.body = slurp(body_path)
    _G.headers = {["Content-Type"] = "application/json"}
    if token_path then _G.headers["Authorization"] = "Bearer " .. slurp(token_path) end
  end
  return wrk.format("POST", nil, _G.headers, _G.body)
end
LUA

serve() { # REPO LOGNAME -> port on stdout
  local port
  port=$(free_port)
  "$bin/larder" serve --repo "$1" --port "$port" >"$work/$2.log" 2>&1 &
  pids+=("$!")
  echo "$port"
}
pport=$(serve "$plain" plain)
sport=$(serve "$secured" secured)
wait_http "http://127.0.0.1:$pport/health"
wait_http "http://127.0.0.1:$sport/health"

# The secured server refuses a request without the token and answers one with it.
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -d @"$work/body.json" \
  "http://127.0.0.1:$sport/get-online-features")
[ "$status" = 401 ] || { echo "auth.sh: the secured server answered $status without a token" >&2; exit 1; }
curl -sf -H 'content-type: application/json' -H "Authorization: Bearer $(cat "$work/token")" \
  -d @"$work/body.json" "http://127.0.0.1:$sport/get-online-features" >/dev/null

results=$work/results.txt
: >"$results"
run() { # NAME PORT [TOKENFILE]
  local out
  out=$(wrk -t1 -c8 -d"$dur" --latency -s "$work/post-auth.lua" "http://127.0.0.1:$2/get-online-features" -- \
    "$work/body.json" ${3:+"$3"} 2>&1)
  if grep -q "Non-2xx" <<<"$out"; then echo "auth.sh: $1 answered errors:" >&2; echo "$out" >&2; exit 1; fi
  printf '%s %s %s\n' "$1" "$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(awk '/ 50%/{print $2}' <<<"$out")" |
    tee -a "$results"
}
echo "== $rounds rounds of $dur per server, 1x7 at 8 connections, alternating" >&2
run warmup-plain "$pport" >/dev/null
run warmup-secured "$sport" "$work/token" >/dev/null
: >"$results"
for i in $(seq "$rounds"); do
  case $((i % 3)) in
    1) run plain "$pport"; run plain+token "$pport" "$work/token"; run secured "$sport" "$work/token" ;;
    2) run secured "$sport" "$work/token"; run plain "$pport"; run plain+token "$pport" "$work/token" ;;
    0) run plain+token "$pport" "$work/token"; run secured "$sport" "$work/token"; run plain "$pport" ;;
  esac
done

echo
echo "== summary (medians of $rounds rounds)"
python3 - "$results" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50 = line.split()
    v = float(re.match(r"[\d.]+", p50)[0]) * {"us": 1, "ms": 1000, "s": 1e6}[re.sub(r"[\d.]+", "", p50)]
    rows.setdefault(name, []).append((float(rps), v))
med = {n: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v)) for n, v in rows.items()}
for n in ("plain", "plain+token", "secured"):
    print(f"{n:<12} 1x7 c=8: {med[n][0]:.0f} req/s, p50 {med[n][1]:.0f} us   rounds: {[round(r) for r, _ in rows[n]]}")
for base in ("plain+token", "plain"):
    print(f"secured / {base}: throughput {med['secured'][0] / med[base][0]:.3f}, p50 {med['secured'][1] / med[base][1]:.3f}")
EOF
