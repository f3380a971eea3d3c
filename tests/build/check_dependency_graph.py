#!/usr/bin/env python3
"""Checks that nodeagent's libraries depend on each other one way only.

  check_dependency_graph.py --dot GRAPH.dot [--source-dir DIR]
  check_dependency_graph.py --self-test

GRAPH.dot is `cmake --graphviz` output for the build tree. With --source-dir, the
`#include "folder/..."` lines of every top-level folder are checked against the same
rules, so a header-only use of another library is caught too. Exit 1 on any violation.

The rules (the picture in docs and README "Layout"):
  daemon  -> modules -> core -> common        (the daemon is the only composition root)
  reporter, control, kube -> core -> common   (kube may be used by modules as a source)
  foundation (common, systemd, netfilter, generated protos) depends on foundation only
  a module never depends on another module, nor on daemon, reporter, control or cli.
A library not named below counts as a module.
"""
import re
import sys

FOUNDATION = {"common", "systemd", "netfilter", "control_proto", "cri_proto"}
ALLOWED = {
    "core": {"common"},
    "kube": {"core", "common"},
    "reporter": {"kube", "core", "common"},
    "control": {"core", "common", "control_proto"},
    "cli": {"common", "control_proto"},
}
UPPER = {"daemon", "reporter", "control", "cli"}


def kind(lib):
    if lib in FOUNDATION:
        return "foundation"
    if lib in ALLOWED or lib == "daemon":
        return lib
    return "module"


def allowed(src, dst):
    """None when src may depend on dst, else the reason it may not."""
    k = kind(src)
    if k == "foundation":
        return None if dst in FOUNDATION else "foundation libraries depend on foundation libraries only"
    if k == "daemon":
        return None if dst != "cli" else "the daemon does not use the CLI"
    if k == "module":
        if dst in UPPER:
            return "a module must not depend on " + dst + " (daemon -> modules -> core)"
        if kind(dst) == "module":
            return "a module must not depend on another module (share through core/ or common/)"
        return None
    return None if dst in ALLOWED[k] else f"{src} may depend on {sorted(ALLOWED[k])} only"


def find_cycle(edges):
    """A list of nodes forming a cycle, or None."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def parse_dot(text):
    """Edges between the project's own libraries (nodeagent_X -> nodeagent_Y), as (X, Y)."""
    labels = {}
    # Libraries that hold code (static, shared, object); interface targets such as
    # nodeagent_warnings only carry flags.
    for m in re.finditer(r'"(node\d+)"\s*\[\s*label\s*=\s*"([^"]+)"(?:\s*,\s*shape\s*=\s*(\w+))?', text):
        if m.group(3) in (None, "octagon", "doubleoctagon", "hexagon"):
            labels[m.group(1)] = m.group(2)
    edges = set()
    for m in re.finditer(r'"(node\d+)"\s*->\s*"(node\d+)"', text):
        a, b = labels.get(m.group(1), ""), labels.get(m.group(2), "")
        if a.startswith("nodeagent_") and b.startswith("nodeagent_"):
            edges.add((a[len("nodeagent_"):], b[len("nodeagent_"):]))
    return edges


def include_edges(source_dir):
    """(folder, included folder, where) for every #include "folder/..." between folders."""
    import os
    libs = {d for d in os.listdir(source_dir)
            if os.path.isfile(os.path.join(source_dir, d, "CMakeLists.txt")) and d not in ("tests", "bench")}
    found = []
    for lib in sorted(libs):
        for root, _, files in os.walk(os.path.join(source_dir, lib)):
            for f in files:
                if not f.endswith((".h", ".cpp", ".h.in")):
                    continue
                path = os.path.join(root, f)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for no, line in enumerate(fh, 1):
                        m = re.match(r'\s*#\s*include\s+"([a-z_]+)/', line)
                        if m and m.group(1) in libs and m.group(1) != lib:
                            found.append((lib, m.group(1), f"{os.path.relpath(path, source_dir)}:{no}"))
    return found


def check(edges, includes=()):
    problems = []
    lib_edges = {(a, b) for a, b in edges if "test" not in a and "test" not in b}
    cycle = find_cycle(edges)
    if cycle:
        problems.append("cycle between libraries: " + " -> ".join("nodeagent_" + n for n in cycle))
    for a, b in sorted(lib_edges):
        why = allowed(a, b)
        if why:
            problems.append(f"nodeagent_{a} -> nodeagent_{b}: {why}")
    for a, b, where in includes:
        why = allowed(a, b)
        if why:
            problems.append(f"{where}: {a}/ includes {b}/: {why}")
    return problems


def self_test():
    ok = [("daemon", "ipvs"), ("ipvs", "core"), ("ipvs", "netfilter"), ("core", "common"), ("reporter", "kube")]
    cases = {
        "acyclic graph": (ok, False),
        "cycle": (ok + [("core", "ipvs")], True),
        "module uses module": (ok + [("ipvs", "sysctl")], True),
        "module uses daemon": (ok + [("sysctl", "daemon")], True),
        "core uses kube": (ok + [("core", "kube")], True),
        "test library cycle": (ok + [("kube_testserver", "kube"), ("kube", "kube_testserver")], True),
    }
    bad = 0
    for name, (edges, expect_fail) in cases.items():
        got = bool(check(set(edges)))
        if got != expect_fail:
            print(f"self-test {name}: expected {'failure' if expect_fail else 'success'}", file=sys.stderr)
            bad += 1
    if check(set(ok), [("sysctl", "ipvs", "sysctl/module.cpp:3")]) == []:
        print("self-test: an include of another module was not reported", file=sys.stderr)
        bad += 1
    if parse_dot('"node0" [ label = "nodeagent_a", shape = octagon ];\n"node1" [ label = "nodeagent_b" ];\n'
                 '"node2" [ label = "nodeagent_flags", shape = pentagon ];\n'
                 '"node0" -> "node1" // nodeagent_a -> nodeagent_b\n"node0" -> "node2"\n') != {("a", "b")}:
        print("self-test: dot parsing", file=sys.stderr)
        bad += 1
    print("self-test: " + ("ok" if not bad else f"{bad} failed"))
    return 1 if bad else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    args = dict(zip(argv[1::2], argv[2::2]))
    with open(args["--dot"], encoding="utf-8") as fh:
        edges = parse_dot(fh.read())
    if not edges:
        print(f"{args['--dot']}: no edges between nodeagent_* libraries (wrong file?)", file=sys.stderr)
        return 1
    includes = include_edges(args["--source-dir"]) if "--source-dir" in args else []
    problems = check(edges, includes)
    for p in problems:
        print(p, file=sys.stderr)
    libs = sorted({n for e in edges for n in e if "test" not in n})
    for lib in libs:
        deps = sorted(b for a, b in edges if a == lib)
        print(f"nodeagent_{lib} -> {', '.join('nodeagent_' + d for d in deps) or '(none)'}")
    print(f"{len(libs)} libraries, {len(edges)} edges, {len(includes)} cross-folder includes: "
          + ("OK" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
