"""Hydra launchers run a sweep's jobs in parallel processes: ``hydra/launcher=joblib`` (a process pool on one
machine) and ``hydra/launcher=submitit_local`` (each job its own subprocess through submitit, as a SLURM array
task would be). Real processes against the fake server.

Jobs that share a collection hash take turns on the rollout cache's collection lock: the first collects, the
others wait and reuse. The fake holds every completion request until some job logs that it is waiting, so the
two jobs certainly overlap; the request count then shows the collection happened once per hash.

``submitit_slurm`` cannot run here (no SLURM): the README's command and docs/scale.md's launcher preset run
against stand-in ``srun`` and ``sbatch`` commands, and the ``sbatch`` script submitit writes is checked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rollgen.rundir import read_jsonl
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI
from tests.test_readme import COMMANDS

pytestmark = pytest.mark.slow

TASKS, REPEATS = 5, 2
WAITING = re.compile(r"waiting for pid (\d+) on \S+, which is collecting the same rollouts")


def _wait_for_a_waiting_job(sweep: Path, proc: subprocess.Popen[str], timeout_s: float = 300) -> tuple[Path, int]:
    """Poll the jobs' logs until one says it waits for another's collection; (that job's dir, the holder's pid)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for log in sweep.glob("*/rollgen.log"):
            if m := WAITING.search(log.read_text(encoding="utf-8", errors="replace")):
                return log.parent, int(m.group(1))
        assert proc.poll() is None, f"the sweep exited ({proc.returncode}) before a job waited: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no job of {sweep} waited for another's collection in {timeout_s:g}s"
        time.sleep(0.05)  # polling a condition, with a deadline


def _run_sweep(tmp_path: Path, launcher: list[str], sweep: list[str]) -> tuple[FakeOpenAI, Path, Path, str]:
    """Run ``python -m rollgen -m`` with ``launcher`` over ``sweep``; the fake answers once a job waits."""
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", TASKS)
    hold = threading.Event()
    fake = FakeOpenAI(hold=hold)
    with serve_in_thread(fake) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rollgen", "-m", *launcher, *sweep, "policy=openai", f"policy.base_url={url}",
             f"server.data_path={tasks}", f"sampler.num_repeats={REPEATS}", "progress=false",
             "hydra.sweep.dir=sweep"],
            cwd=tmp_path, env={**os.environ, "ROLLGEN_CACHE_DIR": str(tmp_path / "cache")},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            waiter, holder_pid = _wait_for_a_waiting_job(tmp_path / "sweep", proc)
        finally:
            hold.set()
        out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    assert holder_pid != proc.pid, "the holder is a job process, not the launching one"
    return fake, tmp_path / "sweep", waiter, out


def _check_jobs(sweep: Path, n_jobs: int, collections: int) -> list[dict]:
    """Every job dir is whole; each collection hash was collected by one job and reused by the others."""
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert sorted(j["job"] for j in summary["jobs"]) == [str(i) for i in range(n_jobs)]
    reports = []
    for job in summary["jobs"]:
        run = sweep / job["job"]
        report = json.loads((run / "report.json").read_text())
        assert report["status"] == "complete", report
        ids = [r["id"] for r in read_jsonl(run / "rollouts.jsonl")]
        assert len(ids) == len(set(ids)) == TASKS * REPEATS
        rows = sum(1 for split in ("train", "validation") for _ in read_jsonl(run / "dataset" / f"{split}.jsonl"))
        assert rows == report["kept"]["dataset_rows"] == job["dataset_rows"] > 0
        assert (run / "export" / "jsonl" / "manifest.json").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
        assert not (run / ".rollgen.lock").exists()
        assert job["overrides"]["quality.min_reward_threshold"] in {"0.5", "0.8"}
        reports.append(report)
    by_hash: dict[str, list[dict]] = {}
    for report in reports:
        by_hash.setdefault(report["config_hash"], []).append(report)
    assert len(by_hash) == collections
    for same in by_hash.values():  # one job sent every request of its hash, the others reused all it collected
        calls = sorted(r["calls"]["model_calls"] for r in same)
        assert calls == [0] * (len(same) - 1) + [TASKS * REPEATS], calls
        assert sorted(r["resume"]["reused"] for r in same) == [0] + [TASKS * REPEATS] * (len(same) - 1)
    return reports


def test_joblib_runs_jobs_in_parallel_processes_and_collects_each_hash_once(tmp_path: Path) -> None:
    # 2 temperatures x 2 thresholds = 4 jobs on 2 workers; jobs 0 and 1 (and 2 and 3) share a collection hash.
    fake, sweep, waiter, out = _run_sweep(
        tmp_path, ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["sampler.responses_create_params.temperature=0.2,0.7", "quality.min_reward_threshold=0.5,0.8"])
    assert "Joblib.Parallel(n_jobs=2" in out
    _check_jobs(sweep, n_jobs=4, collections=2)
    assert fake.requests == 2 * TASKS * REPEATS
    assert "collection lock for hash" in (waiter / "rollgen.log").read_text()


def test_submitit_local_runs_each_job_as_a_subprocess(tmp_path: Path) -> None:
    fake, sweep, waiter, out = _run_sweep(tmp_path, ["hydra/launcher=submitit_local"],
                                          ["quality.min_reward_threshold=0.5,0.8"])
    assert "Submitit 'local' sweep output dir" in out
    _check_jobs(sweep, n_jobs=2, collections=1)
    assert fake.requests == TASKS * REPEATS
    logs = sorted(p.name for p in (sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, logs  # each job ran as its own submitit job


def _submit_to_stand_in_slurm(tmp_path: Path, args: list[str]) -> dict[str, str | list[str]]:
    """Run ``python -m rollgen ARGS`` with stand-ins for ``srun`` and ``sbatch`` (which records the script it is
    given and refuses it); return the script's ``#SBATCH`` options and its other lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "submitted.sh"
    (bin_dir / "srun").write_text("#!/bin/sh\necho 'srun: stand-in' >&2\nexit 1\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nfor last; do :; done\ncp "$last" {shlex.quote(str(record))}\n'
                                    "echo 'sbatch: error: no SLURM here (stand-in)' >&2\nexit 1\n")
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    p = subprocess.run([sys.executable, "-m", "rollgen", *args], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                                         "ROLLGEN_CACHE_DIR": str(tmp_path / "cache")})
    assert "no SLURM here (stand-in)" in p.stderr, p.stderr[-3000:]
    script = record.read_text()
    options = dict(line.removeprefix("#SBATCH --").split("=", 1) for line in script.splitlines()
                   if line.startswith("#SBATCH --"))
    return {**options, "lines": [line for line in script.splitlines() if line and not line.startswith("#")]}


def _n_jobs(args: list[str]) -> int:
    n = 1
    for arg in args:
        if "=" in arg and not arg.startswith("hydra.") and "," in arg.split("=", 1)[1]:
            n *= len(arg.split("=", 1)[1].split(","))
    return n


def test_submitit_slurm_submits_the_array_the_readme_command_asks_for(tmp_path: Path) -> None:
    [cmd] = [c for c in COMMANDS if "hydra/launcher=submitit_slurm" in c.text]
    _, words = cmd.split
    assert words[:4] == ["python", "-m", "rollgen", "-m"], cmd.text
    args = [a for a in words[3:] if not a.startswith(("cache_dir=", "hydra.sweep.dir="))]  # nothing under /shared here
    args += [f"cache_dir={tmp_path / 'cache'}", "hydra.sweep.dir=sweep"]
    asked = {k.removeprefix("hydra.launcher."): v for k, v in (a.split("=", 1) for a in args if "=" in a)
             if k.startswith("hydra.launcher.")}
    assert {"partition", "timeout_min", "array_parallelism"} <= set(asked), asked
    sbatch = _submit_to_stand_in_slurm(tmp_path, args)
    n = _n_jobs(args)
    assert sbatch["array"] == f"0-{n - 1}%{min(n, int(asked['array_parallelism']))}"
    assert sbatch["partition"] == asked["partition"] and sbatch["time"] == asked["timeout_min"]
    assert sbatch.get("cpus-per-task") == asked.get("cpus_per_task") and sbatch.get("gpus-per-node") == asked.get(
        "gpus_per_node")
    srun = [line for line in sbatch["lines"] if line.startswith("srun ")]
    assert len(srun) == 1 and srun[0].endswith(f"{sys.executable} -u -m submitit.core._submit "
                                               f"{tmp_path}/sweep/.submitit/%j")


def test_the_cluster_preset_in_docs_extends_submitit_slurm(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "scale.md").read_text()
    [preset] = re.findall(r"```yaml\n(.*?)```", docs, re.S)
    where = re.match(r"# (\S+) ; python -m rollgen --config-dir (\S+) -m hydra/launcher=(\w+)", preset)
    assert where, preset.splitlines()[0]
    path, conf, name = where.groups()
    assert path == f"{conf}/hydra/launcher/{name}.yaml"
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(preset)
    import yaml

    values = yaml.safe_load(preset)
    assert values["defaults"] == ["submitit_slurm"]
    sbatch = _submit_to_stand_in_slurm(tmp_path, ["--config-dir", conf, "-m", f"hydra/launcher={name}",
                                                  "quality.min_reward_threshold=0.6,0.8", "hydra.sweep.dir=sweep"])
    assert sbatch["array"] == f"0-1%{min(2, values['array_parallelism'])}"
    assert sbatch["partition"] == values["partition"] and sbatch["time"] == str(values["timeout_min"])
    assert sbatch["cpus-per-task"] == str(values["cpus_per_task"])
    lines = sbatch["lines"]
    assert lines.index(values["setup"][0]) < next(i for i, line in enumerate(lines) if line.startswith("srun "))
