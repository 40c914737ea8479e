"""Redis's own cost per key of the newest-wins script, by path: time, or instructions.

    ~/.cache/larder/venv/bin/python bench/script_cost.py [SCRIPT] [KEYS_PER_CALL]

Starts a private redis-server on a free loopback port, and for 10,000 keys of VIEWS views
(default 1; the example's materialization writes 2 per key) with 7 features each (10-byte
values, 4-byte field names distinct across views as Feast's are, the `_ts` fields as Larder
writes them) sends the script in calls of KEYS_PER_CALL keys (default 32, Larder's standalone
batching), with the arguments Larder sends (each view's field names once per call), four ways:

  fresh    the keys do not exist: nothing to compare, HSET creates each hash
  update   every key holds an older time: both times are decoded and compared, HSET overwrites
  replay   every key holds the same time: a replay, nothing written
  plain    no script: pipelined HSETs of the same fields into new keys, KEYS_PER_CALL per
           round trip (the floor: what writing without comparing costs)

and prints, per key, the median of REPEAT (default 5) rounds of the script's own time (usec in
INFO commandstats / keys) and Redis's whole CPU time (INFO cpu, which adds reading and parsing
the arguments: a noisier figure).

With INSTRUCTIONS=1 it runs each way once on a server under valgrind's callgrind instead, with
instrumentation on only while the keys are sent, and prints Redis's user-space instructions per
key: within about 0.3% from run to run (Redis's timer, ten times a second, is counted too), so
it shows a change of a few percent that this noisy 2-core machine's timings hide. It leaves out the kernel's share (the socket reads and writes), so a
change in round trips needs the timings too. Needs valgrind (apt install valgrind).

Needs redis-server and the redis package (the test virtualenv has it through Feast). SCRIPT
defaults to shared/src/online/redis/newest_wins.lua.
"""
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import redis

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
script_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "shared/src/online/redis/newest_wins.lua")
per_call = int(sys.argv[2]) if len(sys.argv) > 2 else 32
repeat = int(os.environ.get("REPEAT", "5"))
views = int(os.environ.get("VIEWS", "1"))
instructions = os.environ.get("INSTRUCTIONS") == "1"
N = 10_000
MODES = ("fresh", "update", "replay", "plain")


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def ts(secs, nanos=0):
    return b"\x08" + varint(secs) + ((b"\x10" + varint(nanos)) if nanos else b"")


OLDER, NEWER = ts(1_767_000_000, 123_456_789), ts(1_767_000_100, 5)
# Feast's field names are 4-byte hashes of "view:feature", distinct across views: a view
# sharing another's names would make HSET overwrite instead of add, and cost less.
FIELDS = [[struct.pack("<I", (0x9E3779B1 * (7 * v + i + 1)) & 0xFFFFFFFF) for i in range(7)] for v in range(views)]
VALUE = b"\x22\x08" + struct.pack("<d", 0.5)
TS_FIELDS = [b"_ts:driver_hourly_stats_%d" % v for v in range(views)]
KEYS = [b"k%05d" % i + b"\x00" * 20 for i in range(N)]
HEADER = [0, views]
for f, names in zip(TS_FIELDS, FIELDS):
    HEADER += [f, len(names), *names]
VIEW_SET = bytes(range(1, views + 1))


class Server:
    """A private redis-server, optionally under callgrind with instrumentation off."""

    def __init__(self, callgrind_out=None):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        wrap = []
        if callgrind_out:
            wrap = ["valgrind", "-q", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={callgrind_out}"]
        self.proc = subprocess.Popen(
            [*wrap, "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL)
        self.r = redis.Redis(port=port)
        for _ in range(600):  # callgrind starts slowly
            try:
                self.r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.sha = self.r.script_load(open(script_path).read())

    def send(self, t):
        for i in range(0, N, per_call):
            batch = KEYS[i:i + per_call]
            args = list(HEADER)
            for _ in batch:
                args.append(VIEW_SET)
                for names in FIELDS:
                    args += [t] + [VALUE] * len(names)
            self.r.evalsha(self.sha, len(batch), *batch, *args)

    def send_plain(self, t):
        for i in range(0, N, per_call):
            pipe = self.r.pipeline(transaction=False)
            for key in KEYS[i:i + per_call]:
                mapping = {}
                for f, names in zip(TS_FIELDS, FIELDS):
                    mapping[f] = t
                    mapping.update((name, VALUE) for name in names)
                pipe.hset(key, mapping=mapping)
            pipe.execute()

    def prepare(self, mode):
        self.r.flushall()
        if mode in ("update", "replay"):
            self.send(OLDER)

    def run(self, mode):
        if mode == "plain":
            self.send_plain(OLDER)
        else:
            self.send(NEWER if mode == "update" else OLDER)

    def cpu(self):
        c = self.r.info("cpu")
        return c["used_cpu_user"] + c["used_cpu_sys"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def timings():
    server = Server()
    try:
        results = {}
        for mode in MODES:
            rounds = []
            for _ in range(repeat):
                server.prepare(mode)
                server.r.config_resetstat()
                before = server.cpu()
                server.run(mode)
                whole = (server.cpu() - before) * 1e6 / N
                command = server.r.info("commandstats")["cmdstat_hset" if mode == "plain" else "cmdstat_evalsha"]
                rounds.append((command["usec"] / N, whole))
            results[mode] = [statistics.median(x[0] for x in rounds), statistics.median(x[1] for x in rounds)]
    finally:
        server.stop()
    print(f"{os.path.relpath(script_path, root)}, {views} view(s) per key, {per_call} keys per call, "
          f"medians of {repeat}:")
    for mode, (own, whole) in results.items():
        what = "HSET" if mode == "plain" else "script"
        print(f"  {mode:<7} {own:5.2f} us of {what} time, {whole:5.2f} us of Redis CPU per key")


def instrument(server, state):
    # Returns once callgrind has taken the request.
    subprocess.run(["callgrind_control", "-i", state, str(server.proc.pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def instruction_counts():
    print(f"{os.path.relpath(script_path, root)}, {views} view(s) per key, {per_call} keys per call, "
          "Redis's user-space instructions (callgrind):")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            out = os.path.join(tmp, mode)
            server = Server(out)
            try:
                server.prepare(mode)
                instrument(server, "on")
                server.run(mode)
                instrument(server, "off")
            finally:
                server.stop()
            total = next(int(line.split()[1]) for line in open(out) if line.startswith("totals:"))
            print(f"  {mode:<7} {total / N:8,.0f} per key")


instruction_counts() if instructions else timings()
