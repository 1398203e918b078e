"""`lookm report` and `lookm sweep`: metrics against values computed here, formats, plots."""
import csv
import io
import json
import os
import xml.etree.ElementTree as ET

import h5py
import hdf5plugin  # noqa: F401  (zstd for h5py)
import numpy as np
import pytest

from conftest import FIXTURES, run, synth

FIXTURE = FIXTURES / "llava-mini.h5"


def write_two_token_case(tmp_path, merged):
    """L = 2, one head, D = 2: keys and values e1, e2; one probe query of zeros (uniform attention).
    The cache keeps position 0; with `merged`, position 1 is folded into it (slot = mean of both)."""
    dump, cache = tmp_path / "dump.h5", tmp_path / "cache.h5"
    eye = np.eye(2, dtype=np.float32)[None]
    with h5py.File(dump, "w") as f:
        f.attrs.update(format="lookm-kv-dump", format_version=1, num_layers=1, num_heads=1, num_kv_heads=1,
                       head_dim=2, seq_len=2)
        f["tokens/modality"] = np.array([0, 1], dtype=np.uint8)
        f["layers/0/key"] = eye
        f["layers/0/value"] = eye
        f["layers/0/attn_score"] = np.array([[1.5, 0.5]], dtype=np.float32)
        f["layers/0/probe_query"] = np.zeros((1, 1, 2), dtype=np.float32)
        f["probe/position"] = np.array([2], dtype=np.int64)
    slot = np.array([[[0.5, 0.5]]], dtype=np.float32) if merged else eye[:, :1]
    with h5py.File(cache, "w") as c:
        c.attrs.update(format="lookm-kv-cache", format_version=1, num_layers=1, num_heads=1, num_kv_heads=1, head_dim=2,
                       seq_len=2, method='{"merge":"test"}', source="dump.h5", source_size=0, source_mtime=0,
                       lookm_version="test")
        c["tokens/modality"] = np.array([0, 1], dtype=np.uint8)
        c["layers/0/key"] = slot
        c["layers/0/value"] = slot
        c["layers/0/position"] = np.array([[0]], dtype=np.int32)
        c["layers/0/merged"] = np.array([[1 if merged else 0]], dtype=np.int32)
        c["layers/0/slot_of"] = np.array([[0, 0 if merged else -1]], dtype=np.int32)
    return dump, cache


@pytest.mark.parametrize("merged", [False, True])
def test_two_token_case_by_hand(lookm, tmp_path, merged):
    dump, cache = write_two_token_case(tmp_path, merged)
    r = json.loads(run("report", cache, "--reference", dump, "--format", "json", check=0).stdout)
    f = r["fidelity"]
    assert f["query_source"] == "probe"
    full = np.array([0.5, 0.5])
    compressed = np.array([0.5, 0.5]) if merged else np.array([1.0, 0.0])
    err = np.linalg.norm(compressed - full) / np.linalg.norm(full)
    cos = compressed @ full / (np.linalg.norm(compressed) * np.linalg.norm(full))
    assert f["output_error"]["mean"] == pytest.approx(err, abs=1e-6)
    assert f["output_cosine"]["mean"] == pytest.approx(cos, abs=1e-6)
    assert f["recall_kept"] == pytest.approx(0.5)
    assert f["recall_merged"] == pytest.approx(0.5 if merged else 0.0)
    assert f["recall_text"] == pytest.approx(1.0)                      # position 0 (text) kept
    assert f["recall_image"] == pytest.approx(1.0 if merged else 0.0)  # position 1 (image) merged or lost
    if merged:
        assert f["key_shift"]["mean"] == pytest.approx(np.sqrt(0.5), abs=1e-6)
    m = r["memory"]
    assert (m["kept"], m["kept_text"], m["kept_image"], m["merged"], m["dropped"]) == (1, 1, 0, int(merged), 0 if merged else 1)
    assert m["kv_bytes_original"] == 2 * 2 * 2 * 4 and m["kv_bytes_cache"] == 2 * 1 * 2 * 4
    assert m["saved_percent"] == pytest.approx(50.0)


def test_keeping_everything_is_lossless(lookm, tmp_path):
    cache = tmp_path / "full.h5"
    run("compress", FIXTURE, "-o", cache, "--method", "full", check=0)
    f = json.loads(run("report", cache, "--reference", FIXTURE, "--format", "json", check=0).stdout)["fidelity"]
    assert f["output_error"]["worst"] == pytest.approx(0, abs=1e-9)
    assert f["output_cosine"]["worst"] == pytest.approx(1, abs=1e-9)
    assert f["recall"]["worst"] == pytest.approx(1, abs=1e-9) and f["recall_merged"] == 0


def test_report_formats_and_levels(lookm, tmp_path):
    cache = tmp_path / "c.h5"
    run("compress", FIXTURE, "-o", cache, check=0)
    table = run("report", cache, "--reference", FIXTURE, check=0).stdout.decode()
    for words in ["output error", "mass recall", "80.0 % saved", "probe queries", "worst"]:
        assert words in table
    doc = json.loads(run("report", cache, "--reference", FIXTURE, "--format", "json", check=0).stdout)
    assert doc["report_version"] == 1 and len(doc["layers"]) == 4 and len(doc["fidelity"]["heads"]) == 16
    assert doc["method"]["method"] == "lookm"
    rows = list(csv.DictReader(io.StringIO(run("report", cache, "--reference", FIXTURE, "--format", "csv", "--by", "head",
                                               check=0).stdout.decode())))
    assert len(rows) == 16 and set(rows[0]) >= {"layer", "head", "output_error", "recall"}
    layer_rows = run("report", cache, "--by", "layer", check=0).stdout.decode().splitlines()
    assert len(layer_rows) == 5 and layer_rows[0].split()[0] == "layer"
    # Memory alone, no reference: fidelity columns are "-".
    assert "-" in layer_rows[1].split()
    svg = tmp_path / "r.svg"
    run("report", cache, "--reference", FIXTURE, "--plot", svg, check=0)
    root = ET.parse(svg).getroot()
    assert len([g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "series"]) == 2


def test_mismatched_reference_is_refused(lookm, tmp_path):
    cache = tmp_path / "c.h5"
    run("compress", FIXTURE, "-o", cache, check=0)
    p = run("report", cache, "--reference", FIXTURES / "gqa-bf16.h5")
    assert p.returncode == 3
    assert "does not match the cache" in p.stderr.decode() and p.stdout == b""


def test_sweep_lookm_beats_random_at_equal_budget(lookm, tmp_path):
    svg = tmp_path / "s.svg"
    p = run("sweep", FIXTURE, "--methods", "lookm,h2o,random", "--budgets", "0.1,0.2", "--format", "json",
            "--plot", svg, check=0)
    rows = json.loads(p.stdout)["rows"]
    by = {(r["method"], r["budget"]): r for r in rows}
    for b in [0.1, 0.2]:
        lookm_row, random_row = by[("lookm", b)], by[("random", b)]
        assert lookm_row["kept_fraction"] == pytest.approx(random_row["kept_fraction"])
        assert lookm_row["output_error"]["mean"] < random_row["output_error"]["mean"]
        assert lookm_row["recall"]["mean"] > random_row["recall"]["mean"]
    root = ET.parse(svg).getroot()
    names = [g.get("data-name") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "series"]
    assert names == ["lookm", "h2o", "random"]
    assert any(t.text == "K/V memory kept (KiB)" for t in root.iter("{http://www.w3.org/2000/svg}text"))


def test_sweep_agrees_with_compress_then_report(lookm, tmp_path):
    sweep = json.loads(run("sweep", FIXTURE, "--methods", "lookm", "--budgets", "0.2", "--format", "json",
                           "--keep-caches", tmp_path, check=0).stdout)["rows"][0]
    kept = tmp_path / "llava-mini.lookm-b0.2.lookm.h5"
    assert sweep["cache"] == str(kept) and kept.exists()
    run("inspect", kept, check=0)
    run("compress", FIXTURE, "-o", tmp_path / "c.h5", "--budget", "0.2", check=0)
    report = json.loads(run("report", tmp_path / "c.h5", "--reference", FIXTURE, "--format", "json", check=0).stdout)
    assert sweep["output_error"]["mean"] == pytest.approx(report["fidelity"]["output_error"]["mean"], rel=1e-9)
    assert sweep["recall"]["mean"] == pytest.approx(report["fidelity"]["recall"]["mean"], rel=1e-9)
    with h5py.File(kept, "r") as a, h5py.File(tmp_path / "c.h5", "r") as b:
        assert np.array_equal(a["layers/3/key"][...], b["layers/3/key"][...])


def test_sweep_head_by_head_equals_setting_by_setting(lookm, tmp_path):
    """Without --keep-caches a sweep runs every setting per kv head (keys converted once); with
    it, setting by setting through compress's path. Both must give the same numbers, bit for bit."""
    flags = ("--methods", "lookm,lookm-weighted,h2o,snapkv,streaming,knorm", "--budgets", "0.05,0.3,1.0", "--format", "json")
    fast = json.loads(run("sweep", FIXTURE, *flags, check=0).stdout)["rows"]
    slow = json.loads(run("sweep", FIXTURE, *flags, "--keep-caches", tmp_path, check=0).stdout)["rows"]
    assert len(fast) == 18 and any(r["copied_layers"] for r in fast)
    assert fast == [{k: v for k, v in r.items() if k != "cache"} for r in slow]


@pytest.mark.parametrize("args,words", [
    (["--methods", "lookm,bogus"], ["unknown method 'bogus'"]),
    (["--budgets", "0.1,x"], ["'x'"]),
    (["--budgets", "1.5"], ["--budget 1.5"]),
    (["--jobs", "0"], ["--jobs 0"]),
])
def test_sweep_usage_errors(lookm, args, words):
    p = run("sweep", FIXTURE, *args)
    assert p.returncode == 2, p.stderr.decode()
    for w in words:
        assert w in p.stderr.decode()


def test_output_error_matches_float64_numpy(lookm, tmp_path):
    """Report's fidelity (CKernels' few-query attention, docs/report.md) against a float64 NumPy
    computation of the same definition, per layer and query head, to 1e-9 relative."""
    from conftest import synth
    dump = synth(tmp_path / "d.h5", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "40",
                 "--images", "1", "--image-tokens", "60", "--text-tokens", "50", "--probes", "5", "--dtype", "bfloat16")
    cache = tmp_path / "c.h5"
    run("compress", dump, "-o", cache, "--budget", "0.3", check=0)
    rep = json.loads(run("report", cache, "--reference", dump, "--format", "json", "--by", "head", check=0).stdout)

    def floats(ds):
        x = ds[...]
        return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64) if ds.attrs.get("dtype") == "bfloat16" \
            else x.astype(np.float64)

    def attend(q, k, v, scale):
        s = q @ k.T * scale
        p = np.exp(s - s.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True)) @ v

    rows = {(r["layer"], r["head"]): r for r in rep["fidelity"]["heads"]}
    with h5py.File(dump, "r") as d, h5py.File(cache, "r") as c:
        scale = 1 / np.sqrt(40)
        for i in range(2):
            q, K, V = floats(d[f"layers/{i}/probe_query"]), floats(d[f"layers/{i}/key"]), floats(d[f"layers/{i}/value"])
            k, v = floats(c[f"layers/{i}/key"]), floats(c[f"layers/{i}/value"])
            for h in range(4):
                g = h // 2
                full, kept = attend(q[h], K[g], V[g], scale), attend(q[h], k[g], v[g], scale)
                err = np.mean(np.linalg.norm(kept - full, axis=1) / np.linalg.norm(full, axis=1))
                assert rows[(i, h)]["output_error"] == pytest.approx(err, rel=1e-9), (i, h)


@pytest.mark.parametrize("kernel", ["avx512", "avx2", "scalar"])
def test_every_attention_kernel_path_reports_the_same_bits(lookm, tmp_path, kernel):
    """LOOKM_KERNEL lowers the fidelity attention's path (Sources/CKernels/fidelity.c): every path
    runs the same IEEE operations (fused multiply-adds, its own exp), so report and sweep JSON are
    identical to the default path's; probes (5: a partial block of 8), causal prompt queries (16:
    two blocks), head_dim 40 (not a multiple of 16) and 128, GQA."""
    probes = synth(tmp_path / "p.h5", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "40",
                   "--images", "1", "--image-tokens", "60", "--text-tokens", "50", "--probes", "5")
    prompt = synth(tmp_path / "q.h5", "--layers", "2", "--heads", "4", "--head-dim", "128", "--images", "1",
                   "--image-tokens", "90", "--text-tokens", "41", "--query")
    env = dict(os.environ, LOOKM_KERNEL=kernel)
    for i, dump in enumerate([probes, prompt]):
        cache = tmp_path / f"c{i}.h5"
        run("compress", dump, "-o", cache, "--budget", "0.3", check=0)
        args = ["report", cache, "--reference", dump, "--format", "json", "--by", "head"]
        default = run(*args, check=0).stdout
        assert json.loads(default)["fidelity"]["query_source"] == ["probe", "prompt"][i]
        assert run(*args, check=0, env=env).stdout == default, kernel
        sweep = ["sweep", dump, "--methods", "lookm,h2o", "--budgets", "0.2,0.5", "--format", "json"]
        assert run(*sweep, check=0, env=env).stdout == run(*sweep, check=0).stdout, kernel


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_a_non_finite_reference_is_named_exactly(lookm, tmp_path, dtype):
    """Report reads the reference's keys and values as stored (no Float32 copy, CKernels'
    lookm_rows) and checks them there: NaN and infinity are named with their head, row and column as
    compress names them, for every element type a dump may hold."""
    dump = synth(tmp_path / "d.h5", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "16",
                 "--images", "1", "--image-tokens", "40", "--text-tokens", "20", "--probes", "3", "--dtype", dtype)
    cache = tmp_path / "c.h5"
    run("compress", dump, "-o", cache, "--budget", "0.5", check=0)
    bad = {"float16": np.float16, "float32": np.float32}
    for name, index, value, words in [("key", (1, 3, 2), np.nan, "NaN at head 1, row 3, column 2"),
                                      ("value", (0, 31, 15), np.inf, "infinity at head 0, row 31, column 15")]:
        broken = tmp_path / f"{name}.h5"
        broken.write_bytes(dump.read_bytes())
        with h5py.File(broken, "r+") as f:
            ds = f[f"layers/1/{name}"]
            if dtype == "bfloat16":
                ds[index] = 0x7FC0 if np.isnan(value) else 0x7F80
            else:
                ds[index] = bad[dtype](value)
        p = run("report", cache, "--reference", broken, "--format", "json")
        assert p.returncode == 3, p.stderr.decode()
        assert f"/layers/1/{name}" in p.stderr.decode() and words in p.stderr.decode(), p.stderr.decode()
