"""Reference answers for Larder's stream window aggregations, computed with pandas.

Input (a JSON file): the time of the request, the sensors asked for, the views (allowed
lateness; each aggregation's output name, function, window and slide), and every event once, in
stream order, as [sensor, time in microseconds, value or null].

The rules, as docs/aggregations.md states them:
- a reading that is null is no event (the row is not written, as in Feast);
- an event is late for a view when its time is more than the allowed lateness (default: the
  hop) behind the newest event of its sensor applied to that view before it; late events count
  nowhere;
- a window is whole tiles of the hop (the slide, else the window): a sliding window is the
  window/hop tiles ending with the tile holding the request time; a tumbling window is the last
  window that closed at or before the request time;
- count counts non-null values; count_distinct the distinct ones (Larder is exact up to 512
  distinct values in a window, which these tests stay below); std and var are pandas' (ddof=1); last is the value of the
  newest event (a tie: the later in the stream); a window without values answers count and
  count_distinct 0 and null for everything else.

Output (stdout, one JSON line): {"views": {view: {sensor: {output: value, "__newest_us": end of
the newest tile with a value}}}, "late": [indexes of events late for any view]}.
"""

import json
import math
import sys

import pandas as pd


def main(path):
    with open(path) as f:
        spec = json.load(f)
    now = spec["now_us"]
    events = pd.DataFrame(spec["events"], columns=["sensor", "t_us", "value"])
    events["order"] = range(len(events))
    # A row whose features are all null is not written at all (Feast's rule), so it is no
    # event either: it counts nowhere and moves no lateness.
    events = events[events.value.notna()]
    late_any = set()
    out = {}
    for view in spec["views"]:
        aggs = view["aggregations"]
        hops = {(a["slide_s"] or a["window_s"]) for a in aggs}
        lateness = view["lateness_s"]
        if lateness is None:  # the default: the smallest hop
            lateness = min(hops)
        lateness_us = int(lateness * 1_000_000)
        # Lateness, event by event in stream order.
        newest = {}
        applied = []
        for row in events.itertuples():
            n = newest.get(row.sensor)
            if n is not None and row.t_us < n - lateness_us:
                late_any.add(row.order)
                applied.append(False)
                continue
            newest[row.sensor] = row.t_us if n is None else max(n, row.t_us)
            applied.append(True)
        kept = events[applied]
        answers = {}
        for sensor in spec["sensors"]:
            mine = kept[kept.sensor == sensor]
            answers[str(sensor)] = per_sensor(mine, aggs, now)
        out[view["name"]] = answers
    print(json.dumps({"views": out, "late": sorted(late_any)}))


def window_bounds(agg, now):
    window = agg["window_s"] * 1_000_000
    slide = agg["slide_s"]
    hop = (slide if slide else agg["window_s"]) * 1_000_000
    if slide and slide < agg["window_s"]:
        cur = now // hop
        return (cur + 1) * hop - window, (cur + 1) * hop, hop
    end = (now // window) * window
    return end - window, end, hop


def per_sensor(events, aggs, now):
    answer = {}
    newest_us = None
    for agg in aggs:
        lo, hi, hop = window_bounds(agg, now)
        inside = events[(events.t_us >= lo) & (events.t_us < hi)]
        values = inside.value.dropna().astype(float)
        with_values = inside[inside.value.notna()]
        if len(with_values):
            newest_us = (with_values.t_us.max() // hop + 1) * hop
        f = agg["function"]
        if f == "count_distinct" and len(values) == 0:
            v = 0
        elif f == "count":
            v = int(values.count())
        elif len(values) == 0:
            v = None
        elif f == "sum":
            v = values.sum()
        elif f in ("mean", "avg"):
            v = values.mean()
        elif f == "min":
            v = values.min()
        elif f == "max":
            v = values.max()
        elif f in ("std", "var"):
            v = values.std(ddof=1) if f == "std" else values.var(ddof=1)
            v = None if v != v else v
        elif f == "count_distinct":
            v = int(values.nunique())
        elif f == "last":
            ordered = with_values.sort_values(["t_us", "order"], kind="mergesort")
            v = ordered.value.iloc[-1]
        else:
            raise SystemExit(f"no reference for function {f}")
        answer[agg["output"]] = None if v is None else float(v)
    answer["__newest_us"] = None if newest_us is None else int(newest_us)
    return answer


if __name__ == "__main__":
    main(sys.argv[1])
