#!/usr/bin/env python3
"""No module imports another that (directly or through others) imports it back.

For each crate named on the command line (a directory with src/), every module is a file under
src/ (lib.rs, main.rs and mod.rs stand for their directory). A module imports another when its
code, outside its `#[cfg(test)]` block, names a path into it: `crate::a::b`, `super::x`,
`self::x` (a child is not imported by being declared with `mod`, only by being used). The import
graph must have no cycle; each cycle found is printed, and the exit status is 1.

    python3 scripts/check_imports.py client connect cli extension tests
"""
import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{|::\*)")


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip(text: str) -> str:
    """The code alone: comments, strings and char literals blanked, the `#[cfg(test)]` module
    (at the end of a file, by this project's convention) cut off."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif re.match(r'b?r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            opening = re.match(r'b?r(#*)"', text[i:])
            hashes = opening.group(1)
            end = text.find('"' + hashes, i + len(opening.group(0)))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^'\\])'", text[i:]):
            i += len(re.match(r"'(\\.|[^'\\])'", text[i:]).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    cut = re.search(r"#\[cfg\([^\]]*\btest\b[^\]]*\)\]\s*mod\s+\w+\s*\{", code)
    return code[: cut.start()] if cut else code


def use_trees(text: str):
    """Each `use` declaration: whether it is `pub` (in any form), and its tree."""
    for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        yield bool(m.group(1)), re.sub(r"\s+", " ", m.group(2).strip())


def expand(tree: str) -> list:
    """A use tree as the paths it names: `a::{b, c::{self, d as e}}` is `(["a", "b"], None)`,
    `(["a", "c"], None)`, `(["a", "c", "d"], "e")`; `*` stays a segment of its own."""
    tree = re.sub(r"\s*(::|,|\{|\})\s*", r"\1", tree)
    pos = 0

    def parse(prefix):
        nonlocal pos
        paths = []
        segments = list(prefix)
        while pos < len(tree):
            if tree[pos] == "{":
                pos += 1
                while pos < len(tree) and tree[pos] != "}":
                    paths += parse(segments)
                    if pos < len(tree) and tree[pos] == ",":
                        pos += 1
                pos += 1
                return paths
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\*").match(tree, pos)
            if not m:
                break
            pos = m.end()
            name = m.group(0)
            if name == "self":
                paths.append((segments, None))
            else:
                segments = segments + [name]
            if tree.startswith("::", pos):
                pos += 2
                continue
            alias = re.compile(r" as ([A-Za-z_][A-Za-z0-9_]*)").match(tree, pos)
            if alias:
                pos = alias.end()
            if name != "self":
                paths.append((segments, alias.group(1) if alias else None))
            break
        return paths

    return parse([])


def absolute(modules: set, here: tuple, segments: list):
    """`segments` from `crate::`, `super::`, `self::` or a module declared here, as
    `(root, rest)`; `None` for another crate's path."""
    if segments and segments[0] in ("crate", "super", "self"):
        return segments[0], segments[1:]
    if segments and here + (segments[0],) in modules:
        return "self", segments
    return None


def reexports(modules: set, here: tuple, text: str) -> dict:
    """What a module re-exports: each name `pub use` brings in, and the module it comes from
    (`None` for another crate's, e.g. `pub use other_crate as name`; the module itself for an item
    of its own, e.g. a macro made nameable with `pub(crate) use name;`)."""
    found = {}
    for public, tree in use_trees(text):
        if not public:
            continue
        for segments, alias in expand(tree):
            if not segments or segments[-1] == "*":
                continue
            if len(segments) == 1 and here + (segments[0],) not in modules and segments[0] not in ("crate", "super", "self"):
                # An item of this module's own (a macro, say), or else another crate.
                own = re.search(rf"\b(?:macro_rules!\s*|(?:fn|struct|enum|trait|type|const|static)\s+){segments[0]}\b", text)
                found[alias or segments[0]] = here if own else None
                continue
            path = absolute(modules, here, segments)
            found[alias or segments[-1]] = resolve(modules, here, {}, *path) if path else None
    return found


def resolve(modules: set, here: tuple, exported: dict, root: str, rest: list):
    """The module a path names, or `None` for another crate's re-exported item."""
    if root == "crate":
        base = ()
    elif root == "super":
        base = here[:-1]
    else:
        base = here
    while rest and rest[0] == "super":
        base, rest = base[:-1], rest[1:]
    target = base
    for name in rest:
        if target + (name,) in modules:
            target = target + (name,)
        elif name in exported.get(target, {}):
            # A name a module re-exports: the import is of the module it comes from.
            return exported[target][name]
        else:
            break
    return target


def edges_of(modules: set, here: tuple, text: str, exported: dict):
    for _, tree in use_trees(text):
        for segments, _ in expand(tree):
            path = absolute(modules, here, [p for p in segments if p != "*"])
            if path:
                yield resolve(modules, here, exported, *path)
    # Paths in the code itself (`crate::a::f()`, `super::X`), outside use declarations.
    code = re.sub(r"\buse\s+[^;]+;", "", text)
    for m in PATH.finditer(code):
        rest = [p for p in m.group(2).split("::") if p and p not in ("{", "*")]
        yield resolve(modules, here, exported, m.group(1), rest)


def cycles(graph: dict) -> list:
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main(crates: list) -> int:
    bad = 0
    for crate in crates:
        src = Path(crate) / "src"
        files = sorted(src.rglob("*.rs"))
        # Each binary under src/bin is a crate of its own; the library is everything else.
        roots = {}
        for f in files:
            rel = f.relative_to(src).parts
            key = rel[:2] if rel[0] == "bin" and len(rel) > 2 else (rel[:1] if rel[0] == "bin" else ("lib",))
            roots.setdefault(key, []).append(f)
        for key, group in roots.items():
            base = src / "/".join(key) if key[0] == "bin" and len(key) == 2 else src
            if key[0] == "bin" and len(key) == 1:
                base = src / "bin"
            modules = {module_of(base, f) for f in group}
            code = {module_of(base, f): strip(f.read_text()) for f in group}
            exported = {here: reexports(modules, here, text) for here, text in code.items()}
            graph = {}
            for here, text in code.items():
                for target in edges_of(modules, here, text, exported):
                    if target is not None and target != here:
                        graph.setdefault(here, set()).add(target)
            for cycle in cycles(graph):
                bad += 1
                names = ["::".join(("crate",) + m) for m in cycle]
                print(f"{crate}: import cycle: {' -> '.join(names)}")
    if bad:
        print(f"{bad} import cycle(s)", file=sys.stderr)
        return 1
    print(f"no import cycles in {', '.join(crates)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
