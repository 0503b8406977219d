#!/usr/bin/env python3
"""Fail if the modules of any crate depend on each other in a ring.

For each crate under crates/*/src this builds a graph whose nodes are the crate's source files
(file = module: `lib.rs`/`main.rs` is the crate root, `a/mod.rs` and `a.rs` are module `a`,
`a/b.rs` is `a::b`; inline `mod x { ... }` blocks, such as `mod tests`, belong to their file).
An edge A -> B means a file refers to something in B:

- `use crate::...`, `use super::...`, `use self::...` (including `{...}` groups and globs), and
- `crate::...`, `super::...`, `self::...` paths anywhere in code (comments and strings ignored).

A path is resolved segment by segment to the deepest module it names; a name that a module
re-exports (`pub use x::Name`, `pub use x::*`) is followed to the module that defines it, so a
`crate::Name` re-exported by lib.rs counts as a dependency on the module that defines `Name`.
`mod x;` declarations are not dependencies.

Rule: edges between a module and its own ancestors or descendants are ignored (a parent using
its child, or a child using `super::` items of its parent, is how Rust modules nest); every
other edge, between siblings and cousins, counts. Any strongly connected set of modules is an
error: the script prints each elementary cycle as `crate: a -> b -> a`, with where each edge
comes from, and exits 1. Exits 0 and prints nothing else than a summary line when there are none.

Usage: python3 scripts/check-module-cycles.py [REPO_ROOT]
"""

import os
import re
import sys

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ITEM_KW = {"struct", "enum", "fn", "trait", "type", "const", "static", "union", "mod", "macro_rules"}


def strip(src):
    """Replace comments, string and char literals by spaces (newlines kept for line numbers)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif (c in "rb" or c == '"') and (m := re.match(r'(b?r)(#*)"|b?"', src[i:])) and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")
        ):
            if m.group(1):
                end = '"' + m.group(2)
                j = src.find(end, i + m.end())
                j = n if j < 0 else j + len(end)
            else:
                j = i + m.end()
                while j < n and src[j] != '"':
                    j += 2 if src[j] == "\\" else 1
                j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", src[i:], re.S)
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokens(text):
    """(kind, value, line): identifiers, `::` and single punctuation characters."""
    line, i, n = 1, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif m := IDENT.match(text, i):
            yield ("id", m.group(0), line)
            i = m.end()
        elif text.startswith("::", i):
            yield ("p", "::", line)
            i += 2
        else:
            yield ("p", c, line)
            i += 1


def parse_use_tree(toks, k, prefix, out):
    """Parse one use tree starting at toks[k]; append (segments, alias_or_None_or_'*') to out."""
    segs = list(prefix)
    while k < len(toks):
        kind, val, _ = toks[k]
        if kind == "id":
            segs.append(val)
            k += 1
            if k < len(toks) and toks[k][1] == "::":
                k += 1
                continue
            alias = val
            if k + 1 < len(toks) and toks[k][1] == "as":
                alias = toks[k + 1][1]
                k += 2
            if segs[-1] == "self":
                segs.pop()
                alias = segs[-1] if alias == "self" and segs else alias
            out.append((segs, alias))
            return k
        if val == "*":
            out.append((segs, "*"))
            return k + 1
        if val == "{":
            k += 1
            while k < len(toks) and toks[k][1] != "}":
                if toks[k][1] == ",":
                    k += 1
                    continue
                k = parse_use_tree(toks, k, segs, out)
            return k + 1
        if val == "::":  # leading `::`
            k += 1
            continue
        return k
    return k


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of segments; () is the crate root
        self.file = file
        self.items = set()  # names defined here
        self.reexports = {}  # name -> absolute segments
        self.globs = []  # absolute module segments re-exported with `*`
        self.refs = []  # (absolute segments, line)


def module_path(src_dir, file):
    rel = os.path.relpath(file, src_dir)[: -len(".rs")].split(os.sep)
    if rel[-1] == "mod" or (len(rel) == 1 and rel[0] in ("lib", "main")):
        rel = rel[:-1]
    return tuple(rel)


def absolute(segs, here):
    """Make a path absolute (tuple) if it starts with crate/self/super, else None."""
    if not segs:
        return None
    if segs[0] == "crate":
        return tuple(segs[1:])
    base = list(here)
    rest = list(segs)
    if rest[0] == "self":
        rest.pop(0)
    elif rest[0] == "super":
        while rest and rest[0] == "super":
            if not base:
                return None
            base.pop()
            rest.pop(0)
    else:
        return None
    return tuple(base + rest)


def scan(mod):
    text = strip(open(mod.file, encoding="utf-8").read())
    toks = list(tokens(text))
    inline = []  # stack of (name, depth at which its `{` opened)
    depth = 0
    k = 0
    while k < len(toks):
        kind, val, line = toks[k]
        here = mod.path + tuple(name for name, _ in inline)
        if val == "{":
            depth += 1
        elif val == "}":
            depth -= 1
            if inline and inline[-1][1] == depth:
                inline.pop()
        elif kind == "id" and val == "mod" and k + 2 < len(toks) and toks[k + 2][1] == "{":
            inline.append((toks[k + 1][1], depth))
            depth += 1
            k += 3
            continue
        elif kind == "id" and val in ITEM_KW and k + 1 < len(toks) and toks[k + 1][0] == "id":
            if not inline:
                mod.items.add(toks[k + 1][1])
        elif kind == "id" and val == "use" and (k == 0 or toks[k - 1][1] != "::"):
            public = k > 0 and (toks[k - 1][1] == "pub" or toks[k - 1][1] == ")")
            trees = []
            k = parse_use_tree(toks, k + 1, [], trees)
            for segs, alias in trees:
                target = absolute(segs, here)
                if target is None:
                    continue
                mod.refs.append((target, line))
                if public and not inline:
                    if alias == "*":
                        mod.globs.append(target)
                    else:
                        mod.reexports[alias] = target
            continue
        elif kind == "id" and val in ("crate", "super", "self") and (
            k + 1 < len(toks) and toks[k + 1][1] == "::"
        ):
            prev = toks[k - 1][1] if k else ""
            if prev not in ("::", "$", "in"):  # not `$crate::`, `pub(in crate::x)`
                segs = [val]
                j = k + 1
                while j + 1 < len(toks) and toks[j][1] == "::" and toks[j + 1][0] == "id":
                    segs.append(toks[j + 1][1])
                    j += 2
                target = absolute(segs, here)
                if target is not None:
                    mod.refs.append((target, line))
                k = j
                continue
        k += 1


def resolve(mods, path, seen=None):
    """The file module that defines what `path` names."""
    seen = seen or set()
    cur = ()
    for i, seg in enumerate(path):
        if cur + (seg,) in mods:
            cur = cur + (seg,)
            continue
        m = mods.get(cur)
        if m is None or seg in m.items:
            return cur
        key = (cur, seg)
        if key in seen:
            return cur
        seen.add(key)
        if seg in m.reexports:
            return resolve(mods, m.reexports[seg] + tuple(path[i + 1 :]), seen)
        for g in m.globs:
            gm = resolve(mods, g, seen)
            if gm in mods and (seg in mods[gm].items or seg in mods[gm].reexports):
                return resolve(mods, gm + tuple(path[i:]), seen)
        return cur
    return cur


def related(a, b):
    return a[: len(b)] == b or b[: len(a)] == a


def name(path):
    return "::".join(path) if path else "crate"


def simple_cycles(graph, limit=200):
    """Elementary cycles, each reported once starting at its smallest node (small graphs only)."""
    found = []
    nodes = sorted(graph)
    for start in nodes:
        stack = [(start, [start])]
        while stack and len(found) < limit:
            node, trail = stack.pop()
            for nxt in sorted(graph[node], reverse=True):
                if nxt == start:
                    found.append(trail + [start])
                elif nxt > start and nxt not in trail:
                    stack.append((nxt, trail + [nxt]))
    return found


def check_crate(crate_dir):
    src = os.path.join(crate_dir, "src")
    crate = os.path.basename(crate_dir)
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                file = os.path.join(root, f)
                p = module_path(src, file)
                if p in mods:  # lib.rs and main.rs both: check the library
                    if os.path.basename(file) == "main.rs":
                        continue
                mods[p] = Module(p, file)
    for m in mods.values():
        scan(m)
    graph = {p: set() for p in mods}
    where = {}
    for m in mods.values():
        for target, line in m.refs:
            t = resolve(mods, target)
            if t in mods and not related(m.path, t):
                graph[m.path].add(t)
                where.setdefault((m.path, t), f"{os.path.relpath(m.file)}:{line}")
    cycles = simple_cycles(graph)
    for c in cycles:
        print(f"{crate}: " + " -> ".join(name(p) for p in c))
        for a, b in zip(c, c[1:]):
            print(f"    {name(a)} -> {name(b)}: {where[(a, b)]}")
    return len(cycles), len(mods)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    crates = sorted(
        os.path.join(root, "crates", c)
        for c in os.listdir(os.path.join(root, "crates"))
        if os.path.isdir(os.path.join(root, "crates", c, "src"))
    )
    total = modules = 0
    for c in crates:
        n, m = check_crate(c)
        total += n
        modules += m
    if total:
        print(f"{total} module cycle(s); move the shared items into a module both can use")
        return 1
    print(f"no module cycles ({len(crates)} crates, {modules} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
