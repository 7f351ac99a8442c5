#!/usr/bin/python3
"""File-level dependency graph of server/*.c and sys/*.c.

An edge "A -> B" means A.c calls (or takes the address of, or reads) a
global symbol that B.c defines. It is derived from the symbol tables of
the objects in build/ (`nm`): for every object, the symbols it defines
(T, D, B, R, ...) and the ones it leaves undefined (U). Calls through a
function pointer or an ops table set at run time are not edges: that is
the point of such a table.

Prints the edges, the strongly connected components with more than one
file (the cycles), and the length of the longest simple cycle.

    make -j2 all && /usr/bin/python3 tests/deps.py [--build build]
    ... --dot   (Graphviz instead of the text report)
"""

import argparse
import glob
import os
import subprocess
import sys


def symbols(obj):
    """(defined, undefined) global symbol names of one object file."""
    out = subprocess.run(["nm", "-P", obj], check=True, capture_output=True,
                         text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        name, kind = f[0], f[1]
        if kind == "U":
            undefined.add(name)
        elif kind.isupper() and kind not in "N":
            defined.add(name)
    return defined, undefined


def graph(build):
    objs = sorted(glob.glob(os.path.join(build, "server", "*.o")) +
                  glob.glob(os.path.join(build, "sys", "*.o")))
    if not objs:
        sys.exit(f"deps.py: no objects under {build}/: run make first")
    name = {o: os.path.relpath(o, build)[:-2] + ".c" for o in objs}
    owner, uses = {}, {}
    for o in objs:
        d, u = symbols(o)
        for s in d:
            owner[s] = name[o]
        uses[name[o]] = u
    edges = {n: set() for n in uses}
    for a, u in uses.items():
        for s in u:
            b = owner.get(s)
            if b is not None and b != a:
                edges[a].add(b)
    return edges


def sccs(edges):
    """Tarjan: components, each a sorted list, largest first."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: (-len(c), c))


def longest_cycle(edges, comp):
    """Longest simple cycle inside one component (exhaustive DFS: each
    cycle is enumerated once, from its smallest member)."""
    nodes = sorted(comp)
    rank = {n: i for i, n in enumerate(nodes)}
    best = [0, []]

    def dfs(start, v, path, seen):
        for w in edges[v]:
            if w not in rank or rank[w] < rank[start]:
                continue
            if w == start:
                if len(path) > best[0]:
                    best[0], best[1] = len(path), list(path)
            elif w not in seen:
                seen.add(w)
                path.append(w)
                dfs(start, w, path, seen)
                path.pop()
                seen.discard(w)

    for s in nodes:
        if len(nodes) - rank[s] <= best[0]:
            break
        dfs(s, s, [s], {s})
    return best[0], best[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--dot", action="store_true")
    args = ap.parse_args()
    edges = graph(args.build)
    if args.dot:
        print("digraph kttpd {")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        return
    n = 0
    for a in sorted(edges):
        for b in sorted(edges[a]):
            print(f"{a} -> {b}")
            n += 1
    print(f"# {len(edges)} files, {n} edges")
    cycles = [c for c in sccs(edges) if len(c) > 1]
    longest, path = 0, []
    for c in cycles:
        print(f"cycle ({len(c)} files): {' '.join(c)}")
        k, p = longest_cycle(edges, c)
        if k > longest:
            longest, path = k, p
    if not cycles:
        print("cycles: none")
    print(f"longest cycle: {longest}" +
          (f" ({' -> '.join(path + path[:1])})" if path else ""))


if __name__ == "__main__":
    main()
