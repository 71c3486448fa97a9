"""The run dir's life from the command line: one process at a time, nothing touched by a failed run, no stub
dirs, ``resume=`` in place, and a signal after collection still leaves a report. Real subprocesses; every wait
is for a condition (a process exit, a file on disk), never a fixed time."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rollgen.rundir import cannot_create, read_jsonl
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "ROLLGEN_CACHE_DIR": str(tmp_path / "cache"), **extra}


def _args(url: str, tasks: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
            "progress=false", "policy.retry_backoff_s=0.001", *extra]


def _rollgen(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rollgen", *args], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until ``path`` exists (the process reached that point); fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_two_identical_commands_on_one_run_dir(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 30)
    hold = threading.Event()
    fake = FakeOpenAI(hold=hold, correct_rate=0.5, seed=4)
    with serve_in_thread(fake) as url:
        args = _args(url, tasks, "sampler=dpo", "hydra.run.dir=run")
        procs = [subprocess.Popen(args, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        ended: queue.Queue[tuple[subprocess.Popen[str], str]] = queue.Queue()
        for proc in procs:
            threading.Thread(target=lambda p=proc: ended.put((p, p.communicate()[1])), daemon=True).start()
        # The winner's requests wait on `hold`, so it holds the run dir until we let it go: the other ends first.
        loser, loser_err = ended.get(timeout=300)
        hold.set()
        winner, winner_err = ended.get(timeout=300)
    assert loser.returncode == 2, loser_err
    assert f"run is in use by another rollgen process (pid {winner.pid})" in loser_err.replace(str(tmp_path) + "/", "")
    assert "Traceback" not in loser_err and len(loser_err.strip().splitlines()) == 1
    assert winner.returncode == 0, winner_err
    run = tmp_path / "run"
    ids = [r["id"] for r in read_jsonl(run / "rollouts.jsonl")]
    assert len(ids) == len(set(ids)) == 60 and fake.requests == 60
    report = json.loads((run / "report.json").read_text())
    rows = sum(1 for s in ("train", "validation") for _ in read_jsonl(run / "dataset" / f"{s}.jsonl"))
    assert report["kept"]["dataset_rows"] == rows > 0 and report["collection"]["rollouts"] == 60
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == ".rollgen.lock"]


def test_a_run_dir_made_by_another_process_meanwhile_can_be_written(tmp_path: Path, monkeypatch) -> None:
    # Two rollgen commands on one new run dir: the other one's mkdir lands between our check and ours.
    real_mkdir = Path.mkdir

    def raced(self: Path, *args, **kwargs) -> None:
        real_mkdir(self)  # the other process
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", raced)
    assert cannot_create(tmp_path / "run") is None
    monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: (self.write_text(""), real_mkdir(self, *a, **k)))
    assert cannot_create(tmp_path / "other") == "File exists"  # a file there instead is still a problem


FAILURES = {  # what goes wrong -> (overrides, expected exit code, expected message)
    "empty task file": (["server.data_path={empty}"], 2, "empty.jsonl"),
    "no answers": (["server.data_path={unanswered}"], 2, "has no 'answer'"),
    "dead endpoint": (["policy.base_url=http://127.0.0.1:{dead}/v1"], 3, "no answer from http://127.0.0.1:"),
    "bad config": (["sampler.num_repeats=0"], 2, "sampler.num_repeats"),
}


def test_a_failed_run_leaves_the_kept_run_dir_untouched_and_no_stub_dirs(tmp_path: Path) -> None:
    import socket

    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 8)
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "unanswered.jsonl").write_text('{"question": "Calculate 1 + 1."}\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with serve_in_thread(FakeOpenAI()) as url:
        ok = _rollgen(tmp_path, *_args(url, tasks, "hydra.run.dir=kept")[3:])
        assert ok.returncode == 0, ok.stderr
        kept = tmp_path / "kept"
        before = _snapshot(kept)
        assert {".hydra/config.yaml", ".hydra/overrides.yaml", "run_config.json", "tasks.jsonl"} <= set(before)
        for name, (overrides, code, message) in FAILURES.items():
            extra = [o.format(empty=tmp_path / "empty.jsonl", unanswered=tmp_path / "unanswered.jsonl", dead=dead)
                     for o in overrides]
            for run_dir in (["hydra.run.dir=kept"], []):  # a kept run dir, and Hydra's default outputs/<date>/<time>
                p = _rollgen(tmp_path, *_args(url, tasks, *extra, *run_dir)[3:])
                assert p.returncode == code and message in p.stderr and "Traceback" not in p.stderr, (name, p.stderr)
                assert _snapshot(kept) == before, name
                assert not (tmp_path / "outputs").exists(), name  # no stub outputs/<date>/<time>/
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_sweep_stopped_by_a_failing_job_leaves_no_stub_dirs(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 4)
    (tmp_path / "empty.jsonl").write_text("")
    with serve_in_thread(FakeOpenAI()) as url:
        # The first job fails before it starts: the sweep stops, and leaves nothing behind.
        p = _rollgen(tmp_path, "-m", *_args(url, tasks, f"server.data_path={tmp_path / 'empty.jsonl'},{tasks}")[3:])
        assert p.returncode == 2 and "the file is empty" in p.stderr, p.stderr
        assert not (tmp_path / "multirun").exists()
        # The second job fails: the first job's run is kept whole, the failed job leaves no dir.
        p = _rollgen(tmp_path, "-m", *_args(url, tasks, f"server.data_path={tasks},{tmp_path / 'empty.jsonl'}")[3:])
    assert p.returncode == 2 and "the file is empty" in p.stderr, p.stderr
    [sweep] = (tmp_path / "multirun").glob("*/*")
    assert sorted(x.name for x in sweep.iterdir()) == ["0", "multirun.yaml"]
    assert (sweep / "0" / "report.json").is_file() and (sweep / "0" / "rollouts.jsonl").is_file()


def test_resume_from_the_command_line_continues_in_place(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 20)
    fake = FakeOpenAI(error_rate=0.5, seed=2)
    with serve_in_thread(fake) as url:
        first = _rollgen(tmp_path, *_args(url, tasks, "policy.max_retries=0", "hydra.run.dir=run")[3:])
        assert first.returncode == 0, first.stderr
        failed = json.loads((tmp_path / "run" / "report.json").read_text())["collection"]["by_status"]["error"]
        assert failed > 0
        fake.error_rate, sent = 0.0, fake.requests
        p = _rollgen(tmp_path, "resume=run", "progress=false")
    assert p.returncode == 0, p.stderr
    assert "GlobalHydra" not in p.stderr and "Traceback" not in p.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["resume"]["retried"] == failed and report["collection"]["by_status"] == {"ok": 20}
    assert fake.requests - sent == failed == report["calls"]["model_calls"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run", "tasks.jsonl"]  # no stray run dir
    assert "reusing" in (tmp_path / "run" / "rollgen.log").read_text()
    missing = _rollgen(tmp_path, "resume=nowhere")
    assert missing.returncode == 2 and "nowhere: not a rollgen run directory" in missing.stderr


SLOW_EXPORT = '''
import os, time
from pathlib import Path
from pydantic import BaseModel
from rollgen.integrations import Integration

class SlowExport(Integration):
    """Stands for a long export: says it started, then waits until released."""

    class Params(BaseModel):
        pass

    def export(self, dataset_dir, out_dir, fmt):
        Path(os.environ["EXPORT_STARTED"]).touch()
        while not Path(os.environ["EXPORT_RELEASE"]).exists():
            time.sleep(0.01)
        (out_dir / "done.txt").parent.mkdir(parents=True, exist_ok=True)
        (out_dir / "done.txt").write_text("exported")
        return {"files": {"done.txt": None}, "skipped": []}
'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_after_collection_writes_an_interrupted_report(tmp_path: Path, sig: signal.Signals) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 10)
    (tmp_path / "slow_export.py").write_text(SLOW_EXPORT)
    (tmp_path / "conf" / "integration").mkdir(parents=True)  # a training repo's own integration
    (tmp_path / "conf" / "integration" / "slow.yaml").write_text("slow:\n  _target_: slow_export.SlowExport\n")
    started, release = tmp_path / "export.started", tmp_path / "export.release"
    env = _env(tmp_path, EXPORT_STARTED=str(started), EXPORT_RELEASE=str(release))
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        args = _args(url, tasks, "hydra.run.dir=run", "integration=slow")
        args[3:3] = ["--config-dir", "conf"]
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(started, proc)  # collection, quality and format are done; the export is running
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "interrupted" in err and "during export" in err and "Traceback" not in err
        run = tmp_path / "run"
        report = json.loads((run / "report.json").read_text())
        assert report["status"] == "interrupted" and "during export" in report["reason"]
        assert report["collection"]["by_status"] == {"ok": 10} and fake.requests == 10
        assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == ".rollgen.lock"]
        release.touch()
        again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert fake.requests == 10  # the same command finishes the run on the kept rollouts
    assert json.loads((tmp_path / "run" / "report.json").read_text())["status"] == "complete"
