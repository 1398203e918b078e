"""Streaming: reading a dump of 32 layers takes no more memory than reading one of 2 layers."""
import os
import subprocess

from conftest import lookm_bin, synth

# 8 heads x 2048 tokens x head_dim 128, float16: 8 MiB of keys and values per layer.
SHAPE = ["--heads", "8", "--head-dim", "128", "--images", "3", "--image-tokens", "576", "--text-tokens", "320"]


def peak_rss_kib(*args):
    p = subprocess.Popen([lookm_bin(), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, p.stderr.read().decode()
    return usage.ru_maxrss


def test_inspect_memory_does_not_grow_with_layers(lookm, tmp_path):
    two = synth(tmp_path / "two.h5", "--layers", "2", *SHAPE)
    many = synth(tmp_path / "many.h5", "--layers", "32", *SHAPE)
    assert many.stat().st_size > 12 * two.stat().st_size
    rss_two = peak_rss_kib("inspect", two)
    rss_many = peak_rss_kib("inspect", many)
    print(f"peak RSS: 2 layers {rss_two} KiB, 32 layers {rss_many} KiB")
    # One layer's K/V is 8 MiB; growing with layers would add about 240 MiB here.
    assert rss_many <= rss_two * 1.1 + 4096, (rss_two, rss_many)
