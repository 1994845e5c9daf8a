#!/usr/bin/env python3
"""report.py: turn bench/run.sh raw rows into results/<date>.md, .json and the p99-vs-throughput
PNG (gnuplot). Medians over repetitions; targets from docs/benchmarks.md checked where measured."""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rows):
    """name -> cluster -> median figures over reps (and the raw runs)."""
    out = {}
    for r in rows:
        out.setdefault((r["cluster"], r["name"]), []).append(r)
    summary = {}
    for (cluster, name), runs in out.items():
        summary.setdefault(cluster, {})[name] = {
            "reps": len(runs),
            "ops_per_sec": median([x["ops_per_sec"] for x in runs]),
            "p50_us": median([x["p50_us"] for x in runs]),
            "p90_us": median([x.get("p90_us") for x in runs]),
            "p99_us": median([x["p99_us"] for x in runs]),
            "p999_us": median([x["p999_us"] for x in runs]),
            "errors": sum(x["errors"] for x in runs),
            "rate": runs[0].get("rate", 0),
            "runs": [{k: x[k] for k in ("ops_per_sec", "p50_us", "p99_us", "errors")} for x in runs],
        }
    return summary


def fmt_ops(x):
    return "-" if x is None else f"{x:,.0f}"


def fmt_us(x):
    if x is None:
        return "-"
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.0f} µs"


ROWS = [
    ("put_c1", "put, 1 connection, pipeline 1 (latency floor)"),
    ("get_c1", "linearizable get, 1 connection, pipeline 1"),
    ("put_c64_p16", "put, C=64 P=16"),
    ("get_lin_c64_p32", "linearizable get, C=64 P=32"),
    ("get_stale_c64_p32", "stale get, C=64 P=32"),
    ("mixed90_c64_p16", "mixed 90% get / 10% put, C=64 P=16"),
    ("get_lin_open150k_c64", "linearizable get, open loop at 150K/s, C=64 P=32"),
    ("get_lin_open150k_c16", "linearizable get, open loop at 150K/s, C=16 P=128"),
    ("get_lin_open150k_c4", "linearizable get, open loop at 150K/s, C=4 P=512"),
    ("get_lin_open150k_c16_fr", "linearizable get, open loop at 150K/s, C=16 P=128, --follower-reads"),
    ("get_lin_open150k_c4_t100", "linearizable get, open loop at 150K/s, C=4 P=512, --send-tick-us 100"),
    ("put_open40k_c16", "put, open loop at 40K/s, C=16 P=256"),
    ("put_open40k_c4", "put, open loop at 40K/s, C=4 P=1024"),
    ("put_open40k_c4_t500", "put, open loop at 40K/s, C=4 P=1024, --send-tick-us 500"),
    ("list_page1000_lin", "ListObjectsV2 page of 1000 (linearizable), C=4 P=1"),
    ("list_page1000_stale", "ListObjectsV2 page of 1000 (stale), C=4 P=1"),
]


def target_lines(s, meta):
    """(target, measured, verdict) for each target measured in this run."""
    n1, n3 = s.get("n1", {}), s.get("n3", {})
    t = []

    def add(name, measured, ok):
        t.append((name, measured, "-" if ok is None else ("met" if ok else "MISSED")))

    w3 = n3.get("put_c64_p16", {}).get("ops_per_sec")
    add("3-node writes ≥ 60K ops/s", fmt_ops(w3), None if w3 is None else w3 >= 60000)
    sw = n3.get("sweep_put_40000")
    if sw:
        ok = sw["p99_us"] < 5000 and sw["ops_per_sec"] >= 0.95 * 40000
        add("3-node write p99 < 5 ms at 40K offered (C64)",
            f"{fmt_us(sw['p99_us'])} ({fmt_ops(sw['ops_per_sec'])} ops/s achieved)", ok)
    for name, label in (("put_open40k_c16", "C16"), ("put_open40k_c4", "C4"),
                        ("put_open40k_c4_t500", "C4, --send-tick-us 500")):
        wo = n3.get(name)
        if wo:
            ok = wo["p99_us"] < 5000 and wo["ops_per_sec"] >= 0.95 * 40000
            add(f"3-node write p99 < 5 ms at 40K offered ({label})",
                f"{fmt_us(wo['p99_us'])} ({fmt_ops(wo['ops_per_sec'])} ops/s achieved)", ok)
    w1 = n1.get("put_c64_p16", {}).get("ops_per_sec")
    add("1-node writes ≥ 80K ops/s", fmt_ops(w1), None if w1 is None else w1 >= 80000)
    r3 = n3.get("get_lin_c64_p32", {}).get("ops_per_sec")
    add("3-node linearizable reads ≥ 300K ops/s", fmt_ops(r3), None if r3 is None else r3 >= 300000)
    for name, label in (("get_lin_open150k_c64", "C64"), ("get_lin_open150k_c16", "C16"),
                        ("get_lin_open150k_c4", "C4"),
                        ("get_lin_open150k_c4_t100", "C4, --send-tick-us 100")):
        ro = n3.get(name)
        if ro:
            ok = ro["p99_us"] < 1000 and ro["ops_per_sec"] >= 0.95 * 150000
            add(f"3-node read p99 < 1 ms at 150K offered ({label})",
                f"{fmt_us(ro['p99_us'])} ({fmt_ops(ro['ops_per_sec'])} ops/s achieved)", ok)
    for name, label in (("get_lin_open150k_c16", "C16"), ("get_lin_open150k_c4", "C4"),
                        ("get_lin_open150k_c4_t100", "C4, --send-tick-us 100")):
        ro = s.get("n3l", {}).get(name)
        if ro:
            ok = ro["p99_us"] < 1000 and ro["ops_per_sec"] >= 0.95 * 150000
            add(f"3-node read p99 < 1 ms at 150K offered ({label}, --lease-reads)",
                f"{fmt_us(ro['p99_us'])} ({fmt_ops(ro['ops_per_sec'])} ops/s achieved)", ok)
    # The same latency rows on a cluster whose engines live on tmpfs (serve --engine-dir): no
    # LMDB map writeback (docs/operations.md); a separate verdict, never replacing the one above.
    for name, kind, label in (("put_open40k_c16", "write", "C16"),
                              ("put_open40k_c4", "write", "C4"),
                              ("put_open40k_c4_t500", "write", "C4, --send-tick-us 500"),
                              ("get_lin_open150k_c4", "read", "C4"),
                              ("get_lin_open150k_c4_t100", "read", "C4, --send-tick-us 100")):
        ro = s.get("n3t", {}).get(name)
        if ro:
            rate, line = (40000, 5000) if kind == "write" else (150000, 1000)
            ok = ro["p99_us"] < line and ro["ops_per_sec"] >= 0.95 * rate
            add(f"3-node {kind} p99 < {line // 1000} ms at {rate // 1000}K offered ({label}, "
                "--engine-dir on tmpfs)",
                f"{fmt_us(ro['p99_us'])} ({fmt_ops(ro['ops_per_sec'])} ops/s achieved)", ok)
    l1 = n3.get("put_c1", {}).get("p50_us")
    add("3-node single-connection write p50 < 0.5 ms", fmt_us(l1), None if l1 is None else l1 < 500)
    lp = n3.get("list_page1000_lin", {}).get("p99_us")
    add("ListObjectsV2 page of 1000 p99 < 5 ms", fmt_us(lp), None if lp is None else lp < 5000)
    fo = [x["ms"] for x in meta.get("failover", [])]
    if fo:
        good = [x for x in fo if x is not None]
        worst = max(good) if len(good) == len(fo) else None
        add(f"failover (kill -9 leader → write) < 2 s, {len(fo)} kills",
            f"median {median(good):.0f} ms, max " + (f"{worst} ms" if worst else "timeout"),
            worst is not None and worst < 2000)
    return t


def cluster_table(L, rows, title, note=None):
    """A second cluster's rows (ops/s, p50, p99, p99.9) under a heading; nothing if it ran none."""
    if not rows:
        return
    L.append(f"\n## {title}\n")
    if note:
        L.append(note)
    L.append("| workload | ops/s | p50 | p99 | p99.9 |")
    L.append("|---|---:|---:|---:|---:|")
    for key, label in ROWS:
        v = rows.get(key)
        if v:
            L.append(f"| {label} | {fmt_ops(v['ops_per_sec'])} | {fmt_us(v['p50_us'])} | "
                     f"{fmt_us(v['p99_us'])} | {fmt_us(v['p999_us'])} |")


def write_plot(s, out_png, workdir):
    sweep = sorted(
        (v["rate"], v["ops_per_sec"], v["p99_us"], v["p50_us"])
        for k, v in s.get("n3", {}).items() if k.startswith("sweep_put_"))
    if not sweep or not shutil.which("gnuplot"):
        return None
    dat = os.path.join(workdir, "sweep.dat")
    with open(dat, "w") as f:
        f.write("# offered achieved p99_ms p50_ms\n")
        for rate, got, p99, p50 in sweep:
            f.write(f"{rate} {got:.0f} {p99 / 1000:.3f} {p50 / 1000:.3f}\n")
    gp = f"""
set terminal pngcairo size 900,560 noenhanced
set output '{out_png}'
set title '3-node writes, open loop (latency from intended send time)'
set xlabel 'throughput achieved (ops/s)'
set ylabel 'latency (ms)'
set logscale y
set grid
set key top left
plot '{dat}' using 2:3 with linespoints title 'p99', \\
     '{dat}' using 2:4 with linespoints title 'p50', \\
     '{dat}' using 2:3:(sprintf('%dK', $1/1000)) with labels offset 0,1 notitle
"""
    r = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True)
    if r.returncode != 0:
        # pngcairo may be missing from gnuplot-nox builds: fall back to the plain png terminal.
        r = subprocess.run(["gnuplot"], input=gp.replace("pngcairo", "png"), text=True,
                           capture_output=True)
    return out_png if r.returncode == 0 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    meta = json.load(open(a.meta))
    s = summarize(rows)
    date = datetime.date.today().isoformat()
    suffix = "-quick" if meta.get("quick") else ""
    base = os.path.join(a.out, date + suffix)
    png = write_plot(s, base + ".png", os.path.dirname(a.results))

    fs = meta["fdatasync"]
    L = []
    L.append(f"# metacenter benchmark {date}{' (quick)' if meta.get('quick') else ''}\n")
    L.append("| machine | |\n|---|---|")
    L.append(f"| nproc | {meta['nproc']} |")
    L.append(f"| CPU | {meta['cpu']} |")
    L.append(f"| kernel | {meta['kernel']} |")
    L.append(f"| fdatasync 4 KiB (append / overwrite) p50 | {fs['append_p50_us']} µs / "
             f"{fs['overwrite_p50_us']} µs |")
    L.append(f"| fdatasync p99 (append / overwrite) | {fs['append_p99_us']} µs / "
             f"{fs['overwrite_p99_us']} µs |")
    L.append(f"| load average start / end | {meta['loadavg_start']} / {meta.get('loadavg_end', '?')} |")
    L.append(f"| commit | {meta['commit']} |")
    L.append(f"| runs | median of {meta['reps']} × {meta['duration_s']} s per row |\n")
    L.append("Cluster nodes and the load generator share this machine (loopback).\n")
    L.append("| workload | 1 node ops/s | p50 | p99 | 3 nodes ops/s | p50 | p99 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for key, label in ROWS:
        a1, a3 = s.get("n1", {}).get(key), s.get("n3", {}).get(key)
        if not a1 and not a3:
            continue
        c1 = [fmt_ops(a1["ops_per_sec"]), fmt_us(a1["p50_us"]), fmt_us(a1["p99_us"])] if a1 else ["-"] * 3
        c3 = [fmt_ops(a3["ops_per_sec"]), fmt_us(a3["p50_us"]), fmt_us(a3["p99_us"])] if a3 else ["-"] * 3
        L.append(f"| {label} | " + " | ".join(c1 + c3) + " |")
    sweep = sorted((v["rate"], v) for k, v in s.get("n3", {}).items() if k.startswith("sweep_put_"))
    if sweep:
        L.append("\n## 3-node write sweep (open loop, C=64)\n")
        L.append("| offered ops/s | achieved | p50 | p90 | p99 | p99.9 |")
        L.append("|---:|---:|---:|---:|---:|---:|")
        for rate, v in sweep:
            L.append(f"| {fmt_ops(rate)} | {fmt_ops(v['ops_per_sec'])} | {fmt_us(v['p50_us'])} | "
                     f"{fmt_us(v['p90_us'])} | {fmt_us(v['p99_us'])} | {fmt_us(v['p999_us'])} |")
        if png:
            L.append(f"\n![p99 vs throughput]({os.path.basename(png)})")
    cluster_table(L, s.get("n3l", {}),
                  "3 nodes with `serve --lease-reads` (linearizable reads under a leader lease)")
    cluster_table(L, s.get("n3t", {}),
                  "3 nodes with `serve --engine-dir` on tmpfs (no LMDB map writeback)",
                  "The throughput row runs first, so the latency rows follow sustained writes, as "
                  "they do on the cluster above.\n")
    ll = meta.get("list_load")
    if ll:
        n = ll["objects"]
        L.append(f"\n## {n:,} objects (3 nodes)\n")
        L.append(f"Loaded in {ll['load_ms'] / 1000:.1f} s ({n / max(ll['load_ms'], 1) * 1000:,.0f} objects/s).\n")
        L.append("| node | RSS before load | RSS after | of it anonymous | engine file | engine bytes per object | data dir |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for nd in ll["nodes"]:
            L.append(f"| {nd['id']} | {nd['rss_kib_before'] / 1024:.0f} MiB | "
                     f"{nd['rss_kib'] / 1024:.0f} MiB | "
                     f"{nd.get('rss_anon_kib', 0) / 1024:.0f} MiB | "
                     f"{nd['engine_bytes'] / 2**20:.0f} MiB | "
                     f"{(nd['engine_bytes'] - nd['engine_bytes_before']) / n:.0f} B | "
                     f"{nd['data_dir_bytes'] / 2**20:.0f} MiB |")
    fo = meta.get("failover")
    if fo:
        good = [x["ms"] for x in fo if x["ms"] is not None]
        L.append(f"\n## Failover (kill -9 the leader, time to the first successful write)\n")
        L.append(f"{len(fo)} kills: median {median(good) or 0:.0f} ms, max "
                 f"{max(good) if good else 0} ms, failed {len(fo) - len(good)}; "
                 f"all: {', '.join(str(x['ms']) for x in fo)} ms")
    L.append("\n## Targets\n")
    L.append("| target | measured | |\n|---|---|---|")
    for name, measured, verdict in target_lines(s, meta):
        L.append(f"| {name} | {measured} | {verdict} |")
    md = "\n".join(L) + "\n"
    with open(base + ".md", "w") as f:
        f.write(md)
    with open(base + ".json", "w") as f:
        json.dump({"date": date, "meta": meta, "summary": s}, f, indent=1, sort_keys=True)
    print(md)
    print(f"wrote {base}.md {base}.json" + (f" {png}" if png else ""))


if __name__ == "__main__":
    main()
