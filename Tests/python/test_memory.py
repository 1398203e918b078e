"""Streaming: reading a dump of 32 layers takes no more memory than reading one of 2 layers."""
import os
import subprocess

import pytest

from conftest import lookm_bin, synth

# 8 heads x 2048 tokens x head_dim 128, float16: 8 MiB of keys and values per layer.
SHAPE = ["--heads", "8", "--head-dim", "128", "--images", "3", "--image-tokens", "576", "--text-tokens", "320"]


def peak_rss_kib(*args, tmp=None):
    """Peak RSS of lookm alone, through GNU time: rusage of a child forked from this process would
    start from this process's own size (pytest has torch loaded), whatever lookm uses."""
    out = f"/tmp/lookm-rss-{os.getpid()}"
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, lookm_bin(), *map(str, args)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode()
    with open(out) as f:
        return int(f.read().split()[-1])


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    d = tmp_path_factory.mktemp("memory")
    return synth(d / "two.h5", "--layers", "2", *SHAPE), synth(d / "many.h5", "--layers", "32", *SHAPE)


def test_inspect_memory_does_not_grow_with_layers(lookm, dumps):
    two, many = dumps
    assert many.stat().st_size > 12 * two.stat().st_size
    rss_two = peak_rss_kib("inspect", two)
    rss_many = peak_rss_kib("inspect", many)
    print(f"peak RSS: 2 layers {rss_two} KiB, 32 layers {rss_many} KiB")
    # One layer's K/V is 8 MiB; growing with layers would add about 240 MiB here.
    assert rss_many <= rss_two * 1.1 + 4096, (rss_two, rss_many)


def test_compress_memory_is_bounded_by_one_layer(lookm, dumps, tmp_path):
    """Peak RSS within the performance bound (2.5 x one layer's K/V + 64 MiB), for 2 and for 32
    layers, to a file and to stdout."""
    two, many = dumps
    layer_kv_kib = 2 * 8 * 2048 * 128 * 2 // 1024
    bound = 2.5 * layer_kv_kib + 64 * 1024
    rss = {name: peak_rss_kib("compress", path, "-o", tmp_path / f"{name}.lookm.h5")
           for name, path in [("two", two), ("many", many)]}
    rss["stdout"] = peak_rss_kib("compress", many, "-o", "-")
    print(f"compress peak RSS (KiB): {rss}, bound {bound:.0f}")
    assert all(v <= bound for v in rss.values()), rss
    assert rss["many"] <= rss["two"] * 1.1 + 8192, rss


def test_report_memory_does_not_grow_with_layers(lookm, dumps, tmp_path):
    """report --reference holds two layers of the cache and one of the dump, whatever the count of
    layers (the allocator policy of Sources/LookM/Support/MemoryPolicy.swift keeps it flat)."""
    two, many = dumps
    rss = {}
    for name, path in [("two", two), ("many", many)]:
        cache = tmp_path / f"{name}.lookm.h5"
        subprocess.run([lookm_bin(), "compress", path, "-o", cache], check=True, stderr=subprocess.DEVNULL)
        rss[name] = peak_rss_kib("report", cache, "--reference", path)
    print(f"report peak RSS (KiB): {rss}")
    assert rss["many"] <= rss["two"] * 1.1 + 8192, rss
