"""Quantised storage (docs/method.md section 12, docs/format.md quantised-kv): lookm's stored
codes, scales, zero points and residual slots against an independent NumPy implementation of the
document, bit for bit; round trips through h5py, the loader, inspect and report; byte counts;
flags."""
import json

import h5py
import hdf5plugin  # noqa: F401  (zstd for h5py)
import numpy as np
import pytest

import reference_quant as ref
from conftest import run, synth
from lookm_kv.quant import dequantise, read_floats

SCHEMES = ["int8", "int4", "int2", "fp8"]


@pytest.fixture(scope="module")
def qdumps(tmp_path_factory):
    """Small dumps whose shapes leave ragged groups: head_dim 36 and 33 (odd), 150 and 113 tokens."""
    d = tmp_path_factory.mktemp("quant")
    return {
        dtype: synth(d / f"{dtype}.h5", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim",
                     "33" if dtype == "bfloat16" else "36", "--images", "1", "--image-tokens", "80", "--text-tokens",
                     "70" if dtype != "float32" else "33", "--dtype", dtype, "--seed", "3", "--probes", "2")
        for dtype in ["float16", "bfloat16", "float32"]
    }


def heads_of(f, i):
    """(group, row) of every kv head of layer i, for either layout."""
    g = f[f"layers/{i}"]
    n = int(f.attrs["num_kv_heads"])
    return [(g[f"heads/{h}"], 0) for h in range(n)] if "heads" in g else [(g, h) for h in range(n)]


def check_against_reference(plain, quantised, scheme, group, residual):
    with h5py.File(plain, "r") as a, h5py.File(quantised, "r") as b:
        assert b.attrs["format_version"] == 2 and "quantised-kv" in b.attrs["extensions"].split(",")
        assert (b.attrs["quant"], b.attrs["quant_group"], b.attrs["quant_residual"]) == (scheme, group, residual)
        dtype = ref_dtype(a)
        for i in range(int(a.attrs["num_layers"])):
            keys, values = dequantise(b[f"layers/{i}"], b.attrs) if "heads" not in b[f"layers/{i}"] else (None, None)
            for h, ((ga, ra), (gb, rb)) in enumerate(zip(heads_of(a, i), heads_of(b, i))):
                assert np.array_equal(ga["position"][ra], gb["position"][rb])
                k, v = read_floats(ga["key"])[ra], read_floats(ga["value"])[ra]
                want = ref.quantise_head(k, v, scheme, group, residual, dtype)
                for name in ["key_codes", "value_codes"]:
                    assert np.array_equal(gb[name][rb], want[name]), (i, h, name)
                for name in ["key_scale", "key_zero", "value_scale", "value_zero", "key_residual", "value_residual"]:
                    if name not in want:
                        assert name not in gb
                        continue
                    got = read_floats(gb[name])[rb]
                    assert got.shape == want[name].shape, (i, h, name, got.shape, want[name].shape)
                    assert np.array_equal(got.view(np.uint32), want[name].astype(np.float32).view(np.uint32)), (i, h, name)
                # The documented recipe decodes to the reference's values, bit for bit.
                if keys is None:
                    kh, vh = dequantise(gb, b.attrs)
                    kh, vh = kh[0], vh[0]
                else:
                    kh, vh = keys[rb], values[rb]
                assert np.array_equal(kh.view(np.uint32), want["keys"].view(np.uint32)), (i, h)
                assert np.array_equal(vh.view(np.uint32), want["values"].view(np.uint32)), (i, h)


def ref_dtype(f):
    ds = f["layers/0/key"] if "key" in f["layers/0"] else f["layers/0/heads/0/key"]
    return "bfloat16" if ds.attrs.get("dtype") == "bfloat16" else {2: "float16", 4: "float32"}[ds.dtype.itemsize]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("group,residual", [(32, 0), (8, 0), (5, 0), (4, 16)])
def test_codes_match_numpy(lookm, qdumps, tmp_path, dtype, scheme, group, residual):
    plain, quantised = tmp_path / "plain.h5", tmp_path / "q.h5"
    flags = ["--budget", "0.37", "--method", "lookm"]
    run("compress", qdumps[dtype], "-o", plain, *flags, check=0)
    run("compress", qdumps[dtype], "-o", quantised, *flags, "--quant", scheme, "--quant-group", group,
        "--quant-residual", residual, check=0)
    check_against_reference(plain, quantised, scheme, group, residual)


@pytest.mark.parametrize("scheme", ["int4", "fp8"])
def test_ragged_copied_and_full_caches_match_numpy(lookm, qdumps, tmp_path, scheme):
    """Every layout: Ada-KV's per-head groups, a copied prompt (--method full), and a residual
    longer than some heads keep."""
    for n, flags in enumerate([["--method", "h2o", "--budget", "0.2", "--head-allocation", "adakv"],
                               ["--method", "full"]]):
        plain, quantised = tmp_path / f"p{n}.h5", tmp_path / f"q{n}.h5"
        run("compress", qdumps["float16"], "-o", plain, *flags, check=0)
        p = run("compress", qdumps["float16"], "-o", quantised, *flags, "--quant", scheme, "--quant-residual", "32",
                check=0)
        # The summary line says the cache is quantised (with --method full: every token kept, quantised).
        assert f" as {scheme} (".encode() in p.stderr
        check_against_reference(plain, quantised, scheme, 32, 32)


def test_fp8_code_table_is_e4m3():
    """The reference's E4M3 table against torch's float8_e4m3fn, which both lookm and it must agree with."""
    torch = pytest.importorskip("torch")
    x = np.concatenate([ref.E4M3, -ref.E4M3, np.linspace(-460, 460, 2001), [2.0 ** -10, 2.0 ** -9 * 1.5, 0.0]])
    x = x.astype(np.float32)
    want = torch.from_numpy(np.clip(x, -448, 448)).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    assert np.array_equal(ref.e4m3_code(x) & 0x7F, want & 0x7F)


def test_report_counts_the_stored_form_and_measures_the_decoded(lookm, qdumps, tmp_path):
    dump = qdumps["float16"]
    rows = {}
    for scheme in ["none"] + SCHEMES:
        out = tmp_path / f"{scheme}.h5"
        quant = [] if scheme == "none" else ["--quant", scheme, "--quant-group", "16"]
        run("compress", dump, "-o", out, "--budget", "0.3", *quant, check=0)
        rep = json.loads(run("report", out, "--reference", dump, "--format", "json", check=0).stdout)
        with h5py.File(out, "r") as f:
            stored = 0
            for i in range(int(f.attrs["num_layers"])):
                g = f[f"layers/{i}"]
                names = ["key", "value"] if scheme == "none" else [n for n in g if n.startswith(("key", "value"))]
                stored += sum(g[n].dtype.itemsize * g[n].size for n in names)
        assert rep["memory"]["kv_bytes_cache"] == stored, scheme
        rows[scheme] = (stored, rep["fidelity"]["output_error"]["mean"])
        info = json.loads(run("inspect", out, "--json", check=0).stdout)
        assert info["kv_bytes"] == stored
        if scheme != "none":
            assert info["cache"]["quant"] == {"scheme": scheme, "group": 16, "residual": 0}
            assert f"quantised  {scheme}" in run("inspect", out, check=0).stdout.decode()
    # Fewer bits, fewer bytes; quantisation adds error over the same kept slots.
    assert rows["int2"][0] < rows["int4"][0] < rows["int8"][0] < rows["none"][0]
    assert rows["int2"][1] > rows["int8"][1] >= rows["none"][1] * 0.999


def test_quantised_cache_from_another_dump_is_refused(lookm, qdumps, tmp_path):
    other = synth(tmp_path / "other.h5", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "36",
                  "--images", "1", "--image-tokens", "80", "--text-tokens", "70", "--seed", "4", "--probes", "2")
    out = tmp_path / "q.h5"
    run("compress", qdumps["float16"], "-o", out, "--quant", "int2", check=0)
    p = run("report", out, "--reference", other, check=3)
    assert b"not the dump the cache was made from" in p.stderr


def test_target_bytes_counts_the_stored_form(lookm, qdumps, tmp_path):
    dump = qdumps["float16"]
    out = tmp_path / "t.h5"
    s = json.loads(run("compress", dump, "-o", out, "--quant", "int4", "--target-bytes", "5%", "--json", check=0).stdout)
    keep = s["method"]["keep"]
    rep = json.loads(run("report", out, "--format", "json", check=0).stdout)
    assert rep["memory"]["kv_bytes_cache"] <= s["method"]["target_bytes"]
    more = tmp_path / "more.h5"
    run("compress", dump, "-o", more, "--quant", "int4", "--keep", keep + 1, check=0)
    rep = json.loads(run("report", more, "--format", "json", check=0).stdout)
    assert rep["memory"]["kv_bytes_cache"] > s["method"]["target_bytes"]


def test_identical_for_any_thread_count(lookm, qdumps, tmp_path):
    outs = []
    for t in [1, 2, 3]:
        out = tmp_path / f"t{t}.h5"
        run("compress", qdumps["bfloat16"], "-o", out, "--quant", "int4", "--budget", "0.3", "--threads", t, check=0)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_sweep_crosses_storages_and_agrees_with_report(lookm, qdumps, tmp_path):
    dump = qdumps["float16"]
    p = run("sweep", dump, "--methods", "lookm,full", "--budgets", "0.2", "--quants", "none,int4,fp8",
            "--keep-caches", tmp_path / "caches", "--format", "json", "--plot", tmp_path / "p.svg", check=0)
    rows = json.loads(p.stdout)["rows"]
    assert [(r["method"], r.get("quant")) for r in rows] == [
        ("lookm", None), ("lookm", "int4"), ("lookm", "fp8"), ("full", None), ("full", "int4"), ("full", "fp8")]
    for r in rows:
        rep = json.loads(run("report", r["cache"], "--reference", dump, "--format", "json", check=0).stdout)
        assert rep["memory"]["kv_bytes_cache"] == r["kv_bytes"], r
        assert rep["fidelity"]["output_error"]["mean"] == pytest.approx(r["output_error"]["mean"], rel=1e-9), r
    full = {r.get("quant"): r for r in rows if r["method"] == "full"}
    assert full[None]["output_error"]["mean"] == 0 and full["int4"]["output_error"]["mean"] > 0
    svg = (tmp_path / "p.svg").read_text()
    assert "lookm int4" in svg and "full fp8" in svg
    table = run("sweep", dump, "--methods", "lookm", "--budgets", "0.2", "--quants", "none,int2", check=0).stdout.decode()
    assert table.splitlines()[0].split()[:3] == ["method", "quant", "budget"]


@pytest.mark.parametrize("args,words", [
    (["--quant", "int3"], ["--quant int3", "int8, int4, int2, fp8"]),
    (["--quant", "int4", "--quant-group", "1"], ["--quant-group 1", "at least 2"]),
    (["--quant", "int4", "--quant-group", "16", "--quant-residual", "40"], ["--quant-residual 40", "multiple"]),
    (["--quant-group", "16"], ["--quant int8"]),
    (["--quant", "int4", "--quant-group", "64"], ["--quant-group 64", "head_dim 36"]),
    (["--quant", "int2", "--target-bytes", "10%", "--head-allocation", "adakv", "--budget", "0.2"], ["--target-bytes"]),
])
def test_usage_errors_name_the_flag(lookm, qdumps, tmp_path, args, words):
    out = tmp_path / "x.h5"
    p = run("compress", qdumps["float16"], "-o", out, *args, check=2)
    for w in words:
        assert w.encode() in p.stderr, p.stderr
    assert not out.exists()


def test_sweep_usage_errors(lookm, qdumps):
    p = run("sweep", qdumps["float16"], "--quants", "int4,int4", check=2)
    assert b"--quants: int4 is given twice" in p.stderr
    p = run("sweep", qdumps["float16"], "--quant-residual", "32", check=2)
    assert b"--quants" in p.stderr


@pytest.mark.parametrize("edit,words", [
    (lambda f: f.__delitem__("layers/1/key_codes"), ["/layers/1/key_codes", "missing"]),
    (lambda f: f.attrs.__setitem__("quant", "int5"), ["quant = \"int5\""]),
    (lambda f: (f.attrs.__setitem__("format_version", 1), f.attrs.__delitem__("extensions")),
     ["quant without the quantised-kv extension"]),
    (lambda f: f.attrs.__setitem__("quant_group", 7), ["/layers/0/key_scale", "expected [2, 36, 5]"]),
    (lambda f: f["layers/0/value_scale"].__setitem__((1, 2, 0), np.inf), ["/layers/0/value_scale", "infinity"]),
])
def test_damaged_quantised_caches_are_refused(lookm, qdumps, tmp_path, edit, words):
    out = tmp_path / "q.h5"
    run("compress", qdumps["float16"], "-o", out, "--quant", "int4", "--quant-group", "16", check=0)
    with h5py.File(out, "r+") as f:
        edit(f)
    for cmd in (["inspect", out], ["report", out]):
        p = run(*cmd, check=3)
        for w in words:
            assert w.encode() in p.stderr, p.stderr


@pytest.mark.parametrize("scheme,residual", [("int2", 0), ("fp8", 32), ("int4", 64)])
def test_format_doc_recipe_decodes_the_cache(lookm, qdumps, tmp_path, scheme, residual):
    """The h5py recipe printed in docs/format.md, run as written, decodes what the reference does."""
    from conftest import ROOT
    doc = (ROOT / "docs" / "format.md").read_text()
    start = doc.index("```python", doc.index("**Quantised layers**")) + len("```python")
    recipe = doc[start:doc.index("```", start)]
    plain, quantised = tmp_path / "p.h5", tmp_path / "q.h5"
    run("compress", qdumps["bfloat16"], "-o", plain, "--budget", "0.4", check=0)
    run("compress", qdumps["bfloat16"], "-o", quantised, "--budget", "0.4", "--quant", scheme, "--quant-residual",
        residual, check=0)
    scope = {}
    exec(recipe.replace('"cache.h5"', repr(str(quantised))), scope)
    with h5py.File(plain, "r") as f:
        k, v = read_floats(f["layers/0/key"])[0], read_floats(f["layers/0/value"])[0]
    want = ref.quantise_head(k, v, scheme, 32, residual, "bfloat16")
    assert np.array_equal(scope["keys"].view(np.uint32), want["keys"].view(np.uint32))
    assert np.array_equal(scope["values"].view(np.uint32), want["values"].view(np.uint32))


def test_batch_sweep_and_collect_keep_the_storage(lookm, qdumps, tmp_path):
    out = tmp_path / "out"
    run("sweep", qdumps["float16"], "--out-dir", out, "--methods", "h2o", "--budgets", "0.2", "--quants", "none,int4",
        check=0)
    table = run("collect", out, check=0).stdout.decode().splitlines()
    assert table[0].split()[:4] == ["dump", "method", "quant", "budget"]
    assert [line.split()[2] for line in table[1:]] == ["none", "int4"]
    # A rerun with the same settings is current; another storage is not.
    again = run("sweep", qdumps["float16"], "--out-dir", out, "--methods", "h2o", "--budgets", "0.2", "--quants",
                "none,int4", check=0)
    assert b"skip" in again.stderr.lower() or b"current" in again.stderr.lower(), again.stderr
    run("sweep", qdumps["float16"], "--out-dir", out, "--methods", "h2o", "--budgets", "0.2", "--quants", "int2",
        check=4)


def test_fp8_nan_code_in_a_file_is_refused(lookm, qdumps, tmp_path):
    out = tmp_path / "q.h5"
    run("compress", qdumps["float16"], "-o", out, "--quant", "fp8", check=0)
    with h5py.File(out, "r+") as f:
        codes = f["layers/1/value_codes"][...]
        codes[1, 5] = 0xFF
        f["layers/1/value_codes"][...] = codes
    for cmd in (["inspect", out], ["report", out]):
        p = run(*cmd, check=3)
        assert b"/layers/1" in p.stderr and b"kv head 1" in p.stderr and b"nan" in p.stderr, p.stderr


def test_group_beyond_the_element_type_is_refused(lookm, tmp_path):
    """A float16 key group spanning more than float16 can hold has an infinite scale: exit 3 naming
    the dump, the layer's dataset and the kv head, and no cache."""
    import shutil
    from conftest import FIXTURES
    dump = tmp_path / "wide.h5"
    shutil.copy(FIXTURES / "llava-mini.h5", dump)
    with h5py.File(dump, "r+") as f:
        key = f["layers/1/key"]
        k = key[...]
        k[2, 0, 5], k[2, 1, 5] = 60000, -60000
        key[...] = k
    out = tmp_path / "q.h5"
    for flags in (["--method", "full"], ["--method", "h2o", "--keep", "300"]):
        p = run("compress", dump, "-o", out, "--quant", "int4", *flags, check=3)
        assert b"wide.h5: /layers/1/key: kv head 2" in p.stderr and b"overflows" in p.stderr, p.stderr
        assert not out.exists()
    # Sweep measures the same way and says the same.
    p = run("sweep", dump, "--methods", "full", "--budgets", "0.5", "--quants", "int4", check=3)
    assert b"/layers/1/key: kv head 2" in p.stderr
