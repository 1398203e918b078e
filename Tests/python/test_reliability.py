"""Bad input, faults and pipes: lookm never crashes, hangs, loses data or leaves a half-written cache."""
import os
import random
import shutil
import signal
import subprocess
import time

import h5py
import hdf5plugin
import numpy as np
import pytest

from conftest import lookm_bin, run, synth

SMALL = ["--layers", "2", "--heads", "2", "--head-dim", "16", "--images", "1", "--image-tokens", "16",
         "--text-tokens", "16", "--query", "--window", "4", "--probes", "2"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    return synth(d / "base.h5", *SMALL, "--dtype", "float32")


def edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


def replace(f, name, data, **kw):
    attrs = dict(f[name].attrs) if name in f else {}
    if name in f:
        del f[name]
    ds = f.create_dataset(name, data=data, **kw)
    for k, v in attrs.items():
        ds.attrs[k] = v


def poke(name, index, value):
    def fn(f):
        x = f[name][...]
        x[index] = value
        f[name][...] = x
    return fn


def corrupt_zstd_chunk(path):
    with h5py.File(path, "r+") as f:
        key = f["layers/0/key"][...]
        del f["layers/0/key"]
        f.create_dataset("layers/0/key", data=key, chunks=(1, 32, 16), **hdf5plugin.Zstd())
        info = f["layers/0/key"].id.get_chunk_info(0)
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset + 4)
        raw.write(b"\xff" * max(1, info.size - 8))


def huge_declared(f):
    # A seq_len of 16 M tokens with a contiguous, never-written modality table: 16 MB declared, no data.
    f.attrs["seq_len"] = 1 << 24
    del f["tokens/modality"]
    f.create_dataset("tokens/modality", shape=(1 << 24,), dtype=np.uint8)


# (name, mutation of a copy of the base dump, words the message must contain, command)
CASES = [
    ("text file", lambda p: p.write_text("not hdf5\n"), ["not an HDF5 file"], "compress"),
    ("empty file", lambda p: p.write_bytes(b""), ["not an HDF5 file"], "compress"),
    ("truncated to half", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), [], "compress"),
    ("truncated to 1 KiB", lambda p: p.write_bytes(p.read_bytes()[:1024]), [], "compress"),
    ("another layout", lambda p: h5py.File(p, "w").create_dataset("x", data=np.arange(3)), ["missing root attribute format"], "compress"),
    ("a cache where a dump belongs", lambda p: edit(p, lambda f: f.attrs.__setitem__("format", "lookm-kv-cache")), ['expected "lookm-kv-dump"'], "compress"),
    ("format version 2", lambda p: edit(p, lambda f: f.attrs.__setitem__("format_version", 2)), ["format_version = 2"], "compress"),
    ("missing num_layers", lambda p: edit(p, lambda f: f.attrs.__delitem__("num_layers")), ["num_layers"], "compress"),
    ("string num_layers", lambda p: edit(p, lambda f: f.attrs.__setitem__("num_layers", "2")), ["num_layers", "expected an integer"], "compress"),
    ("float num_heads", lambda p: edit(p, lambda f: f.attrs.__setitem__("num_heads", 2.5)), ["num_heads", "expected an integer"], "compress"),
    ("empty sequence", lambda p: edit(p, lambda f: f.attrs.__setitem__("seq_len", 0)), ["seq_len = 0"], "compress"),
    ("heads not a multiple", lambda p: edit(p, lambda f: f.attrs.__setitem__("num_kv_heads", 3)), ["not a multiple"], "compress"),
    ("missing layer", lambda p: edit(p, lambda f: f.__delitem__("layers/1")), ["/layers/1", "missing"], "compress"),
    ("key is a group", lambda p: edit(p, lambda f: (f.__delitem__("layers/0/key"), f.create_group("layers/0/key"))), ["/layers/0/key", "not a dataset"], "compress"),
    ("key shape", lambda p: edit(p, lambda f: replace(f, "layers/0/key", np.zeros((2, 31, 16), np.float32))), ["/layers/0/key", "shape [2, 31, 16]"], "compress"),
    ("int32 key", lambda p: edit(p, lambda f: replace(f, "layers/0/key", np.zeros((2, 32, 16), np.int32))), ["/layers/0/key", "int32"], "compress"),
    ("float64 key", lambda p: edit(p, lambda f: replace(f, "layers/0/key", np.zeros((2, 32, 16), np.float64))), ["/layers/0/key", "float64"], "compress"),
    ("uint16 key without dtype", lambda p: edit(p, lambda f: replace(f, "layers/0/key", np.zeros((2, 32, 16), np.uint16))), ['dtype = "bfloat16"'], "compress"),
    ("complex key", lambda p: edit(p, lambda f: replace(f, "layers/0/key", np.zeros((2, 32, 16), np.complex64))), ["/layers/0/key", "unsupported element type"], "compress"),
    ("NaN in a key", lambda p: edit(p, poke("layers/1/key", (1, 3, 2), np.nan)), ["/layers/1/key", "NaN at head 1, row 3, column 2"], "compress"),
    ("infinity in a value", lambda p: edit(p, poke("layers/0/value", (0, 31, 15), np.inf)), ["/layers/0/value", "infinity"], "compress"),
    ("NaN in attn_score", lambda p: edit(p, poke("layers/0/attn_score", (1, 5), np.nan)), ["/layers/0/attn_score", "NaN"], "compress"),
    ("NaN in a query", lambda p: edit(p, poke("layers/1/query", (0, 0, 0), np.nan)), ["/layers/1/query", "NaN"], "inspect"),
    ("modality length", lambda p: edit(p, lambda f: replace(f, "tokens/modality", np.zeros(31, np.uint8))), ["/tokens/modality", "shape [31]"], "compress"),
    ("unknown modality", lambda p: edit(p, lambda f: replace(f, "tokens/modality", np.full(32, 9, np.uint8))), ["/tokens/modality", "value 9"], "compress"),
    ("float modality", lambda p: edit(p, lambda f: replace(f, "tokens/modality", np.zeros(32, np.float32))), ["/tokens/modality", "expected integers"], "compress"),
    ("missing modality", lambda p: edit(p, lambda f: f.__delitem__("tokens/modality")), ["/tokens/modality", "missing"], "compress"),
    ("segment length", lambda p: edit(p, lambda f: replace(f, "tokens/segment", np.zeros(5, np.int32))), ["/tokens/segment"], "compress"),
    ("huge declared size, tiny data", lambda p: edit(p, huge_declared), ["/tokens/modality", "declares", "holds"], "compress"),
    ("zstd chunk that does not decompress", corrupt_zstd_chunk, ["/layers/0/key"], "compress"),
    ("unavailable filter", lambda p: edit(p, lambda f: replace(f, "layers/0/attn_score", np.ones((2, 32), np.float32), chunks=(2, 32),
                                                              compression=32026, allow_unknown_filter=True)), ["/layers/0/attn_score", "32026"], "compress"),
    ("model attribute of the wrong type", lambda p: edit(p, lambda f: f.attrs.__setitem__("model", 7)), ["attribute model", "expected a string"], "compress"),
    ("attn_scale a string", lambda p: edit(p, lambda f: f.attrs.__setitem__("attn_scale", "0.25")), ["attn_scale", "expected a number"], "compress"),
    ("attn_scale negative", lambda p: edit(p, lambda f: f.attrs.__setitem__("attn_scale", -1.0)), ["attn_scale"], "compress"),
    ("probe count disagrees", lambda p: edit(p, lambda f: replace(f, "layers/0/probe_query", np.zeros((2, 3, 16), np.float32))), ["/layers/0/probe_query"], "compress"),
    ("unknown format extension", lambda p: edit(p, lambda f: f.attrs.update(format_version=2, extensions="telepathy")), ['"telepathy"', "does not know"], "compress"),
    ("cache extension in a dump", lambda p: edit(p, lambda f: f.attrs.update(format_version=2, extensions="ragged-heads")), ["ragged-heads", "for caches"], "compress"),
    ("version 2 without extensions", lambda p: edit(p, lambda f: f.attrs.__setitem__("format_version", 2)), ["extensions"], "compress"),
    ("next-position without next_position", lambda p: edit(p, lambda f: f.attrs.update(format_version=2, extensions="next-position")), ["next_position"], "compress"),
    ("negative next_position", lambda p: edit(p, lambda f: f.attrs.update(format_version=2, extensions="next-position", next_position=-3)), ["next_position = -3"], "compress"),
    ("probes not at next_position", lambda p: edit(p, lambda f: f.attrs.update(format_version=2, extensions="next-position", next_position=20)), ["/probe/position", "next_position = 20"], "compress"),
    ("sliding window longer than the prompt", lambda p: edit(p, lambda f: (f.attrs.update(format_version=2, extensions="sliding-window"), f["layers/0"].attrs.__setitem__("sliding_window", 99))), ["/layers/0", "sliding_window = 99"], "compress"),
    ("window longer than the prompt", lambda p: edit(p, lambda f: replace(f, "layers/0/window_attn", np.zeros((2, 33, 32), np.float32))), ["/layers/0/window_attn"], "compress"),
]


@pytest.mark.parametrize("name,mutate,words,command", CASES, ids=[c[0] for c in CASES])
def test_bad_input(lookm, base, tmp_path, name, mutate, words, command):
    bad = tmp_path / "bad.h5"
    shutil.copy(base, bad)
    mutate(bad)
    out = tmp_path / "out"
    out.mkdir()
    args = ["compress", bad, "-o", out / "c.h5"] if command == "compress" else ["inspect", bad]
    rss_file = tmp_path / "rss"
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), lookm_bin(), *map(str, args)],
                       capture_output=True, timeout=60)
    err = p.stderr.decode()
    assert int(rss_file.read_text().split()[-1]) < 256 * 1024, "peak RSS over 256 MiB"
    assert p.returncode == 3, f"{name}: exit {p.returncode}: {err}"
    assert err.startswith(f"lookm: {bad}") and err.count("\n") == 1, err
    for w in words:
        assert w in err, f"{name}: {w!r} not in {err!r}"
    assert os.listdir(out) == [], os.listdir(out)


def test_sparse_and_compressed_datasets_still_work(lookm, base, tmp_path):
    """The size checks reject what a file cannot hold, not what it legitimately stores sparsely."""
    sparse = tmp_path / "sparse.h5"
    shutil.copy(base, sparse)
    with h5py.File(sparse, "r+") as f:
        value = f["layers/0/value"][...]
        del f["layers/0/value"]
        d = f.create_dataset("layers/0/value", shape=value.shape, dtype=value.dtype, chunks=(1, 8, 16))
        d[0] = value[0]          # head 1's chunks are never written: they read as zeros
    run("compress", sparse, "-o", tmp_path / "a.h5", check=0)
    packed = tmp_path / "packed.h5"
    shutil.copy(base, packed)
    with h5py.File(packed, "r+") as f:
        key = f["layers/1/key"][...]
        del f["layers/1/key"]
        f.create_dataset("layers/1/key", data=key, chunks=(1, 32, 16), **hdf5plugin.Zstd(clevel=19))
    run("compress", packed, "-o", tmp_path / "b.h5", check=0)


def test_a_chunk_that_decompresses_past_its_size_is_rejected(lookm, base, tmp_path):
    import zlib  # noqa: F401  (zstd frames come from hdf5plugin's filter through h5py below)
    bad = tmp_path / "bomb.h5"
    shutil.copy(base, bad)
    with h5py.File(bad, "r+") as f:
        key = f["layers/0/key"][...]
        del f["layers/0/key"]
        # Write a big dataset's chunk (64x the real chunk) zstd-compressed, then splice its bytes
        # into the real dataset's chunk: a valid frame whose content is larger than the chunk.
        big = f.create_dataset("big", data=np.zeros((1, 32 * 64, 16), np.float32), chunks=(1, 32 * 64, 16), **hdf5plugin.Zstd())
        frame = big.id.read_direct_chunk((0, 0, 0))[1]
        d = f.create_dataset("layers/0/key", shape=key.shape, dtype=key.dtype, chunks=(1, 32, 16), **hdf5plugin.Zstd())
        d.id.write_direct_chunk((0, 0, 0), frame)
        del f["big"]
    p = run("compress", bad, "-o", tmp_path / "c.h5")
    assert p.returncode == 3 and "/layers/0/key" in p.stderr.decode()
    assert not (tmp_path / "c.h5").exists()


def test_there_are_at_least_30_bad_inputs():
    assert len(CASES) >= 30


def mutations(data, rng, kind):
    b = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "truncate":
        return bytes(b[: rng.randrange(len(b))])
    start = rng.randrange(len(b) - 64)    # damage a run of bytes (chunks, headers, B-trees)
    b[start:start + rng.randint(1, 64)] = bytes(rng.randrange(256) for _ in range(64))[: len(b[start:start + 64])]
    return bytes(b)


def test_fuzz_mutated_dumps_never_crash_or_hang(lookm, base, tmp_path):
    """Mutated copies (bit flips, truncations, damaged runs) of a plain and a zstd dump through
    inspect and compress: exit 0 (mutation in unused bytes) or 3, never a signal or a hang.
    LOOKM_FUZZ_CASES raises the count (default 150 per source dump)."""
    zstd_dump = tmp_path / "zstd.h5"
    synth(zstd_dump, *SMALL, "--codec", "zstd")
    cases = int(os.environ.get("LOOKM_FUZZ_CASES", "150"))
    rng = random.Random(20261125)
    counts = {"files": 0, "exit0": 0, "exit3": 0}
    for source in [base, zstd_dump]:
        data = source.read_bytes()
        for i in range(cases):
            path = tmp_path / "fuzz.h5"
            path.write_bytes(mutations(data, rng, ["flip", "truncate", "damage"][i % 3]))
            counts["files"] += 1
            for args in (["inspect", path], ["compress", path, "-o", tmp_path / "out.h5", "--force"]):
                try:
                    p = subprocess.run([lookm_bin(), *map(str, args)], capture_output=True, timeout=20)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"hang: {args} on case {i} of {source.name}")
                assert p.returncode >= 0, f"signal {-p.returncode}: {args} case {i} of {source.name}"
                assert p.returncode in (0, 3), f"exit {p.returncode}: {p.stderr.decode()}"
                counts[f"exit{p.returncode}"] += 1
                if p.returncode == 3:
                    assert p.stderr.decode().count("\n") == 1
    leftovers = [n for n in os.listdir(tmp_path) if "lookm-tmp" in n]
    assert leftovers == []
    print(f"fuzz: {counts}")


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Big enough that compress runs for about a second."""
    d = tmp_path_factory.mktemp("large")
    return synth(d / "large.h5", "--layers", "16", "--heads", "16", "--head-dim", "128", "--images", "3",
                 "--image-tokens", "576", "--text-tokens", "320")


def start_compress(src, out):
    return subprocess.Popen([lookm_bin(), "compress", str(src), "-o", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for_temporary(out_dir, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if any("lookm-tmp" in n for n in os.listdir(out_dir)):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_removes_the_temporary_file(lookm, large, tmp_path, sig):
    p = start_compress(large, tmp_path / "c.h5")
    assert wait_for_temporary(tmp_path)
    p.send_signal(sig)
    assert p.wait(timeout=20) == 128 + sig
    assert os.listdir(tmp_path) == []


def test_sigkill_leaves_no_final_file_and_the_next_run_cleans_up(lookm, large, tmp_path):
    p = start_compress(large, tmp_path / "c.h5")
    assert wait_for_temporary(tmp_path)
    p.kill()
    p.wait(timeout=20)
    names = os.listdir(tmp_path)
    assert "c.h5" not in names and len(names) == 1 and names[0].endswith(f".{p.pid}")
    # Another host's temporary file of the same output is never touched.
    other = tmp_path / ".c.h5.lookm-tmp.some-other-host.12345"
    other.write_bytes(b"x")
    run("compress", large, "-o", tmp_path / "c.h5", check=0)
    assert sorted(os.listdir(tmp_path)) == sorted(["c.h5", other.name])
    run("inspect", tmp_path / "c.h5", check=0)


def mount(*args):
    return subprocess.run(["mount", *map(str, args)], capture_output=True)


def test_full_disk_is_an_output_error(lookm, large, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", disk).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        p = run("compress", large, "-o", disk / "c.h5")
        assert p.returncode == 4, p.stderr.decode()
        assert str(disk / "c.h5") in p.stderr.decode()
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)])


def test_read_only_output_directory(lookm, base, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0 or mount("--bind", "-o", "ro", ro, ro).returncode != 0:
        pytest.skip("needs root for a read-only bind mount")
    try:
        p = run("compress", base, "-o", ro / "c.h5")
        assert p.returncode == 4 and str(ro / "c.h5") in p.stderr.decode()
        assert os.listdir(ro) == []
    finally:
        subprocess.run(["umount", str(ro)])


def test_output_onto_the_input_is_refused(lookm, base, tmp_path):
    dump = tmp_path / "d.h5"
    shutil.copy(base, dump)
    before = dump.read_bytes()
    (tmp_path / "link.h5").symlink_to(dump)
    for target in [dump, tmp_path / "link.h5"]:
        p = run("compress", dump, "-o", target, "--force")
        assert p.returncode == 4 and "is the input file" in p.stderr.decode()
    assert dump.read_bytes() == before


def test_closed_downstream_pipe_ends_quietly(lookm, large):
    p = subprocess.Popen([lookm_bin(), "compress", str(large), "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(1000)
    p.stdout.close()
    assert p.wait(timeout=60) != 0
    assert p.stderr.read() == b""


def test_concurrent_runs_on_one_input(lookm, base, tmp_path):
    procs = [subprocess.Popen([lookm_bin(), "compress", str(base), "-o", str(tmp_path / f"c{i}.h5")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    outputs = [(tmp_path / f"c{i}.h5").read_bytes() for i in range(4)]
    assert all(o == outputs[0] for o in outputs)
