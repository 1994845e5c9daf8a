#!/usr/bin/env python3
"""snap_hist.py LABEL BEFORE AFTER: two dumps of one Prometheus histogram's lines; prints the
count of the difference, p50/p99 upper bounds and how many observations were above 10/50 ms."""
import re, sys
def load(path):
    h, n = {}, 0.0
    for line in open(path):
        m = re.match(r'\S+_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            h[le] = float(m.group(2))
        elif "_count" in line:
            n = float(line.split()[-1])
    return h, n
h0, n0 = load(sys.argv[2])
h1, count = load(sys.argv[3])
count -= n0
b = sorted((le, c - h0.get(le, 0)) for le, c in h1.items())
def q(p):
    for le, c in b:
        if count and c >= p * count:
            return le * 1000
    return float("nan")
def above(ms):
    under = max([c for le, c in b if le * 1000 <= ms] or [0])
    return int(count - under)
print(f"{sys.argv[1]}: n={int(count)} p50<={q(0.5):g}ms p99<={q(0.99):g}ms >10ms={above(10)} >50ms={above(50)}")
