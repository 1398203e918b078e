"""Batch mode on a real Slurm cluster (scripts/slurm/local-cluster.sh): a job array through
scripts/slurm/submit.sh, one task cancelled while it runs, a resubmission that redoes only what is
missing, and outputs identical to single-machine runs. Needs root (it starts munged, slurmctld and
slurmd); skipped, with that reason, otherwise."""
import json
import os
import subprocess
import time

import h5py
import hdf5plugin  # noqa: F401  (zstd filter for caches)
import numpy as np
import pytest

from conftest import ROOT, lookm_bin, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local Slurm cluster needs root (it starts system daemons)")

CLUSTER = ROOT / "scripts" / "slurm" / "local-cluster.sh"
SUBMIT = ROOT / "scripts" / "slurm" / "submit.sh"
# Large enough that a task (2 dumps) is still running when the test cancels it: ~1 s per dump.
SHAPE = ("--layers", "6", "--heads", "16", "--head-dim", "128", "--images", "4", "--image-tokens", "576", "--text-tokens", "256")


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, **kw).stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm-state")
    env = dict(os.environ, LOOKM_SLURM_DIR=str(state))
    p = subprocess.run([CLUSTER, "start"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    yield env
    p = subprocess.run([CLUSTER, "stop"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert not state.exists()


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm-dumps")
    paths = [d / f"dump{i}.h5" for i in range(8)]
    # Two at a time: synth is multi-threaded already.
    for pair in (paths[i:i + 2] for i in range(0, 8, 2)):
        procs = [subprocess.Popen([lookm_bin(), "synth", "-o", p, *SHAPE, "--seed", str(int(p.stem[4:])), "--threads", "1"],
                                  stderr=subprocess.DEVNULL) for p in pair]
        assert all(proc.wait() == 0 for proc in procs)
    return paths


def array_tasks(job):
    """{task id: state} of an array job's tasks still known to squeue."""
    out = sh("squeue", "-h", "-r", "-j", job, "-o", "%i %T", "-t", "all")
    return dict(line.split() for line in out.splitlines() if line.strip())


def wait_gone(*jobs, timeout=300):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(sh("squeue", "-h", "-j", j, "-o", "%i").strip() for j in jobs):
            return
        time.sleep(0.2)
    raise AssertionError(f"jobs {jobs} still queued after {timeout} s: {sh('squeue')}")


def job_state(job_id):
    out = sh("scontrol", "show", "job", job_id)
    return next(w.split("=", 1)[1] for w in out.split() if w.startswith("JobState="))


def submit(manifest, out, env):
    text = sh(SUBMIT, manifest, out, "--tasks", "4", "--cpus", "1", env=dict(env, LOOKM_BIN=lookm_bin()))
    ids = dict(line.split("=") for line in text.split())
    return ids["array_job"], ids["collect_job"]


def test_array_cancel_resubmit(cluster, dumps, tmp_path):
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("# 8 synth dumps\n" + "\n".join(map(str, dumps)) + "\n")
    out = tmp_path / "out"

    array, collect = submit(manifest, out, cluster)
    # Cancel one task while squeue shows it RUNNING.
    end = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < end:
        running = [t for t, s in array_tasks(array).items() if s == "RUNNING"]
        if running:
            victim = running[0]
            seen = sh("squeue", "-h", "-j", victim, "-o", "%T").strip()
            sh("scancel", victim)
        else:
            time.sleep(0.05)
    assert victim is not None, "no array task was ever RUNNING"
    assert seen == "RUNNING"
    wait_gone(array, collect)
    assert job_state(victim) == "CANCELLED"
    first = json.loads((out / "collect.json").read_text())
    missing = {p["dump"] for p in first["problems"] if p["kind"] == "missing"}
    shard = int(victim.split("_")[1])
    # The cancelled shard's dumps (positions p % 4 == shard) are the missing ones, and only those.
    assert missing and missing <= {str(d) for p, d in enumerate(dumps) if p % 4 == shard}, (victim, first["problems"])
    done_first = {r["dump"] for r in first["records"] if r["status"] == "ok"}
    assert len(done_first) == 8 - len(missing)

    # Resubmit the same command: only what is missing runs.
    array2, collect2 = submit(manifest, out, cluster)
    wait_gone(array2, collect2)
    assert job_state(collect2) == "COMPLETED"
    second = json.loads((out / "collect.json").read_text())
    assert second["problems"] == [] and second["expected"] == 8
    records = [json.loads(line) for f in (out / "results").glob("*.jsonl") for line in f.read_text().splitlines()]
    rerun = {r["dump"]: r["status"] for r in records if r["time"] > max(x["time"] for x in first["records"])}
    assert {d for d, s in rerun.items() if s == "ok"} == missing
    assert {d for d, s in rerun.items() if s == "skipped"} == done_first

    # Every output exactly once, valid, identical in K/V to a single-machine compress; no temporaries.
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    assert names == ["collect.json"] + sorted(f"dump{i}.lookm.h5" for i in range(8)), names
    assert not [p for p in out.rglob("*") if "lookm-tmp" in p.name]
    for d in dumps:
        single = tmp_path / f"{d.stem}.single.h5"
        run("compress", d, "-o", single, "--threads", "2", check=0)
        run("inspect", out / f"{d.stem}.lookm.h5", check=0)
        with h5py.File(out / f"{d.stem}.lookm.h5") as a, h5py.File(single) as b:
            assert a.attrs["method"] == b.attrs["method"]
            for i in range(6):
                for name in ("key", "value", "position", "merged", "slot_of"):
                    x, y = a[f"layers/{i}/{name}"][()], b[f"layers/{i}/{name}"][()]
                    assert x.dtype == y.dtype and np.array_equal(x.view(np.uint8), y.view(np.uint8)), (d, i, name)
        single.unlink()
