"""The layering of the Rust sources, read from their `use` lines and paths.

- No import circle between files, in any crate: file A depends on file B when A names an item
  (through `crate::…`, `super::…` or a sibling module) that B defines. A module's `mod.rs` only
  gathers its files (`mod x; pub use x::Item;`): a path through it is followed to the file
  that defines the item, so re-exports are not dependencies.
- The engine's floors (DESIGN.md): a lower floor never imports a higher one.

Only the standard library: it reads files as text, as the compiler's module rules say where
each path leads. Run: python3 -m pytest tests/python/test_layers.py
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRATES = {
    "engine": ROOT / "engine/src",
    "trainer-native": ROOT / "trainer-native/src",
    "app": ROOT / "app/src",
    "lab-state": ROOT / "app/state/src",
}

# The engine's floors: a module may import its own floor and the ones below.
ENGINE_FLOORS = {
    **dict.fromkeys(["audio", "text", "gates", "decode", "rng", "container", "readback", "limits", "stats", "cut_target", "kernels", "bounded_read"], 0),
    **dict.fromkeys(["model", "data", "optim"], 1),
    **dict.fromkeys(["train", "prune", "infer"], 2),
    "store": 3,
}

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\};", re.S)
REEXPORT = re.compile(r"pub use ([a-z_][a-z0-9_]*)::(\{[^;]*\}|[A-Za-z_][A-Za-z0-9_]*);", re.S)


def module_path(src: Path, file: Path) -> list[str]:
    """`a/b/c.rs` → [a, b, c]; `a/b/mod.rs` → [a, b]; the crate root → []."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def module_file(src: Path, parts: list[str]) -> Path | None:
    if not parts:
        for root in ("lib.rs", "main.rs"):
            if (src / root).exists():
                return src / root
        return None
    for candidate in (src.joinpath(*parts).with_suffix(".rs"), src.joinpath(*parts, "mod.rs")):
        if candidate.exists():
            return candidate
    return None


def reexports(file: Path) -> dict[str, str]:
    """For a `mod.rs`: item name → the submodule that defines it (`pub use sub::{Item}`)."""
    out = {}
    for sub, items in REEXPORT.findall(strip_comments(file.read_text())):
        for item in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", items):
            out[item] = sub
    return out


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def resolve(src: Path, parts: list[str]) -> Path | None:
    """The file that defines the item at `parts` (a module path with an item at its end)."""
    # The longest prefix that is a module; the rest names items inside it.
    for cut in range(len(parts), -1, -1):
        file = module_file(src, parts[:cut])
        if file is None:
            continue
        rest = parts[cut:]
        if rest and file.name == "mod.rs":
            sub = reexports(file).get(rest[0])
            if sub is not None:
                return resolve(src, parts[:cut] + [sub] + rest) or file
        return file
    return None


def named_paths(text: str, here: list[str], is_mod_file: bool) -> list[list[str]]:
    """Every `crate::…`/`super::…` path in `text`, absolute, groups `{a, b::c}` expanded."""
    text = strip_comments(text)
    found = []

    def absolute(head: str, tail: list[str]) -> list[str]:
        if head == "crate":
            return tail
        # `super` of a file module `a/b/c.rs` is `a::b`; of `a/b/mod.rs` (module a::b) is `a`.
        base = here[:-1] if here else []
        while tail and tail[0] == "super":
            base, tail = base[:-1], tail[1:]
        return base + tail

    for head, prefix, inner in GROUP.findall(text):
        stem = [p for p in prefix.split("::") if p]
        for item in re.split(r",\s*", inner):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                found.append(absolute(head, stem + [p for p in item.split("::") if p and p != "{"]))
    for head, tail in PATH.findall(GROUP.sub("", text)):
        found.append(absolute(head, [p for p in tail.split("::") if p]))
    return found


def dependencies(src: Path) -> dict[Path, set[Path]]:
    graph = {}
    for file in sorted(src.rglob("*.rs")):
        here = module_path(src, file)
        text = file.read_text()
        if file.name in ("mod.rs", "lib.rs", "main.rs"):
            # A module's own gathering (`mod x;`, `pub use x::…`) is structure, not use.
            text = "\n".join(l for l in text.splitlines() if not re.match(r"\s*(pub )?(mod|use) ", l))
        targets = set()
        for parts in named_paths(text, here if file.name != "mod.rs" else here + ["mod"], file.name == "mod.rs"):
            target = resolve(src, parts)
            if target is not None and target != file:
                targets.add(target)
        graph[file] = targets
    return graph


def cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_between_files_in_any_crate():
    problems = []
    for name, src in CRATES.items():
        for component in cycles(dependencies(src)):
            problems.append(f"{name}: " + " ↔ ".join(str(f.relative_to(src)) for f in component))
    assert not problems, "import circles:\n" + "\n".join(problems)


def test_engine_floors_only_import_downwards():
    src = CRATES["engine"]
    problems = []
    for file, targets in dependencies(src).items():
        here = module_path(src, file)
        if not here or here[0] not in ENGINE_FLOORS:
            continue
        for target in targets:
            there = module_path(src, target)
            if there and there[0] in ENGINE_FLOORS and ENGINE_FLOORS[there[0]] > ENGINE_FLOORS[here[0]]:
                problems.append(f"{file.relative_to(src)} (floor {ENGINE_FLOORS[here[0]]}) imports "
                                f"{target.relative_to(src)} (floor {ENGINE_FLOORS[there[0]]})")
    assert not problems, "\n".join(problems)


def test_the_checker_finds_a_circle_and_follows_reexports(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "lib.rs").write_text("mod a;\n")
    (tmp_path / "a/mod.rs").write_text("mod x;\nmod y;\npub use x::X;\npub use y::{Y, Z};\n")
    (tmp_path / "a/x.rs").write_text("use super::Y;\npub struct X;\n")
    (tmp_path / "a/y.rs").write_text("pub struct Y;\npub struct Z(crate::a::X);\n")
    graph = dependencies(tmp_path)
    assert graph[tmp_path / "a/x.rs"] == {tmp_path / "a/y.rs"}, graph
    assert cycles(graph) == [[tmp_path / "a/x.rs", tmp_path / "a/y.rs"]]
    (tmp_path / "a/y.rs").write_text("pub struct Y;\npub struct Z;\n")
    assert cycles(dependencies(tmp_path)) == []
