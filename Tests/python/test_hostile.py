"""Reliability, second round: side outputs and batch mode never replace an input, a dump stays
inside its own file, every size is bounded before it is allocated, and results that would be
wrong are refused instead of reported. Each test names the attack it replays."""
import io
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import threading
import time

import h5py
import hdf5plugin
import numpy as np
import pytest

from conftest import lookm_bin, run, synth

SMALL = ["--layers", "2", "--heads", "2", "--head-dim", "16", "--images", "1", "--image-tokens", "16",
         "--text-tokens", "16", "--query", "--window", "4", "--probes", "2"]
SECRET = b"lookm-secret-0123456789-do-not-leak\n" * 200


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    return synth(d / "d.h5", *SMALL, "--dtype", "float32")


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A second dump of the same shape, from another seed."""
    d = tmp_path_factory.mktemp("hostile-other")
    return synth(d / "o.h5", *SMALL, "--dtype", "float32", "--seed", "7")


@pytest.fixture(scope="module")
def cache(dump, tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile-cache") / "c.h5"
    run("compress", dump, "-o", out, check=0)
    return out


def copy(src, dst):
    shutil.copy(src, dst)
    return dst


def measured(*args, env=None, **kw):
    """Runs lookm under GNU time; returns (process, peak RSS in MiB)."""
    rss = f"/tmp/lookm-rss.{os.getpid()}.{threading.get_ident()}"
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss, lookm_bin(), *map(str, args)],
                       capture_output=True, env=env, timeout=120, **kw)
    with open(rss) as f:
        peak = int(f.read().split()[-1]) / 1024
    os.unlink(rss)
    return p, peak


def one_line(p, code, *words):
    err = p.stderr.decode()
    assert p.returncode == code, f"exit {p.returncode}: {err}"
    assert err.count("\n") == 1, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    return err


def no_temporaries(*dirs):
    for d in dirs:
        assert [n for n in os.listdir(d) if "lookm-tmp" in n] == []


# ---------------------------------------------------------------------------------------------
# Data loss: no output of any kind replaces an input or, without --force, anything at all.


def test_report_plot_never_replaces_the_cache_or_the_reference(lookm, dump, cache, tmp_path):
    c, d = copy(cache, tmp_path / "c.h5"), copy(dump, tmp_path / "d.h5")
    before = {p: p.read_bytes() for p in (c, d)}
    for target in (c, d):
        for force in ([], ["--force"]):
            p = run("report", c, "--reference", d, "--plot", target, *force)
            one_line(p, 4, str(target), "input")
    (tmp_path / "link.svg").symlink_to(d)   # another name for the input
    one_line(run("report", c, "--reference", d, "--plot", tmp_path / "link.svg", "--force"), 4, "input")
    assert {p: p.read_bytes() for p in (c, d)} == before
    no_temporaries(tmp_path)


def test_plots_do_not_replace_existing_files_without_force(lookm, dump, cache, tmp_path):
    victim = tmp_path / "notes.svg"
    victim.write_bytes(b"precious")
    one_line(run("report", cache, "--plot", victim), 4, "already exists", "--force")
    one_line(run("sweep", dump, "--methods", "h2o", "--budgets", "0.2", "--plot", victim), 4, "already exists")
    assert victim.read_bytes() == b"precious"
    run("report", cache, "--plot", victim, "--force", check=0)
    assert b"<svg" in victim.read_bytes()


def test_sweep_plot_never_replaces_the_dump(lookm, dump, tmp_path):
    d = copy(dump, tmp_path / "d.h5")
    before = d.read_bytes()
    one_line(run("sweep", d, "--methods", "h2o", "--budgets", "0.2", "--plot", d, "--force"), 4, "input")
    assert d.read_bytes() == before


def test_batch_output_never_replaces_another_dump_of_the_batch(lookm, dump, other, tmp_path):
    # x.h5's output name is x.lookm.h5, which here is itself a dump of the batch.
    x, victim = copy(dump, tmp_path / "x.h5"), copy(other, tmp_path / "x.lookm.h5")
    before = victim.read_bytes()
    for force in ([], ["--force"]):
        p = run("compress", "--out-dir", tmp_path, x, victim, *force)
        assert p.returncode == 4, p.stderr.decode()
        assert "x.lookm.h5" in p.stderr.decode()
        assert victim.read_bytes() == before
    # Alone in the batch, the same file is still protected: it is not a lookm cache.
    p = run("compress", "--out-dir", tmp_path, x)
    assert p.returncode == 4 and "not a lookm compress output" in p.stderr.decode()
    assert victim.read_bytes() == before
    no_temporaries(tmp_path)


def test_device_outputs_are_written_through_never_replaced(lookm, dump, tmp_path):
    link = tmp_path / "null-link.h5"
    link.symlink_to("/dev/null")
    for target in ("/dev/null", link):
        run("compress", dump, "-o", target, "--force", check=0)
        run("compress", dump, "-o", target, check=0)   # writing through needs no --force
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert os.path.islink(link) and os.readlink(link) == "/dev/null"
    # Through a FIFO: the reader receives exactly the cache a regular file gets.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("bytes", open(fifo, "rb").read()))
    reader.start()
    run("compress", dump, "-o", fifo, check=0)
    reader.join(timeout=60)
    run("compress", dump, "-o", tmp_path / "plain.h5", check=0)
    assert got["bytes"] == (tmp_path / "plain.h5").read_bytes()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    no_temporaries(tmp_path)


def test_block_devices_and_sockets_are_refused(lookm, dump, tmp_path):
    """A block device is never written, even with --force (the node made here points at a loop
    device minor that does not exist, so even a bug could not reach a disk)."""
    node = tmp_path / "disk"
    try:
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(7, 250))
    except (PermissionError, OSError):
        pytest.skip("needs root to make a block device node")
    one_line(run("compress", dump, "-o", node, "--force"), 4, "block device")
    import socket
    sock_path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        one_line(run("compress", dump, "-o", sock_path, "--force"), 4, "not a regular file")
    assert sorted(os.listdir(tmp_path)) == ["disk", "sock"]


def test_stdout_that_is_the_input_is_refused(lookm, dump, cache, tmp_path):
    d, c = copy(dump, tmp_path / "d.h5"), copy(cache, tmp_path / "c.h5")
    before = {p: p.read_bytes() for p in (d, c)}
    cases = [("compress", d, "-o", "-"), ("compress", d, "-o", tmp_path / "x.h5", "--json"), ("inspect", d),
             ("report", c, "--reference", d), ("sweep", d, "--budgets", "0.2")]
    for args in cases:
        victim = c if args[0] == "report" else d
        with open(victim, "r+b") as fd:   # the shell's 1<>file: no truncation
            p = subprocess.run([lookm_bin(), *map(str, args)], stdout=fd, stderr=subprocess.PIPE, timeout=60)
        one_line(p, 4, "stdout", "input")
    with open(d, "rb") as fin, open(d, "r+b") as fout:   # lookm compress - -o - <d.h5 1<>d.h5
        p = subprocess.run([lookm_bin(), "compress", "-", "-o", "-"], stdin=fin, stdout=fout, stderr=subprocess.PIPE, timeout=60)
    one_line(p, 4, "stdout")
    assert {p: p.read_bytes() for p in (d, c)} == before
    assert not (tmp_path / "x.h5").exists()


def test_write_errors_on_stdout_are_output_errors(lookm, dump, cache, tmp_path):
    run("compress", "--out-dir", tmp_path / "b", dump, check=0)
    cases = [("inspect", dump), ("inspect", "--json", dump), ("report", cache, "--reference", dump),
             ("sweep", dump, "--methods", "h2o", "--budgets", "0.2"), ("collect", tmp_path / "b"),
             ("compress", dump, "-o", tmp_path / "j.h5", "--json", "--force"), ("compress", dump, "-o", "-")]
    for args in cases:
        with open("/dev/full", "wb") as full:
            p = subprocess.run([lookm_bin(), *map(str, args)], stdout=full, stderr=subprocess.PIPE, timeout=60)
        err = p.stderr.decode().splitlines()
        assert p.returncode == 4 and "stdout" in err[-1], (args, p.returncode, err)
        assert len(err) == 1 or (args[0] == "compress" and len(err) == 2)   # compress: its summary line first


# ---------------------------------------------------------------------------------------------
# A dump is one self-contained file.


def external_raw(name):
    def mutate(f, secret):
        old = f[name]
        shape, dtype, attrs = old.shape, old.dtype, dict(old.attrs)
        del f[name]
        ds = f.create_dataset(name, shape=shape, dtype=dtype, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        for k, v in attrs.items():
            ds.attrs[k] = v
    return mutate


def external_link(f, secret_dump):
    del f["layers/1"]
    f["layers/1"] = h5py.ExternalLink(str(secret_dump), "/layers/1")


def virtual(missing):
    def mutate(f, secret_dump):
        source = secret_dump if not missing else secret_dump.parent / "gone.h5"
        old = f["layers/0/key"]
        layout = h5py.VirtualLayout(shape=old.shape, dtype=old.dtype)
        layout[...] = h5py.VirtualSource(str(source), "layers/0/key", shape=old.shape)
        del f["layers/0/key"]
        f.create_virtual_dataset("layers/0/key", layout, fillvalue=0)
    return mutate


FOREIGN = [
    ("external raw storage of a key", external_raw("layers/0/key"), "/layers/0/key", "external"),
    ("external raw storage of the modality table", external_raw("tokens/modality"), "/tokens/modality", "external"),
    ("external link to a layer", external_link, "/layers/1", "external link"),
    ("virtual dataset", virtual(False), "/layers/0/key", "virtual"),
    ("virtual dataset with a missing source", virtual(True), "/layers/0/key", "virtual"),
]


@pytest.mark.parametrize("name,mutate,obj,word", FOREIGN, ids=[c[0] for c in FOREIGN])
def test_objects_outside_the_file_are_refused(lookm, dump, other, tmp_path, name, mutate, obj, word):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    secret_dump = copy(other, tmp_path / "secret.h5")
    bad = copy(dump, tmp_path / "bad.h5")
    with h5py.File(bad, "r+") as f:
        mutate(f, secret if "raw" in name else secret_dump)
    out = tmp_path / "out"
    out.mkdir()
    for args in (["inspect", bad], ["compress", bad, "-o", out / "c.h5", "--method", "full", "--codec", "none"],
                 ["sweep", bad, "--budgets", "0.2"], ["report", bad]):
        p = run(*args)
        err = one_line(p, 3, str(bad), obj, word)
        assert b"lookm-secret" not in p.stdout + p.stderr
    assert os.listdir(out) == []
    # A cache with the same kind of object is refused by its readers too.
    c = tmp_path / "c.h5"
    run("compress", dump, "-o", c, check=0)
    with h5py.File(c, "r+") as f:
        if "raw" in name:
            external_raw("tokens/modality")(f, secret)
        else:
            f["extra"] = h5py.ExternalLink(str(secret_dump), "/layers/0")
    for args in (["inspect", c], ["report", c, "--reference", dump]):
        one_line(run(*args), 3, str(c))


# ---------------------------------------------------------------------------------------------
# Every size is bounded before it is allocated.


def never_written(f):
    """2^24 tokens behind gzip, with not one chunk ever written: 10 KB of file."""
    n = 1 << 24
    f.attrs["seq_len"] = n
    for name in ["tokens/modality", "tokens/segment"]:
        if name in f:
            del f[name]
    f.create_dataset("tokens/modality", shape=(n,), dtype=np.uint8, chunks=(1 << 16,), compression="gzip")
    for layer in range(2):
        g = f[f"layers/{layer}"]
        for k in list(g.keys()):
            del g[k]
        for k in ("key", "value"):
            g.create_dataset(k, shape=(2, n, 16), dtype=np.float32, chunks=(1, 4096, 16), compression="gzip")


def huge_chunks(f):
    """A zstd chunk of 1 GiB (allowed by an extendible shape) over a 4 KB dataset."""
    key = f["layers/0/key"][...]
    del f["layers/0/key"]
    f.create_dataset("layers/0/key", data=key, chunks=(1, 1 << 20, 256), maxshape=(None, None, None), **hdf5plugin.Zstd())


def tiny_chunks(f):
    """One element per chunk: HDF5 keeps kilobytes of bookkeeping per chunk a read touches."""
    for layer in range(2):
        for k in ("key", "value"):
            x = f[f"layers/{layer}/{k}"][...]
            del f[f"layers/{layer}/{k}"]
            f.create_dataset(f"layers/{layer}/{k}", data=x, chunks=(1, 1, 1))


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Large enough that one-element chunks cost hundreds of MB when read naively."""
    d = tmp_path_factory.mktemp("wide")
    return synth(d / "w.h5", "--layers", "2", "--heads", "8", "--head-dim", "64", "--images", "2",
                 "--image-tokens", "576", "--text-tokens", "200")


SIZES = [("never-written gzip data declaring 2^24 tokens", never_written, "declares"),
         ("1 GiB zstd chunks", huge_chunks, "larger than the dataset"),
         ("one-element chunks", tiny_chunks, "too small")]


@pytest.mark.parametrize("name,mutate,word", SIZES, ids=[c[0] for c in SIZES])
def test_sizes_are_bounded_whatever_the_filters_and_chunks(lookm, dump, wide, tmp_path, name, mutate, word):
    bad = copy(wide if mutate is tiny_chunks else dump, tmp_path / "bad.h5")
    with h5py.File(bad, "r+") as f:
        mutate(f)
    out = tmp_path / "out"
    out.mkdir()
    for args in (["inspect", bad], ["compress", bad, "-o", out / "c.h5"], ["sweep", bad, "--budgets", "0.2"]):
        p, peak = measured(*args)
        one_line(p, 3, str(bad), word)
        assert peak < 128, f"{args[0]}: peak RSS {peak:.0f} MiB"
    assert os.listdir(out) == []


def test_absurd_thread_counts(lookm, dump, cache, tmp_path):
    for flag, cmd in [("--threads", ["compress", dump, "-o", tmp_path / "c.h5"]), ("--threads", ["report", cache]),
                      ("--jobs", ["sweep", dump]), ("--threads", ["synth", "-o", tmp_path / "s.h5"])]:
        for value in ("9223372036854775807", "100000000", "0", "-3"):
            one_line(run(*cmd, flag, value), 2, flag, value)
    assert sorted(os.listdir(tmp_path)) == []
    env = dict(os.environ, SLURM_CPUS_PER_TASK="100000000")
    for args in (["report", cache, "--reference", dump], ["sweep", dump, "--budgets", "0.2"],
                 ["compress", dump, "-o", tmp_path / "c.h5"]):
        p, peak = measured(*args, env=env)
        assert p.returncode == 0, p.stderr.decode()
        assert peak < 256, f"{args[0]}: {peak:.0f} MiB"
    env["SLURM_CPUS_PER_TASK"] = "9223372036854775807"
    run("report", cache, "--reference", dump, env=env, check=0)


def test_a_fault_of_lookm_own_is_not_blamed_on_the_input(lookm, tmp_path):
    """SIGSEGV while lookm itself is blocked writing to stdout (no HDF5 on the stack): exit 1,
    'internal error'; the file it read is not called damaged."""
    src = synth(tmp_path / "big.h5", "--layers", "4", "--heads", "4", "--head-dim", "64", "--images", "1",
                "--image-tokens", "400", "--text-tokens", "100")
    p = subprocess.Popen([lookm_bin(), "compress", str(src), "-o", "-", "--method", "full"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:   # wait until the main thread blocks in write(2) on the full pipe
        try:
            with open(f"/proc/{p.pid}/syscall") as f:
                if f.read().split()[0] == "1":
                    break
        except (OSError, IndexError):
            pass
        time.sleep(0.05)
    else:
        pytest.fail("lookm never blocked writing to stdout")
    time.sleep(0.2)
    p.send_signal(signal.SIGSEGV)
    p.stdout.close()
    assert p.wait(timeout=30) == 1
    err = p.stderr.read().decode()
    assert "internal error" in err and "damaged" not in err and str(src) not in err, err


# ---------------------------------------------------------------------------------------------
# Results that would be wrong are refused.


def test_report_refuses_a_reference_that_is_not_the_source(lookm, dump, other, cache):
    err = one_line(run("report", cache, "--reference", other), 3, str(other), "not the dump the cache was made from")
    assert "d.h5" in err   # the recorded source, as a hint
    run("report", cache, "--reference", dump, check=0)


def zero_a_zstd_chunk(path):
    with h5py.File(path, "r") as f:
        info = f["layers/1/value"].id.get_chunk_info(0)
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset)
        raw.write(b"\0" * info.size)


def test_batch_rerun_and_collect_validate_the_data(lookm, dump, tmp_path):
    out = tmp_path / "b"
    run("compress", "--out-dir", out, dump, check=0)
    cache = out / "d.lookm.h5"
    zero_a_zstd_chunk(cache)
    assert run("inspect", cache).returncode == 3
    p = run("collect", out, "--format", "json")
    assert p.returncode == 1 and "output_invalid" in p.stderr.decode()
    p = run("compress", "--out-dir", out, dump, "--json", check=0)
    record = json.loads(p.stdout.decode().splitlines()[-1])
    assert record["status"] == "ok" and record["error"].startswith("redone")
    run("inspect", cache, check=0)
    run("collect", out, check=0)


def inconsistent(attr=None, value=None, merged=None):
    def mutate(path):
        with h5py.File(path, "r+") as f:
            if attr is not None:
                f.attrs[attr] = value
            if merged is not None:
                m = f["layers/0/merged"][...]
                m[0, 0] = merged
                f["layers/0/merged"][...] = m
    return mutate


CACHE_CASES = [
    ("merged count of 2^31-1", inconsistent(merged=2**31 - 1), "/layers/0/merged"),
    ("merged count off by one", inconsistent(merged=-1), "/layers/0/merged"),
    ("method that is not JSON", inconsistent("method", "lookm, trust me"), "method"),
    ("negative source_size", inconsistent("source_size", -5), "source_size"),
]


@pytest.mark.parametrize("name,mutate,word", CACHE_CASES, ids=[c[0] for c in CACHE_CASES])
def test_inspect_checks_a_cache_is_consistent(lookm, cache, tmp_path, name, mutate, word):
    c = copy(cache, tmp_path / "c.h5")
    mutate(c)
    one_line(run("inspect", c), 3, str(c), word)


def test_control_characters_from_a_file_are_escaped(lookm, dump, tmp_path):
    d = copy(dump, tmp_path / "d.h5")
    with h5py.File(d, "r+") as f:
        f.attrs["model"] = "evil\x1b[2J\x1b]0;owned\x07model"
    p = run("inspect", d, check=0)
    assert b"\x1b" not in p.stdout and b"\x07" not in p.stdout
    assert b"evil\\x1b[2J" in p.stdout
    with h5py.File(d, "r+") as f:
        f.attrs["format"] = "\x1b[2Jlookm"
    p = run("inspect", d)
    assert p.returncode == 3 and b"\x1b" not in p.stderr and b"\\x1b" in p.stderr


# ---------------------------------------------------------------------------------------------
# The smaller items.


def test_list_flags_reject_empty_and_repeated_entries(lookm, dump, tmp_path):
    one_line(run("sweep", dump, "--budgets", "0.1,,0.2"), 2, "--budgets", "empty")
    one_line(run("sweep", dump, "--methods", "lookm,,h2o"), 2, "--methods", "empty")
    one_line(run("sweep", dump, "--budgets", "0.1,0.1", "--keep-caches", tmp_path), 2, "0.1", "twice")
    one_line(run("sweep", dump, "--methods", "h2o,h2o", "--keep-caches", tmp_path), 2, "h2o", "twice")
    assert os.listdir(tmp_path) == []


def test_negative_numbers_are_explained_not_missing(lookm, dump, tmp_path):
    for flag, value in [("--keep", "-5"), ("--budget", "-0.1"), ("--hh-ratio", "-1"), ("--window", "-2"), ("--sinks", "-1")]:
        method = {"--window": ["--method", "snapkv"], "--sinks": ["--method", "streaming"]}.get(flag, [])
        p = run("compress", dump, "-o", tmp_path / "c.h5", flag, value, *method)
        err = p.stderr.decode()
        assert p.returncode == 2 and "Missing value" not in err and "USAGE" not in err.upper().split("\n")[0], err
        assert value in err, err
    assert os.listdir(tmp_path) == []


def test_two_workers_on_the_same_shard_do_not_fail_each_other(lookm, tmp_path):
    dumps = [synth(tmp_path / f"s{i}.h5", *SMALL, "--seed", str(i)) for i in range(6)]
    out = tmp_path / "b"
    cmd = [lookm_bin(), "compress", "--out-dir", str(out), "--shard", "0/1", *map(str, dumps)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    p = run("collect", out, "--format", "json", check=0)
    c = json.loads(p.stdout)
    assert c["problems"] == [] and len(c["records"]) == 6
    assert all(r["status"] in ("ok", "skipped") for r in c["records"])
    no_temporaries(out)


def test_long_output_names(lookm, dump, tmp_path):
    name = "n" * 248 + ".h5"   # a temporary name built naively would pass 255 bytes
    run("compress", dump, "-o", tmp_path / name, check=0)
    run("inspect", tmp_path / name, check=0)
    no_temporaries(tmp_path)


def mount(*args):
    return subprocess.run(["mount", *map(str, args)], capture_output=True)


def test_a_full_results_file_does_not_stop_the_batch(lookm, tmp_path):
    dumps = [synth(tmp_path / f"s{i}.h5", *SMALL, "--seed", str(i)) for i in range(3)]
    out = tmp_path / "b"
    results = out / "results"
    results.mkdir(parents=True)
    if os.geteuid() != 0 or mount("-t", "tmpfs", "-o", "size=4k", "tmpfs", results).returncode != 0:
        pytest.skip("needs root to mount a tiny tmpfs")
    try:
        try:   # fill it: the records cannot be written, the outputs (elsewhere) can
            with open(results / "filler", "wb") as f:
                f.write(b"x" * 8192)
        except OSError:
            pass
        p = run("compress", "--out-dir", out, *dumps)
        assert p.returncode == 4, p.stderr.decode()
        assert "results" in p.stderr.decode()
        for d in dumps:
            run("inspect", out / (d.stem + ".lookm.h5"), check=0)
    finally:
        subprocess.run(["umount", str(results)])


# ---------------------------------------------------------------------------------------------
# Structural fuzz: filters, chunk shapes, external storage and links, on every dataset.


def structural_mutation(f, rng, secret, secret_dump):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    name = rng.choice(names)
    old = f[name]
    data, attrs = old[...], dict(old.attrs)
    kind = rng.choice(["chunks", "filters", "maxshape", "external", "link", "virtual", "fillvalue"])
    if kind == "link":
        del f[name]
        f[name] = h5py.ExternalLink(str(secret_dump), "/" + name if rng.random() < 0.5 else "/nowhere")
        return kind
    del f[name]
    shape = data.shape
    kw = {}
    if kind == "external":
        kw["external"] = [(str(secret), rng.choice([0, 7]), h5py.h5f.UNLIMITED)]
    elif kind == "virtual":
        layout = h5py.VirtualLayout(shape=shape, dtype=data.dtype)
        layout[...] = h5py.VirtualSource(str(secret_dump if rng.random() < 0.5 else secret.parent / "none.h5"), name, shape=shape)
        f.create_virtual_dataset(name, layout)
        return kind
    elif shape:
        chunks = tuple(max(1, rng.choice([1, 2, d, d * 4 + 1])) for d in shape)
        if kind in ("chunks", "maxshape", "filters", "fillvalue"):
            kw["maxshape"] = tuple(None for _ in shape)
            kw["chunks"] = chunks
        if kind == "filters":
            kw.update(rng.choice([dict(compression="gzip", shuffle=True), dict(fletcher32=True), dict(compression="lzf"),
                                  dict(hdf5plugin.Zstd(clevel=rng.choice([1, 19])))]))
        if kind == "fillvalue":
            kw["fillvalue"] = rng.choice([0, 7, -1])
    ds = f.create_dataset(name, data=data, **kw) if kind != "fillvalue" or rng.random() < 0.5 else \
        f.create_dataset(name, shape=shape, dtype=data.dtype, **kw)
    for k, v in attrs.items():
        ds.attrs[k] = v
    return kind


def test_fuzz_structure_never_crashes_leaks_or_balloons(lookm, dump, other, tmp_path):
    """Rebuilt datasets with random chunk shapes (tiny, larger than the data), filters, fill values,
    external raw storage, external links and virtual datasets: exit 0 or 3, never a signal, a
    hang, a leak of another file's bytes or a peak RSS over 128 MiB. LOOKM_FUZZ_CASES raises
    the count (default 40)."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    secret_dump = copy(other, tmp_path / "secret.h5")
    rng = random.Random(20261202)
    kinds = {}
    for i in range(int(os.environ.get("LOOKM_FUZZ_CASES", "40"))):
        bad = copy(dump, tmp_path / "fuzz.h5")
        with h5py.File(bad, "r+") as f:
            kind = structural_mutation(f, rng, secret, secret_dump)
        for args in (["inspect", bad], ["compress", bad, "-o", tmp_path / "out.h5", "--force", "--method", "full", "--codec", "none"]):
            p, peak = measured(*args)
            assert p.returncode in (0, 3), f"case {i} ({kind}): exit {p.returncode}: {p.stderr.decode()}"
            assert peak < 128, f"case {i} ({kind}): {peak:.0f} MiB"
            if p.returncode == 3:
                assert p.stderr.decode().count("\n") == 1
            assert b"lookm-secret" not in p.stdout + p.stderr
            if p.returncode == 0 and args[0] == "compress":
                assert b"lookm-secret" not in (tmp_path / "out.h5").read_bytes()
            kinds[(kind, p.returncode)] = kinds.get((kind, p.returncode), 0) + 1
    assert all(code == 3 for (kind, code) in kinds if kind in ("external", "link", "virtual")), kinds
    no_temporaries(tmp_path)
    print(f"structural fuzz: {kinds}")


def frame_of(n_elements, dtype, shuffle):
    """A valid zstd frame (as h5py with hdf5plugin writes chunks) of n_elements, and its bytes."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        d = f.create_dataset("x", data=np.arange(n_elements, dtype=dtype), chunks=(n_elements,), shuffle=shuffle,
                             **hdf5plugin.Zstd())
        return d.id.read_direct_chunk((0,))[1]


@pytest.mark.parametrize("rows", [3, 64], ids=["short", "long"])
def test_a_valid_zstd_frame_of_the_wrong_size_is_refused(lookm, dump, cache, tmp_path, rows):
    """lookm decodes zstd (and shuffle + zstd) chunks itself (Sources/LookM/HDF5/H5Dataset+ChunkCopies.swift):
    a well-formed frame that decodes to fewer or more bytes than its chunk holds is an error naming the
    dataset, for a dump (compress) and a cache (report), and no output is left."""
    bad = copy(dump, tmp_path / "bad.h5")
    with h5py.File(bad, "r+") as f:
        key = f["layers/0/key"][...]
        del f["layers/0/key"]
        d = f.create_dataset("layers/0/key", data=key, chunks=(1,) + key.shape[1:], **hdf5plugin.Zstd())
        d.id.write_direct_chunk((1, 0, 0), frame_of(rows * key.shape[2], key.dtype, False))
    out = tmp_path / "out"
    out.mkdir()
    one_line(run("compress", bad, "-o", out / "c.h5"), 3, str(bad), "/layers/0/key")
    assert os.listdir(out) == []
    damaged = copy(cache, tmp_path / "cache.h5")
    with h5py.File(damaged, "r+") as f:
        value = f["layers/1/value"]
        assert value.shuffle and value.chunks[0] == 1
        value.id.write_direct_chunk((0, 0, 0), frame_of(rows * value.shape[2], value.dtype, True))
    one_line(run("report", damaged, "--reference", dump), 3, str(damaged), "/layers/1/value")
