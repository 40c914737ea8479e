#!/usr/bin/env python3
"""Readings for the sensors example: pushes them to Larder's HTTP API, then asks for the window
aggregations and checks the answers against its own arithmetic.

    python3 generate.py --url http://127.0.0.1:6566 [--sensors 5] [--minutes 3]

Each sensor reports once a second for the last --minutes minutes (ending now), a reading that
wanders around 20 + the sensor's number. They go to the `readings` push source in time order,
one POST /push per ten seconds of readings. Then one POST /get-online-features asks for every
aggregated feature of both views; the one-minute aggregations are compared with the readings'
own mean, min, max, sample std and count over the last whole minute, and the hour's count and
distinct count with the readings in the hour up to the current five minutes. Exit status 1 on
any difference. Only the standard library is used.
"""

import argparse
import json
import math
import random
import sys
import time
import urllib.error
import urllib.request

MINUTE_FEATURES = ["avg_reading_60s", "min_reading_60s", "max_reading_60s", "std_reading_60s", "count_reading_60s"]
HOUR_FEATURES = ["avg_reading_3600s", "max_reading_3600s", "readings_1h", "distinct_readings_1h"]


def post(url, path, body):
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        sys.exit(f"{path}: HTTP {e.code}: {e.read().decode(errors='replace')}")


def readings(sensors, minutes, now, seed):
    """(time in seconds, sensor id, reading) for every second of the span, in time order."""
    rng = random.Random(seed)
    level = {s: 20.0 + s for s in range(1, sensors + 1)}
    start = int(now) - minutes * 60
    out = []
    for t in range(start, int(now)):
        for s in level:
            level[s] += rng.gauss(0, 0.5)
            out.append((t, s, round(level[s], 3)))
    return out


def expected_minute(rows, sensor, now):
    """The one-minute aggregations as of `now`: over the last whole minute before it."""
    end = int(now) // 60 * 60
    xs = [x for (t, s, x) in rows if s == sensor and end - 60 <= t < end]
    if not xs:
        return None
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return {
        "avg_reading_60s": mean,
        "min_reading_60s": min(xs),
        "max_reading_60s": max(xs),
        "std_reading_60s": std,
        "count_reading_60s": len(xs),
    }


def expected_hour(rows, sensor, now):
    """The hour's count and distinct count as of `now`: the readings from an hour before the
    end of the current five minutes."""
    end = (int(now) // 300 + 1) * 300
    xs = [x for (t, s, x) in rows if s == sensor and end - 3600 <= t < end]
    return {"readings_1h": len(xs), "distinct_readings_1h": len(set(xs))}


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:6566", help="Larder's HTTP API (larder serve)")
    p.add_argument("--sensors", type=int, default=5)
    p.add_argument("--minutes", type=int, default=3, help="how far back the readings start")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()

    rows = readings(args.sensors, args.minutes, time.time(), args.seed)
    pushed = 0
    for i in range(0, len(rows), 10 * args.sensors):
        chunk = rows[i : i + 10 * args.sensors]
        df = {
            "sensor_id": [s for (_, s, _) in chunk],
            "event_timestamp": [t for (t, _, _) in chunk],
            "reading": [x for (_, _, x) in chunk],
        }
        post(args.url, "/push", {"push_source_name": "readings", "df": df, "to": "online"})
        pushed += len(chunk)
    print(f"pushed {pushed} readings of {args.sensors} sensors")

    ids = list(range(1, args.sensors + 1))
    features = [f"sensor_minute:{f}" for f in MINUTE_FEATURES] + [f"sensor_hour:{f}" for f in HOUR_FEATURES]
    before = time.time()
    answer = post(args.url, "/get-online-features", {"features": features, "entities": {"sensor_id": ids}})
    after = time.time()
    names = answer["metadata"]["feature_names"]
    results = {name: answer["results"][i] for i, name in enumerate(names)}
    print(json.dumps({name: results[name]["values"] for name in names[1:]}, indent=1))

    # The answer is as of some moment between sending and receiving: accept the windows of either.
    bad = []
    for row, sensor in enumerate(ids):
        options = [expected_minute(rows, sensor, m * 60) for m in {int(before) // 60, int(after) // 60}]
        got = {f: results[f]["values"][row] for f in MINUTE_FEATURES}
        if not any(want and all(close(got[f], want[f]) for f in MINUTE_FEATURES) for want in options):
            bad.append(f"sensor {sensor}: got {got}, expected {options[0]}")
        hours = [expected_hour(rows, sensor, m) for m in (before, after)]
        got = {f: results[f]["values"][row] for f in ("readings_1h", "distinct_readings_1h")}
        if got not in hours:
            bad.append(f"sensor {sensor}: got {got} in the hour, expected {hours[0]}")
    if bad:
        print("\n".join(bad), file=sys.stderr)
        sys.exit(1)
    print("the aggregations match the readings' own mean, min, max, std, count and distinct count")


if __name__ == "__main__":
    main()
