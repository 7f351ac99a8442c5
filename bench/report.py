#!/usr/bin/python3
"""report.py STEM: STEM.json (written by bench.py) -> STEM.md, STEM.dat and
STEM.png (gnuplot). Runs on its own too, to redo a report or a chart."""

import json
import shutil
import statistics
import subprocess
import sys

LOWER_IS_BETTER = {"W7", "W8"}


def summarize(runs, key):
    """Median over the runs without errors; runs with errors are counted
    and shown, never averaged in."""
    ok = [r for r in runs if r["errors"] == 0 and r["requests"] > 0]
    bad = [r for r in runs if r not in ok]
    s = {"n": len(runs), "bad": len(bad),
         "bad_errors": sum(max(r["errors"], 0) for r in bad)}
    if not ok:
        return s
    med = lambda f: statistics.median(f(r) for r in ok)
    s["value"] = med(lambda r: r["value"])
    s["cpu_req_us"] = med(lambda r: r["cpu_s"] / r["requests"] * 1e6)
    s["cpu_gb_s"] = med(lambda r: r["cpu_s"] / (r["bytes"] / 1e9)
                        if r["bytes"] else 0)
    s["peak_mib"] = max(r["peak_kib"] for r in ok) / 1024
    s["runs"] = [round(r["value"], 1) for r in runs]
    if key == "W8":
        s["p99"] = med(lambda r: r["p99_us"])
        s["rate"] = med(lambda r: r["rate"])
    return s


def fmt_value(key, s):
    if "value" not in s:
        return "ERR"
    if key == "W8":
        return f"{s['value']:.0f} / {s['p99']:.0f} µs @ {s['rate']:.0f}/s"
    if key == "W7":
        return f"{s['value']:.1f}"
    return f"{s['value']:,.0f}" if s["value"] >= 100 else f"{s['value']:.1f}"


def table(data):
    info, res = data["info"], data["results"]
    labels = info["labels"]
    out = ["| W | workload | server | result | unit | server CPU µs/req | "
           "server CPU s/GB | peak RSS MiB | errors | runs | "
           "kttpd ÷ server (result) | kttpd ÷ server (CPU/req) |",
           "|---|---|---|---:|---|---:|---:|---:|---|---|---:|---:|"]
    summ = {}
    for key, title, unit, h2 in info["workloads"]:
        per = res.get(key, {})
        summ[key] = {n: summarize(r, key) for n, r in per.items()}
        k = summ[key].get("kttpd", {})
        for name in per:
            s = summ[key][name]
            if h2 and not info["h2"].get(name):
                out.append(f"| {key} | {title} | {labels[name]} | "
                           f"n/a (no HTTP/2 yet) | | | | | | | | |")
                continue
            err = "0" if not s["bad"] else \
                f"**{s['bad']} run(s) with errors ({s['bad_errors']})**"
            r1 = r2 = ""
            if name != "kttpd" and "value" in s and "value" in k:
                r1 = f"{k['value'] / s['value']:.2f}" if s["value"] else ""
                r2 = f"{k['cpu_req_us'] / s['cpu_req_us']:.2f}" \
                    if s["cpu_req_us"] else ""
            cells = [key, title, labels[name], fmt_value(key, s), unit]
            if "value" in s:
                cells += [f"{s['cpu_req_us']:.1f}",
                          f"{s['cpu_gb_s']:.2f}" if s["cpu_gb_s"] else "",
                          f"{s['peak_mib']:.1f}"]
            else:
                cells += ["", "", ""]
            cells += [err, " / ".join(map(str, s.get("runs", []))), r1, r2]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out), summ


def physical(info, summ):
    aes = info.get("aes_bytes_per_s", 0)
    k = summ.get("W3", {}).get("kttpd", {})
    if not aes or "cpu_gb_s" not in k:
        return "AES-128-GCM limit: not measured."
    aes_s_gb = 1e9 / aes
    return (f"- AES-128-GCM on one core (`{info['aes_cmd']}`): "
            f"{aes / 1e9:.2f} GB/s = {aes_s_gb:.3f} CPU-s per GB.\n"
            f"- kttpd W3 server CPU: {k['cpu_gb_s']:.3f} CPU-s per GB "
            f"({1 / k['cpu_gb_s']:.2f} GB/s per core if CPU-bound): "
            f"{k['cpu_gb_s'] / aes_s_gb:.2f}x the bare cipher cost.")


def chart_data(info, summ, path):
    """Result and CPU/req of each server relative to nginx (= 1)."""
    names = list(info["labels"])
    keys = [w[0] for w in info["workloads"] if w[0] not in ("W7", "W8")]
    with open(path, "w") as f:
        f.write("# workload " + " ".join(names) + "  (result, then CPU/req; "
                "relative to nginx)\n")
        for key in keys:
            base = summ[key].get("nginx", {})
            row = [key]
            for field in ("value", "cpu_req_us"):
                for n in names:
                    s = summ[key].get(n, {})
                    ok = field in s and base.get(field)
                    row.append(f"{s[field] / base[field]:.3f}" if ok else "-")
            f.write(" ".join(row) + "\n")
    return names


def chart(stem, info, names):
    if not shutil.which("gnuplot"):
        return False
    n = len(names)
    lab = lambda i: info["labels"][names[i]].replace("_", "\\\\_")
    p1 = ", ".join(f"'{stem}.dat' using {i + 2}:xtic(1) title '{lab(i)}'"
                   for i in range(n))
    p2 = ", ".join(f"'{stem}.dat' using {n + i + 2}:xtic(1) title '{lab(i)}'"
                   for i in range(n))
    gp = f"""set terminal pngcairo size 1100,800 font ',10'
set output '{stem}.png'
set datafile missing '-'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
set yrange [0:*]
set multiplot layout 2,1 title '{info['host']} {info['date']}: \
{'kTLS' if info['ktls'] else 'userspace TLS'}, {info['mode']} run'
set title 'throughput relative to nginx (higher is better)'
plot {p1}
set title 'server CPU per request relative to nginx (lower is better)'
plot {p2}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True)
    return r.returncode == 0


def write(stem):
    with open(stem + ".json") as f:
        data = json.load(f)
    info = data["info"]
    tab, summ = table(data)
    names = chart_data(info, summ, stem + ".dat")
    png = chart(stem, info, names)
    name = stem.rsplit("/", 1)[-1]
    v = info["versions"]
    mode = ("kTLS (tls ULP available; kttpd also run with `ktls = false` "
            "in the same run)" if info["ktls"] else
            "userspace TLS (no tls ULP in this kernel: "
            f"tcp_available_ulp = `{info['ulp'] or '-'}`)")
    st0, st1 = info.get("tls_stat_before", {}), info.get("tls_stat_after", {})
    stat = ", ".join(f"{k} {st1[k] - st0.get(k, 0):+d}" for k in st1
                     if st1[k] != st0.get(k, 0)) or "no change / not present"
    lines = [
        f"# kttpd benchmark: {info['date']} on {info['host']}", "",
        f"Mode: **{mode}**. Run: **{info['mode']}** "
        f"({info['rounds']} interleaved rounds of {info['dur']} s; W7 "
        f"{info['idle_rounds']} round(s)). Negotiated: " +
        ", ".join(f"{info['labels'][n]} {c}"
                  for n, c in info["negotiated"].items()) + ".", "",
        "![chart](" + name + ".png)" if png else "(no gnuplot: no chart)", "",
        tab, "",
        "Ratios are kttpd ÷ server: above 1 means kttpd is ahead for "
        "req/s, MB/s, conn/s; below 1 means kttpd is ahead for KiB/conn, "
        "latency (p50 shown) and CPU per request. `runs` lists every run's "
        "result; a run with errors is excluded from the median.", "",
        "## Physical limit (beside W3)", "", physical(info, summ), "",
        "## Machine", "",
        f"- host {info['host']}, {info['os']}, kernel {info['kernel']}",
        f"- CPU {info['cpu']} x {info['nproc']}, {info['mem_gib']} GiB",
        f"- tcp_available_ulp: `{info['ulp'] or '-'}`; "
        f"/proc/net/tls_stat over the run: {stat}",
        f"- server pinned to CPU {info['server_cpu']}, clients to CPUs "
        f"{info['client_cpus']} ({info['client_threads']} client threads)",
        f"- binaries: {info['prefix']}", "",
        "## Versions", "",
    ] + [f"- {k}: {val}" for k, val in v.items()] + [
        "", "## Commands", "",
        "Client commands (kttpd's run shown; peers differ only in port):", "",
        "```"] + [f"{k}: {c}" for k, c in info["commands"].items()] + [
        "```", "", "Servers:", "", "```"] + [
        f"{k}: {c}" for k, c in info["server_cmds"].items()] + ["```", "",
        "<details><summary>Server configurations</summary>", ""]
    for k, c in info["server_confs"].items():
        lines += [f"{k}:", "", "```", c.strip(), "```", ""]
    lines += ["</details>", ""]
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    write(sys.argv[1])
