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

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{([^;]*)\};", re.S)


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
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
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
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)
    return code[: cut.start()] if cut else code


def reexports(modules: set, here: tuple, text: str) -> dict:
    """What a module re-exports: each name `pub use` brings in, and the module it comes from
    (`None` for another crate's, e.g. `pub use other_crate as name`)."""
    found = {}
    for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
        tree = re.sub(r"\s*(::|,|\{|\})\s*", r"\1", re.sub(r"\s+", " ", m.group(1).strip()))
        prefix, _, group = tree.partition("{")
        names = group.rstrip("}").split(",") if group else [prefix.rsplit("::", 1)[-1]]
        prefix = prefix.rstrip(":") if group else prefix.rsplit("::", 1)[0] if "::" in prefix else ""
        for item in filter(None, names):
            path, _, alias = item.strip().partition(" as ")
            segments = [p for p in (prefix.split("::") if prefix else []) + path.split("::") if p]
            if segments and segments[-1] == "self":
                segments = segments[:-1]
            if not segments:
                continue
            head = segments[0]
            origin = resolve(modules, here, {}, head, segments[1:]) if head in ("crate", "super", "self") else (
                resolve(modules, here, {}, "self", segments) if here + (head,) in modules else None)
            found[alias or segments[-1]] = origin
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
    # `use child::...` (2018 paths): a module declared here.
    for m in re.finditer(r"\buse\s+([A-Za-z_][A-Za-z0-9_]*)::", text):
        if here + (m.group(1),) in modules:
            yield here + (m.group(1),)
    for m in USE_GROUP.finditer(text):
        root, prefix = m.group(1), [p for p in m.group(2).split("::") if p]
        for item in re.split(r"[,{}]", m.group(3)):
            name = item.strip().split(" as ")[0].split("::")[0].strip()
            if name and name != "self":
                yield resolve(modules, here, exported, root, prefix + [name])
            elif name == "self":
                yield resolve(modules, here, exported, root, prefix)
    for m in PATH.finditer(USE_GROUP.sub("", text)):
        rest = [p for p in m.group(2).split("::") if p and p != "{"]
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
