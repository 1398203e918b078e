"""The lookm command line as scripts use it: inspect output, stdin, exit codes, no stray files."""
import json
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from conftest import FIXTURES, run, synth

FIXTURE = FIXTURES / "llava-mini.h5"


def test_inspect_summary_of_the_fixture(lookm):
    p = run("inspect", FIXTURE, check=0)
    out = p.stdout.decode()
    assert "lookm-kv-dump v1, valid" in out
    assert "4 layers x 4 heads x head_dim 64, float16" in out
    assert "320 = 120 text + 200 image" in out
    assert "2 x 100 tokens at [42, 142) [160, 260)" in out
    assert "key, value, attn_score, query, window_attn (16 rows), probe_query (4 probes)" in out
    assert "320.0 KiB per layer" in out
    assert p.stderr == b""


def test_inspect_json_agrees_with_h5py(lookm):
    report = json.loads(run("inspect", "--json", FIXTURES / "gqa-bf16.h5", check=0).stdout)
    with h5py.File(FIXTURES / "gqa-bf16.h5", "r") as f:
        a = f.attrs
        assert report["kind"] == "dump" and report["valid"] is True and report["format_version"] == 1
        assert report["shape"] == {k: int(a[k]) for k in ["num_layers", "num_heads", "num_kv_heads", "head_dim", "seq_len"]}
        assert report["dtype"] == "bfloat16"
        modality = f["tokens/modality"][:]
        assert report["tokens"]["counts"] == {"text": int((modality == 0).sum()), "image": int((modality == 1).sum())}
        starts = np.flatnonzero(np.diff(np.r_[0, (modality == 1).astype(int)]) == 1)
        assert [s["start"] for s in report["tokens"]["spans"]] == list(starts)
        for layer in report["layers"]:
            g = f[f"layers/{layer['index']}"]
            assert layer["kv_bytes"] == g["key"].size * 2 + g["value"].size * 2
            assert layer["kv_stored_bytes"] == g["key"].id.get_storage_size() + g["value"].id.get_storage_size()
            assert set(layer["datasets"]) == set(g.keys())
        assert report["kv_bytes"] == sum(l["kv_bytes"] for l in report["layers"])
        assert report["probes"] == f["probe/position"].shape[0]


def test_inspect_reads_stdin(lookm):
    with open(FIXTURE, "rb") as f:
        p = run("inspect", "--json", "-", stdin=f.read(), check=0)
    report = json.loads(p.stdout)
    assert report["file"] == "stdin" and report["valid"]
    assert report["shape"]["seq_len"] == 320


@pytest.mark.parametrize("args,code,words", [
    (["inspect", "/nonexistent/dump.h5"], 3, ["/nonexistent/dump.h5", "no such file"]),
    (["inspect", "--bogus", "x.h5"], 2, ["--bogus"]),
    (["frobnicate"], 2, ["frobnicate"]),
    (["synth", "-o", "/tmp/x.h5", "--heads", "6", "--kv-heads", "4"], 2, ["--heads 6", "--kv-heads 4"]),
    (["synth", "-o", "/tmp/x.h5", "--codec", "lz4"], 2, ["lz4", "zstd"]),
    (["synth", "-o", "/tmp/x.h5", "--codec", "none", "--level", "3"], 2, ["--level", "--codec none"]),
    (["synth", "-o", "/tmp/x.h5", "--codec", "zstd", "--level", "99"], 2, ["--level 99"]),
    (["synth", "-o", "/tmp/x.h5", "--dtype", "float64"], 2, ["float64", "float16"]),
    (["synth", "-o", "/tmp/x.h5", "--dtype", "float8"], 2, ["float8"]),
    (["synth", "-o", "/tmp/x.h5", "--threads", "0"], 2, ["--threads 0"]),
    (["synth", "-o", "/nonexistent-dir/x.h5"], 4, ["/nonexistent-dir/x.h5"]),
])
def test_exit_codes_and_messages(lookm, args, code, words):
    p = run(*args)
    err = p.stderr.decode()
    assert p.returncode == code, err
    for w in words:
        assert w.lower() in err.lower(), err
    assert p.stdout == b""
    assert not os.path.exists("/tmp/x.h5")


def test_not_hdf5_and_truncated_files_exit_3(lookm, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5\n")
    p = run("inspect", junk, check=3)
    assert f"{junk}: not an HDF5 file" in p.stderr.decode()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(FIXTURE.read_bytes()[: FIXTURE.stat().st_size // 2])
    p = run("inspect", cut, check=3)
    assert str(cut) in p.stderr.decode() and len(p.stderr.decode().strip().splitlines()) == 1


def test_synth_never_overwrites_without_force(lookm, tmp_path):
    out = synth(tmp_path / "d.h5", "--layers", "1", "--seed", "1")
    before = out.read_bytes()
    p = run("synth", "-o", out, "--layers", "2", check=4)
    assert "already exists" in p.stderr.decode() and "--force" in p.stderr.decode()
    assert out.read_bytes() == before
    run("synth", "-o", out, "--layers", "2", "--force", check=0)
    with h5py.File(out, "r") as f:
        assert f.attrs["num_layers"] == 2
    assert sorted(os.listdir(tmp_path)) == ["d.h5"]


def test_synth_into_read_only_directory_exits_4(lookm, tmp_path):
    """A read-only bind mount (root ignores permission bits, so chmod would prove nothing)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True)
    if mounted.returncode != 0:
        mounted = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
        pytest.skip("cannot make a read-only mount here: " + mounted.stderr.decode())
    try:
        p = run("synth", "-o", ro / "d.h5", "--layers", "1")
        assert p.returncode == 4, p.stderr.decode()
        assert str(ro / "d.h5") in p.stderr.decode()
        assert os.listdir(ro) == []
    finally:
        subprocess.run(["umount", str(ro)])


def test_help_and_version_exit_0(lookm):
    p = run("--help", check=0)
    out = p.stdout.decode()
    assert "inspect" in out and "synth" in out and "Exit codes" in out
    assert run("--version", check=0).stdout.strip()


def test_eval_pipeline_collects_one_csv(lookm, tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    for name in ["a", "b"]:
        (dumps / f"{name}.h5").write_bytes(FIXTURE.read_bytes())
    out = tmp_path / "out"
    p = subprocess.run(["bash", str(FIXTURES.parent / "scripts" / "eval_pipeline.sh"), str(dumps), str(out), "lookm random",
                        "0.1 0.5"], capture_output=True, env={**os.environ, "LOOKM": lookm})
    assert p.returncode == 0, p.stderr.decode()
    import csv
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 8
    assert {(r["dump"], r["method"], r["budget"]) for r in rows} == {(d, m, b) for d in "ab" for m in ["lookm", "random"] for b in ["0.1", "0.5"]}
    assert all(float(r["saved_percent"]) > 0 and r["output_error"] != "-" for r in rows)
    assert len(list(out.glob("*.report.json"))) == 8


def test_sweep_from_stdin_records_the_stream_not_its_copy(lookm, tmp_path):
    """A dump read from stdin is recorded as `-` with mtime 0 (as compress records it), and kept
    caches are named `stdin.*`, not after lookm's temporary copy."""
    dump = FIXTURES / "gqa-bf16.h5"
    data = dump.read_bytes()
    p = run("sweep", "-", "--methods", "h2o", "--budgets", "0.2", "--format", "json", "--keep-caches", tmp_path / "kept",
            stdin=data, check=0)
    assert json.loads(p.stdout)["source"] == {"name": "-", "size": len(data), "mtime": 0}
    assert os.listdir(tmp_path / "kept") == ["stdin.h2o-b0.2.lookm.h5"]
    with h5py.File(tmp_path / "kept" / "stdin.h2o-b0.2.lookm.h5", "r") as f:
        assert f.attrs["source"] == "-" and f.attrs["source_mtime"] == 0 and f.attrs["source_size"] == len(data)
