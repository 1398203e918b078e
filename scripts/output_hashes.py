#!/usr/bin/env python3
"""Hashes of everything lookm outputs on the committed fixtures and the golden dumps, for checking
that a change leaves outputs byte-identical: every dataset and attribute of every cache (each
--method x --variant x --codec that applies), and the JSON of report and sweep.

    scripts/output_hashes.py --lookm OLD/lookm > old.txt
    scripts/output_hashes.py --lookm .build/release/lookm > new.txt
    diff old.txt new.txt      # empty: same outputs

Datasets are hashed by content (dtype, shape, bytes), not file bytes, so the digest says what a
reader sees; the cache files' own bytes are hashed too (lookm's output is deterministic)."""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (zstd caches)
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["lookm", "lookm-avg", "lookm-weighted", "text-prior", "h2o", "snapkv", "streaming", "random", "knorm", "full"]
OFFICIAL = ["lookm", "lookm-avg", "lookm-weighted", "text-prior", "h2o"]   # --variant reference
CODECS = ["zstd", "deflate", "none"]


def digest_h5(path):
    out = []
    with h5py.File(path, "r") as f:
        out.append(("/", sorted((k, str(v)) for k, v in f.attrs.items())))

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                h = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16]
                out.append((name, str(data.dtype), data.shape, h, sorted((k, str(v)) for k, v in obj.attrs.items())))
        f.visititems(visit)
    return hashlib.sha256(repr(out).encode()).hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lookm", default=str(ROOT / ".build/release/lookm"))
    ap.add_argument("--dumps", nargs="*", default=None)
    args = ap.parse_args()
    dumps = args.dumps or sorted(str(p) for p in (ROOT / "Fixtures").glob("*.h5")) + \
        sorted(str(p) for p in (ROOT.parent / "shared" / "golden").glob("*.h5"))
    with tempfile.TemporaryDirectory() as tmp:
        for dump in dumps:
            name = os.path.basename(dump)
            for method in METHODS:
                for variant in ["paper", "reference"]:
                    if variant == "reference" and method not in OFFICIAL:
                        continue
                    for codec in CODECS:
                        out = f"{tmp}/c.h5"
                        p = subprocess.run([args.lookm, "compress", dump, "-o", out, "--force", "--method", method,
                                            "--variant", variant, "--codec", codec], capture_output=True)
                        if p.returncode != 0:
                            print(f"{name} {method} {variant} {codec}: exit {p.returncode}")
                            continue
                        file_hash = hashlib.sha256(Path(out).read_bytes()).hexdigest()[:16]
                        print(f"{name} {method} {variant} {codec}: datasets {digest_h5(out)} file {file_hash}")
                        if codec == "zstd":
                            r = subprocess.run([args.lookm, "report", out, "--reference", dump, "--format", "json", "--by", "head"],
                                               capture_output=True)
                            doc = json.loads(r.stdout.decode().replace(tmp, "TMP")) if r.returncode == 0 else {"exit": r.returncode}
                            print(f"{name} {method} {variant} report: {hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]}")
            s = subprocess.run([args.lookm, "sweep", dump, "--methods", "lookm,h2o,snapkv,random", "--budgets", "0.05,0.2",
                                "--format", "json"], capture_output=True)
            doc = json.loads(s.stdout) if s.returncode == 0 else {"exit": s.returncode}
            for row in doc.get("rows", []):
                row.pop("seconds", None)
            print(f"{name} sweep: {hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
