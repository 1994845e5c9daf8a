"""window_metrics.py WORK LEADER: the report of bench/window_metrics.sh from the files it wrote in
WORK (stat0/stat1: /proc/stat's cpu line; m0.N/m1.N: node N's /metrics before and after;
bench.json: the generator's line)."""
import re
import sys


def parse(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = re.match(r"(\S+?)(\{[^}]*\})?\s+(\S+)$", line.strip())
            if m:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def busy(work):
    s0 = [int(x) for x in open(work + "/stat0").read().split()[1:]]
    s1 = [int(x) for x in open(work + "/stat1").read().split()[1:]]
    d = [b - a for a, b in zip(s0, s1)]
    return 100.0 * (1 - (d[3] + d[4]) / sum(d))  # idle + iowait


def histograms(a, b):
    names = sorted({k[0][:-len("_bucket")] for k in b if k[0].endswith("_bucket")})
    for nm in names:
        cnt = b.get((nm + "_count", ""), 0) - a.get((nm + "_count", ""), 0)
        if cnt <= 0:
            continue
        total = b.get((nm + "_sum", ""), 0) - a.get((nm + "_sum", ""), 0)
        buckets = []
        for k, v in b.items():
            if k[0] == nm + "_bucket" and "le=" in k[1]:
                le = re.search(r'le="([^"]+)"', k[1]).group(1)
                buckets.append((float("inf") if le == "+Inf" else float(le), v - a.get(k, 0)))
        buckets.sort()

        def q(p):
            for le, c in buckets:
                if c >= p * cnt:
                    return le
            return float("inf")
        yield nm, cnt, total / cnt, q(0.5), q(0.99)


def main():
    work, leader = sys.argv[1], sys.argv[2]
    print("box busy %.0f%%" % busy(work))
    print(open(work + "/bench.json").read().strip())
    for i in "123":
        print("node %s%s" % (i, " (leader)" if i == leader else ""))
        a, b = parse("%s/m0.%s" % (work, i)), parse("%s/m1.%s" % (work, i))
        for nm, cnt, mean, p50, p99 in histograms(a, b):
            print("  %-55s n=%8d mean=%8.0f us  p50 <= %g s  p99 <= %g s"
                  % (nm, cnt, mean * 1e6, p50, p99))


main()
