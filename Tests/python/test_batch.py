"""Batch mode (compress/sweep --out-dir, --manifest, --shard) and `lookm collect`, without Slurm:
shards split a manifest exactly, reruns redo only what is missing, and collect tells what is."""
import json
import os
import shutil
import socket
import subprocess

import h5py
import hdf5plugin  # noqa: F401  (zstd filter for caches)
import numpy as np
import pytest

from conftest import run, synth

SMALL = ("--layers", "2", "--heads", "2", "--head-dim", "16", "--images", "1", "--image-tokens", "24", "--text-tokens", "16")


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch-dumps")
    return [synth(d / f"d{i}.h5", *SMALL, "--seed", str(i), "--probes", "4") for i in range(7)]


def manifest(path, dumps, comment=True):
    lines = (["# a manifest", ""] if comment else []) + [str(p) for p in dumps]
    path.write_text("\n".join(lines) + "\n")
    return path


def records(out):
    rs = []
    for f in sorted((out / "results").glob("*.jsonl")):
        rs += [json.loads(line) for line in f.read_text().splitlines()]
    return rs


def test_shards_are_disjoint_and_cover_the_manifest(dumps, tmp_path):
    m = manifest(tmp_path / "m.txt", dumps)
    out = tmp_path / "out"
    taken = []
    for i in range(3):
        run("compress", "--manifest", m, "--out-dir", out, "--shard", f"{i}/3", "--threads", "1", check=0)
        files = list((out / "results").glob(f"{i}-of-3.*.jsonl"))
        assert len(files) == 1, files
        shard = [json.loads(line)["dump"] for line in files[0].read_text().splitlines()]
        assert shard == [str(dumps[p]) for p in range(len(dumps)) if p % 3 == i]
        taken += shard
    assert sorted(taken) == sorted(map(str, dumps)) and len(set(taken)) == len(taken)
    for p in dumps:
        assert (out / (p.stem + ".lookm.h5")).is_file()
    # Results are one file per worker: shard, host and pid in the name.
    host = socket.gethostname()
    assert all(f.name.split(".")[1] == host for f in (out / "results").glob("*.jsonl"))


def test_batch_output_equals_single_compress(dumps, tmp_path):
    out = tmp_path / "out"
    run("compress", *dumps[:2], "--out-dir", out, "--method", "h2o", "--budget", "0.3", check=0)
    single = tmp_path / "single.h5"
    run("compress", dumps[1], "-o", single, "--method", "h2o", "--budget", "0.3", check=0)
    with h5py.File(out / "d1.lookm.h5") as a, h5py.File(single) as b:
        assert a.attrs["method"] == b.attrs["method"]
        for i in range(2):
            for name in ("key", "value", "position", "slot_of"):
                assert np.array_equal(a[f"layers/{i}/{name}"][()], b[f"layers/{i}/{name}"][()])


@pytest.mark.parametrize("flags", [["--head-allocation", "adakv", "--budget", "0.4"], ["--target-bytes", "30%"]])
def test_batch_takes_head_allocations_and_byte_targets_and_skips_them_on_rerun(dumps, tmp_path, flags):
    """A ragged cache (docs/format.md ragged-heads) and a --target-bytes budget (found per dump)
    are recognised as current on a rerun, and equal what a single compress writes."""
    out = tmp_path / "out"
    run("compress", *dumps[:2], "--out-dir", out, *flags, check=0)
    single = tmp_path / "single.h5"
    run("compress", dumps[1], "-o", single, *flags, check=0)
    assert (out / "d1.lookm.h5").read_bytes() == single.read_bytes()
    run("compress", *dumps[:2], "--out-dir", out, *flags, check=0)
    assert [r["status"] for r in records(out)][-2:] == ["skipped", "skipped"]


def test_rerun_skips_valid_outputs_and_redoes_broken_ones(dumps, tmp_path):
    out = tmp_path / "out"
    sel = dumps[:4]
    run("compress", *sel, "--out-dir", out, check=0)
    before = {p.stem: os.stat(out / (p.stem + ".lookm.h5")) for p in sel}

    # d1: a damaged cache (a chunk zeroed); d2: a foreign file under the output name; d3: the
    # dump changed since; d4 (below): a cache cut short, which is no longer recognisably lookm's.
    with h5py.File(out / "d1.lookm.h5") as f:
        info = f["layers/1/value"].id.get_chunk_info(0)
    with open(out / "d1.lookm.h5", "r+b") as raw:
        raw.seek(info.byte_offset)
        raw.write(b"\0" * info.size)
    (out / "d2.lookm.h5").write_text("not a cache\n")
    shutil.copy(sel[3], tmp_path / "d3-copy.h5")
    os.utime(sel[3], (before["d3"].st_mtime + 100, before["d3"].st_mtime + 100))

    p = run("compress", *sel, "--out-dir", out, "--json", check=4)
    latest = {json.loads(line)["dump"]: json.loads(line) for line in p.stdout.decode().splitlines()}
    status = {os.path.basename(d)[:-3]: r["status"] for d, r in latest.items()}
    assert status == {"d0": "skipped", "d1": "ok", "d2": "failed", "d3": "ok"}, status
    assert "redone" in latest[str(sel[1])]["error"] and "redone" in latest[str(sel[3])]["error"]
    # A file lookm did not make is never replaced unasked.
    assert "not a lookm compress output" in latest[str(sel[2])]["error"]
    assert (out / "d2.lookm.h5").read_text() == "not a cache\n"
    # The skipped output was not touched; redone ones are valid caches again.
    assert os.stat(out / "d0.lookm.h5").st_ino == before["d0"].st_ino
    assert os.stat(out / "d0.lookm.h5").st_mtime_ns == before["d0"].st_mtime_ns
    for stem in ("d1", "d3"):
        run("inspect", out / f"{stem}.lookm.h5", check=0)
    # With --force the foreign file is replaced; a cache cut short needs --force too.
    data = (out / "d3.lookm.h5").read_bytes()
    (out / "d3.lookm.h5").write_bytes(data[: len(data) // 2])
    p = run("compress", *sel, "--out-dir", out, "--json", check=4)
    assert [json.loads(line)["status"] for line in p.stdout.decode().splitlines()] == ["skipped", "skipped", "failed", "failed"]
    p = run("compress", *sel, "--out-dir", out, "--json", "--force", check=0)
    assert [json.loads(line)["status"] for line in p.stdout.decode().splitlines()] == ["skipped", "skipped", "ok", "ok"]
    run("inspect", out / "d2.lookm.h5", check=0)
    # A further run has nothing to do.
    p = run("compress", *sel, "--out-dir", out, "--json", check=0)
    assert {json.loads(line)["status"] for line in p.stdout.decode().splitlines()} == {"skipped"}


def test_other_settings_are_refused_unless_force(dumps, tmp_path):
    out = tmp_path / "out"
    run("compress", dumps[0], "--out-dir", out, check=0)
    p = run("compress", dumps[0], "--out-dir", out, "--budget", "0.5", check=4)
    assert b"--force" in p.stderr and b"made with" in p.stderr
    assert records(out)[-1]["status"] == "failed" and records(out)[-1]["exit_code"] == 4
    run("compress", dumps[0], "--out-dir", out, "--budget", "0.5", "--force", check=0)
    with h5py.File(out / "d0.lookm.h5") as f:
        assert json.loads(f.attrs["method"])["budget"] == 0.5


def test_a_failing_dump_does_not_stop_the_others(dumps, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    out = tmp_path / "out"
    p = run("compress", dumps[0], bad, dumps[1], tmp_path / "absent.h5", "--out-dir", out)
    assert p.returncode == 3, p.stderr
    by = {os.path.basename(r["dump"]): r for r in records(out)}
    assert by["d0.h5"]["status"] == by["d1.h5"]["status"] == "ok"
    assert by["bad.h5"]["status"] == "failed" and by["bad.h5"]["exit_code"] == 3 and "bad.h5" in by["bad.h5"]["error"]
    assert by["absent.h5"]["status"] == "failed"
    assert not (out / "bad.lookm.h5").exists()


def test_same_stem_is_a_usage_error_listing_both(dumps, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(dumps[0], other / "d0.h5")
    p = run("compress", dumps[0], other / "d0.h5", "--out-dir", tmp_path / "out", check=2)
    assert str(dumps[0]).encode() in p.stderr and str(other / "d0.h5").encode() in p.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--shard", "3/3"], b"0 <= I < N"),
    (["--shard", "x"], b"I/N"),
    (["-o", "x.h5"], b"-o"),
])
def test_batch_flag_errors(dumps, tmp_path, flags, message):
    p = run("compress", dumps[0], "--out-dir", tmp_path / "out", *flags, check=2)
    assert message in p.stderr


def test_manifest_paths_are_relative_to_the_manifest(dumps, tmp_path):
    (tmp_path / "data").mkdir()
    for p in dumps[:2]:
        shutil.copy(p, tmp_path / "data" / p.name)
    m = tmp_path / "data" / "list.txt"
    m.write_text("# relative\nd0.h5\n\n./d1.h5\n")
    out = tmp_path / "out"
    run("compress", "--manifest", m, "--out-dir", out, check=0, cwd="/")
    assert sorted(r["dump"] for r in records(out)) == [str(tmp_path / "data" / "d0.h5"), str(tmp_path / "data" / "d1.h5")]


def test_stale_temporaries_of_dead_runs_are_removed(dumps, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = out / f".d5.lookm.h5.lookm-tmp.{host}.{dead.pid}"
    live = out / f".d6.lookm.h5.lookm-tmp.{host}.{os.getpid()}"
    foreign = out / f".d5.lookm.h5.lookm-tmp.otherhost.{dead.pid}"
    for f in (stale, live, foreign):
        f.write_bytes(b"partial")
    run("compress", dumps[0], "--out-dir", out, check=0)
    assert not stale.exists() and live.exists() and foreign.exists()


def test_collect_reports_missing_failed_and_gone(dumps, tmp_path):
    m = manifest(tmp_path / "m.txt", dumps[:4])
    out = tmp_path / "out"
    run("compress", "--manifest", m, "--out-dir", out, "--shard", "0/2", check=0)   # d0, d2
    p = run("collect", out, "--manifest", m, check=1)
    err = p.stderr.decode()
    assert f"missing: {dumps[1]}" in err and f"missing: {dumps[3]}" in err and "2 of 4 dumps done" in err
    table = p.stdout.decode()
    assert "d0.h5" in table and "d2.h5" in table and "d1.h5" not in table

    run("compress", "--manifest", m, "--out-dir", out, "--shard", "1/2", check=0)
    p = run("collect", out, "--manifest", m, "--format", "json", check=0)
    c = json.loads(p.stdout)
    assert c["kind"] == "compress" and c["expected"] == 4 and c["problems"] == []
    assert [r["dump"] for r in c["records"]] == [str(d) for d in dumps[:4]]
    assert all(r["status"] == "ok" and 0 < r["kv_bytes_out"] < r["kv_bytes_in"] for r in c["records"])

    (out / "d2.lookm.h5").unlink()
    (out / "d3.lookm.h5").write_bytes(b"junk")
    p = run("collect", out, "--manifest", m, "--format", "csv", check=1)
    err = p.stderr.decode()
    assert f"output_missing: {dumps[2]}" in err and f"output_invalid: {dumps[3]}" in err
    assert p.stdout.decode().splitlines()[0].startswith("dump,status,")
    # The rerun redoes exactly those two (the junk, which lookm did not write, with --force);
    # collect is then satisfied.
    p = run("compress", "--manifest", m, "--out-dir", out, "--json", "--force", check=0)
    assert {os.path.basename(json.loads(line)["dump"]): json.loads(line)["status"] for line in p.stdout.decode().splitlines()} == \
        {"d0.h5": "skipped", "d1.h5": "skipped", "d2.h5": "ok", "d3.h5": "ok"}
    run("collect", out, "--manifest", m, check=0)


def test_collect_latest_record_counts(dumps, tmp_path):
    bad = tmp_path / "d9.h5"
    bad.write_bytes(b"junk")
    out = tmp_path / "out"
    run("compress", bad, "--out-dir", out, check=3)
    assert run("collect", out, check=1).stderr.count(b"failed") == 1
    shutil.copy(dumps[0], bad)
    run("compress", bad, "--out-dir", out, check=0)
    p = run("collect", out, "--format", "json", check=0)
    assert [r["status"] for r in json.loads(p.stdout)["records"]] == ["ok"]


def test_sweep_batch_and_collect(dumps, tmp_path):
    out = tmp_path / "sweeps"
    flags = ("--methods", "lookm,h2o", "--budgets", "0.2,0.5", "--jobs", "1")
    run("sweep", *dumps[:3], "--out-dir", out, *flags, check=0)
    for p in dumps[:3]:
        s = json.loads((out / f"{p.stem}.sweep.json").read_text())
        assert len(s["rows"]) == 4 and s["source"]["size"] == p.stat().st_size
    before = (out / "d0.sweep.json").stat().st_mtime_ns
    p = run("sweep", *dumps[:3], "--out-dir", out, *flags, "--json", check=0)
    assert {json.loads(line)["status"] for line in p.stdout.decode().splitlines()} == {"skipped"}
    assert (out / "d0.sweep.json").stat().st_mtime_ns == before
    p = run("collect", out, "--format", "json", check=0)
    c = json.loads(p.stdout)
    assert c["kind"] == "sweep" and len(c["sweep_rows"]) == 12
    assert {(os.path.basename(r["dump"]), r["method"], r["budget"]) for r in c["sweep_rows"]} == \
        {(f"d{i}.h5", m, b) for i in range(3) for m in ("lookm", "h2o") for b in (0.2, 0.5)}
    # The single-dump sweep of the same settings gives the same rows.
    single = json.loads(run("sweep", dumps[1], *flags, "--format", "json", check=0).stdout)
    assert [r for r in c["sweep_rows"] if r["dump"] == str(dumps[1])] == [dict(r, dump=str(dumps[1])) for r in single["rows"]]
    csv = run("collect", out, "--format", "csv", check=0).stdout.decode().splitlines()
    assert csv[0].startswith("dump,method,budget") and len(csv) == 13
    # Other settings: refused without --force, and collect then names the failure.
    run("sweep", dumps[0], "--out-dir", out, "--methods", "lookm", "--budgets", "0.2", check=4)
    assert b"failed" in run("collect", out, check=1).stderr
