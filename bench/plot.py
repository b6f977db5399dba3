#!/usr/bin/python3
# Bar charts of a benchmark's results, next to its raw text:
#   bench/plot.py RESULTS.txt [OUT.png]      (default: RESULTS.png)
#
# Every benchmark script prints right-aligned tables (printf %Ns columns):
# a header line, then rows of a label and numbers. This finds each table,
# takes the columns whose header ends where the rows' numbers end (lists of
# per-round figures with no header of their own are left out), and draws
# one small chart per measure, the systems side by side in the same colours
# in every chart (Cairn in the house colour). Tables whose columns are the
# systems (bench.sh: workload, raw, btrfs, fuse2fs, cairn) get one chart per
# row instead. Ratio columns (a header with "/") are drawn too: they are
# what the targets are written in.
#
# Needs Debian's python3-matplotlib (/usr/bin/python3: the Debian one, not
# whatever python3 comes first in PATH).
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$|-$")
SYSTEMS = ["cairn", "btrfs", "ext4", "fuse2fs", "raw", "passthrough_hp", "xfs", "tmpfs"]
COLOURS = {"cairn": "#c2410c", "btrfs": "#2563eb", "ext4": "#16a34a", "fuse2fs": "#7c3aed", "raw": "#6b7280",
           "passthrough_hp": "#0891b2", "xfs": "#ca8a04", "tmpfs": "#db2777"}
OTHER = ["#9ca3af", "#f59e0b", "#10b981", "#6366f1", "#ef4444", "#14b8a6", "#a855f7", "#84cc16"]


def fields(line):
    """(start, end, text) of every whitespace-separated field."""
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", line)]


def parse_row(line):
    """(label, [(end, value)]) or None: a label, then numbers to the end."""
    fs = fields(line)
    nums = []
    while fs and NUMBER.match(fs[-1][2]):
        nums.insert(0, fs.pop())
    if not fs or not nums or NUMBER.match(fs[0][2]):
        return None
    label = " ".join(f[2] for f in fs)
    return label, [(end, None if text == "-" else float(text)) for _, end, text in nums], fs[-1][1]


def tables(text):
    lines = text.splitlines()
    i = 0
    while i < len(lines) - 1:
        header = lines[i]
        rows = []
        j = i + 1
        while j < len(lines):
            r = parse_row(lines[j])
            if not r:
                break
            rows.append(r)
            j += 1
        if rows and header.strip() and parse_row(header) is None and not header.lstrip().startswith(("(", "#")):
            t = make_table(header, rows)
            if t:
                yield t
            i = j
        else:
            i += 1


def make_table(header, rows):
    # Columns: the right edges where the header has a word ending and every
    # row a number ending.
    edges = [e for e, _ in rows[0][1]]
    label_end = max(r[2] for r in rows)
    cols = []
    # The first column starts after the header word over the labels ("system",
    # "checksum"), which may be longer than every label.
    prev = max([label_end] + [e for st, e, _ in fields(header) if st < label_end])
    for e in edges:
        if e > len(header) or header[e - 1] == " " or (e < len(header) and header[e] != " "):
            continue
        if not all(any(end == e for end, _ in r[1]) for r in rows):
            continue
        name = header[prev:e].strip()
        prev = e
        if name:
            cols.append((e, name))
    if not cols:
        return None
    title = header[:label_end].strip()
    data = []
    for label, nums, _ in rows:
        by_end = dict(nums)
        data.append((label, [by_end.get(e) for e, _ in cols]))
    return {"title": title, "columns": [n for _, n in cols], "rows": data}


def utf8(s):
    """Back from the byte-per-character reading (printf aligns bytes, not characters)."""
    return s.encode("latin-1").decode("utf-8", "replace")


def short(v):
    if abs(v) >= 1e6:
        return "%.1fM" % (v / 1e6)
    if abs(v) >= 1e4:
        return "%.0fk" % (v / 1e3)
    if abs(v) >= 100:
        return "%.0f" % v
    return "%.3g" % v


def colour(name, i):
    key = name.split()[0].split("/")[0].lower()
    return COLOURS.get(key, OTHER[i % len(OTHER)])


def charts(t):
    """[(chart title, [(bar label, value)])]"""
    cols = [c.lower() for c in t["columns"]]
    if sum(c in SYSTEMS for c in cols) >= 2:
        out = []
        for label, vals in t["rows"]:
            bars = [(c, v) for c, v in zip(t["columns"], vals) if v is not None and "/" not in c]
            out.append((label, bars))
        return out
    out = []
    for k, c in enumerate(t["columns"]):
        bars = [(label, vals[k]) for label, vals in t["rows"] if vals[k] is not None]
        if bars:
            out.append((c, bars))
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: plot.py RESULTS.txt [OUT.png]")
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.splitext(src)[0] + ".png"
    with open(src, encoding="latin-1") as f:
        text = f.read()
    panels = []
    for t in tables(text):
        for title, bars in charts(t):
            # A table of ratios says what over what in its label column.
            if "/" in t["title"]:
                title = t["title"] + ": " + title
            panels.append((utf8(t["title"]), utf8(title), [(utf8(n), v) for n, v in bars]))
    if not panels:
        sys.exit("plot.py: no table found in " + src)
    cols = min(4, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    labels_seen = {}
    for ax, (group, title, bars) in zip(axes.flat, panels):
        names = [b[0] for b in bars]
        for n in names:
            labels_seen.setdefault(n, len(labels_seen))
        ax.bar(range(len(bars)), [b[1] for b in bars],
               color=[colour(n, labels_seen[n]) for n in names])
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels(names, rotation=35 if max(len(n) for n in names) > 6 or len(names) > 4 else 0,
                           ha="right" if len(names) > 4 or max(len(n) for n in names) > 6 else "center",
                           fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        for k, b in enumerate(bars):
            ax.annotate(short(b[1]), (k, b[1]), ha="center", va="bottom", fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("machine:")), "")
    fig.suptitle(os.path.basename(src) + (": " + utf8(first.strip())[:110] if first else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
