"""Redis's own time per key of the newest-wins script (INFO commandstats), by path.

    ~/.cache/larder/venv/bin/python bench/script_cost.py [SCRIPT] [KEYS_PER_CALL]

Starts a private redis-server on a free loopback port, and for 10,000 keys of VIEWS views
(default 1; the example's materialization writes 2 per key) with 7 features each (10-byte
values, the `_ts` fields as Larder writes them) sends the script in calls of KEYS_PER_CALL keys
(default 32, Larder's standalone batching), with the arguments Larder sends (each view's field
names once per call), three ways:

  fresh    the keys do not exist: HGET finds nothing, HSET creates each hash
  update   every key holds an older time: both times are decoded and compared, HSET overwrites
  replay   every key holds the same time: a replay, nothing written

and prints microseconds of Redis time per key, the median of REPEAT (default 5) rounds: the
script's own (usec in INFO commandstats / keys) and Redis's whole CPU time (INFO cpu, which
adds reading and parsing the arguments: a noisier figure). Needs redis-server and the redis package (the test
virtualenv has it through Feast). SCRIPT defaults to shared/src/online/redis/newest_wins.lua.
"""
import os, socket, statistics, subprocess, struct, sys, time

import redis

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
script_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "shared/src/online/redis/newest_wins.lua")
per_call = int(sys.argv[2]) if len(sys.argv) > 2 else 32
repeat = int(os.environ.get("REPEAT", "5"))
views = int(os.environ.get("VIEWS", "1"))
N = 10_000


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def ts(secs, nanos=0):
    return b"\x08" + varint(secs) + ((b"\x10" + varint(nanos)) if nanos else b"")


s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                          stdout=subprocess.DEVNULL)
try:
    r = redis.Redis(port=port)
    for _ in range(50):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    sha = r.script_load(open(script_path).read())
    fields = [b"f%03d" % i for i in range(7)]
    value = b"\x22\x08" + struct.pack("<d", 0.5)
    ts_fields = [b"_ts:driver_hourly_stats_%d" % v for v in range(views)]
    keys = [b"k%05d" % i + b"\x00" * 20 for i in range(N)]
    header = [0, views]
    for f in ts_fields:
        header += [f, len(fields), *fields]
    view_set = bytes(range(1, views + 1))

    def send(t):
        for i in range(0, N, per_call):
            batch = keys[i:i + per_call]
            args = list(header)
            for _ in batch:
                args.append(view_set)
                for _ in range(views):
                    args += [t] + [value] * len(fields)
            r.evalsha(sha, len(batch), *batch, *args)

    def cpu():
        c = r.info("cpu")
        return c["used_cpu_user"] + c["used_cpu_sys"]

    older, newer = ts(1_767_000_000, 123_456_789), ts(1_767_000_100, 5)
    results = {}
    for mode in ("fresh", "update", "replay"):
        rounds = []
        for _ in range(repeat):
            r.flushall()
            if mode != "fresh":
                send(older)
            r.config_resetstat()
            before = cpu()
            send(newer if mode == "update" else older)
            whole = (cpu() - before) * 1e6 / N
            rounds.append((r.info("commandstats")["cmdstat_evalsha"]["usec"] / N, whole))
        results[mode] = [statistics.median(x[0] for x in rounds), statistics.median(x[1] for x in rounds)]
    print(f"{os.path.relpath(script_path, root)}, {views} view(s) per key, {per_call} keys per call, "
          f"medians of {repeat}:")
    for mode, (script, whole) in results.items():
        print(f"  {mode:<7} {script:5.2f} us of script time, {whole:5.2f} us of Redis CPU per key")
finally:
    server.terminate()
    server.wait()
