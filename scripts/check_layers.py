#!/usr/bin/env python3
"""Checks that Sources/LookM's folders use one another only downwards (README "Layout").

The library is one Swift module, so the compiler lets any file use any type; this check is what
keeps the layers apart. Each folder may use the types declared in its own folder and in the
layers below it; folders in the same layer (the commands) may not use one another's types.
Run by scripts/test.sh; prints each violation as FILE:LINE: TYPE (declared in FOLDER).
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Sources" / "LookM"
# Lowest first; the module's root folder (LookMError.swift) counts as Support.
LAYERS = [
    ["Support"],
    ["Rendering"],
    ["HDF5"],
    ["Format"],
    ["Method"],
    ["Engine"],
    ["Fidelity"],
    ["Compress", "Report", "Sweep", "Inspect", "Synth"],
    ["Batch"],
]
# Names a folder keeps to itself: the engine's public face is LayerInput, LayerBuffers,
# LayerCompressor, LayerPipeline, LayerResult, CompressedHead and LayerWriter; how it reads raw heads,
# and loads attention stays inside Engine/.
INTERNAL = {
    "Engine": ["RawHeads", "LayerAttention", "keyRaw", "valueRaw"],
}
# Top-level declarations only: nested names (CodingKeys, Layer) belong to their enclosing type.
DECLARATION = re.compile(r"^(?:public |internal |fileprivate |private |final |indirect )*"
                         r"(?:struct|enum|class|protocol|typealias|actor)\s+([A-Z]\w*)", re.M)


def folder(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else "Support"  # LookMError.swift


def layer(name: str) -> int:
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    sys.exit(f"check_layers.py: folder {name} is in no layer; add it to LAYERS")


def strip(text: str) -> str:
    """Source without comments and string literals, so prose that names a type does not count."""
    text = re.sub(r'"""[\s\S]*?"""', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def main() -> int:
    files = sorted(ROOT.rglob("*.swift"))
    owner: dict[str, str] = {}
    for f in files:
        for name in DECLARATION.findall(strip(f.read_text())):
            owner.setdefault(name, folder(f))
    problems = []
    for f in files:
        mine = folder(f)
        for n, line in enumerate(strip(f.read_text()).splitlines(), 1):
            for name in set(re.findall(r"\b\w+\b", line)):
                for home, names in INTERNAL.items():
                    if name in names and mine != home:
                        problems.append(f"{f.relative_to(ROOT.parent.parent)}:{n}: {name} (internal to {home}/)")
                theirs = owner.get(name)
                if theirs is None or theirs == mine:
                    continue
                if layer(theirs) >= layer(mine):
                    problems.append(f"{f.relative_to(ROOT.parent.parent)}:{n}: {name} (declared in {theirs}/)")
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers.py: {len(problems)} uses against the layering (lowest first: "
              + " < ".join("/".join(l) for l in LAYERS) + ")", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
