"""quality.overlap: the first pass (and the scan) in a child process that follows rollouts.jsonl during collection."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import rollgen
from rollgen import follow, jsonl
from rollgen.commands.curate import recurate
from rollgen.config import QualityConfig
from rollgen.follow import Follower, FollowerFailed, Job
from rollgen.scan import scan_rollouts
from tests.conftest import serve_in_thread, wait_for_lines, write_arith_tasks
from tests.fakes import FakeOpenAI

ROWS = [{"id": i, "text": "x" * (i * 37 % 300)} for i in range(200)]


def _pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at, k = [], 0, 0
    while at < len(data):
        n = sizes[k % len(sizes)]
        out.append(data[at : at + n])
        at, k = at + n, k + 1
    return out


@pytest.mark.parametrize("sizes", [[1], [7, 300, 2], [4096], [1 << 20]])
def test_follow_yields_exactly_what_lines_yields_while_the_file_grows_in_odd_pieces(tmp_path: Path, sizes: list[int]) -> None:
    data = b"".join(json.dumps(r).encode() + b"\n" + (b"\n" if r["id"] % 50 == 0 else b"") for r in ROWS)
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"")
    pieces = _pieces(data, sizes)
    asked = []

    def more() -> bool:  # the writer appends its next piece (often half a line) each time the reader catches up
        asked.append(1)
        if not pieces:
            return False
        with open(path, "ab") as f:
            f.write(pieces.pop(0))
        return True

    got = list(jsonl.follow(path, more, chunk=64))
    assert got == list(jsonl.lines(path))  # numbers, offsets and bytes; blank lines skipped
    assert [json.loads(x.raw) for x in got] == ROWS
    assert len(asked) >= len(_pieces(data, sizes))  # it really waited for every piece


def test_follow_leaves_out_a_torn_last_line_and_keeps_a_whole_one_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2')
    assert [json.loads(x.raw) for x in jsonl.follow(path, lambda: False)] == [{"a": 1}]
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    assert [(x.number, json.loads(x.raw)) for x in jsonl.follow(path, lambda: False)] == [(1, {"a": 1}), (2, {"a": 2})]


def test_auto_follows_only_large_runs_on_several_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert follow.wanted("auto", follow.AUTO_MIN_ROLLOUTS) and not follow.wanted("auto", follow.AUTO_MIN_ROLLOUTS - 1)
    assert follow.wanted(True, 1) and not follow.wanted(False, 10**9)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not follow.wanted("auto", 10**9)
    assert QualityConfig(overlap="true").overlap is True and QualityConfig().overlap == "auto"


def _job(tmp_path: Path, rollouts: Path) -> Job:
    return Job(QualityConfig(), rollouts, tmp_path / "curated.jsonl", tmp_path / "rejected.jsonl",
               tmp_path / "tasks.jsonl", 1.0)


def test_an_error_in_the_child_reaches_the_parent_as_follower_failed(tmp_path: Path) -> None:
    f = Follower(_job(tmp_path, tmp_path / "missing.jsonl"))
    f.start()
    try:
        with pytest.raises(FollowerFailed, match="missing.jsonl"):
            f.scan()
    finally:
        f.close()
    assert not (tmp_path / "curated.jsonl").exists()


def test_stopping_a_follower_before_curate_writes_nothing_and_reaps_it(tmp_path: Path) -> None:
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps({"id": f"t{i}#0", "task_id": f"t{i}", "status": "ok", "reward": 1.0,
                                            "completion": f"answer {i}"}) + "\n" for i in range(50)))
    f = Follower(_job(tmp_path, rollouts))
    f.start()
    proc = f._proc
    scan = f.scan()  # the first pass has ended: the child waits for "curate"
    assert scan.stats.rollouts == 50 and scan.stats.mean_reward == 1.0
    f.close()
    assert not proc.is_alive() and proc.exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollouts.jsonl"]


def _run(tmp_path: Path, url: str, tasks: Path, name: str, *extra: str) -> dict:
    cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
                           "sampler.num_repeats=2", "sampler.num_samples_in_parallel=8", *extra],
                          output_dir=str(tmp_path / name))
    return rollgen.run(cfg)


def _same_outputs(a: Path, b: Path, report_a: dict, report_b: dict) -> None:
    for name in ("curated.jsonl", "rejected.jsonl", "dataset/train.jsonl", "dataset/validation.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for key in ("collection", "funnel", "kept", "quality", "contamination", "dataset_details", "pass_at_k", "plots"):
        assert report_a.get(key) == report_b.get(key), key


def _whole_scan_curves(run: Path) -> dict:
    """pass@k / maj@k of the run's rollouts from one serial scan (as the report has them: k an int)."""
    return scan_rollouts(run / "rollouts.jsonl").curves.curves()


@pytest.mark.parametrize("extra", [("sampler=dpo",), ("sampler=ppo", "format=rl")], ids=["dpo", "rl"])
def test_a_followed_run_curates_exactly_as_the_serial_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           extra: tuple[str, ...]) -> None:
    answers: dict[str, list[bytes]] = {}  # each answer the parent received, pickled as it came
    ask = Follower._ask

    def spy(self: Follower, word: str | None, reply: str) -> object:
        value = ask(self, word, reply)
        answers.setdefault(reply, []).append(pickle.dumps(value))
        return value

    monkeypatch.setattr(Follower, "_ask", spy)
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 300)
    with serve_in_thread(FakeOpenAI(varied=True, correct_rate=0.6, latency_s=0.002)) as url:
        report = _run(tmp_path, url, tasks, "run", "quality.overlap=true", *extra)
    run = tmp_path / "run"
    assert list(answers) == ["scan", "curation", "rest", "plots"]  # each once, in this order
    assert all(len(a) == 1 for a in answers.values())
    assert pickle.loads(answers["curation"][0]).total == 600  # the child curated
    assert pickle.loads(answers["plots"][0]) == report["plots"] and len(report["plots"]) >= 5  # and drew the plots
    assert all((run / p).stat().st_size > 1000 for p in report["plots"])
    assert report["collection"]["rollouts"] == 600 and report["funnel"][0]["in"] == 600
    # The parent received the scan's counts, never its per-rollout part: the whole scan is many times bigger.
    scan, rest = pickle.loads(answers["scan"][0]), pickle.loads(answers["rest"][0])
    assert scan.partial and scan.curves is None and len(scan._index) == 0 and scan._tallies == ()
    whole = scan_rollouts(run / "rollouts.jsonl", pass_threshold=scan.pass_threshold)
    assert scan.stats == whole.stats and len(answers["scan"][0]) < 2000 < len(pickle.dumps(whole)) // 5
    if "format=rl" in extra:  # the RL rows' per-task tallies came with pass@k, after curation
        assert len(rest.index) == 300 and [len(t) for t in rest.tallies] == [300] * 4
    else:
        assert rest.index is None and rest.tallies == () and len(answers["rest"][0]) < 1000
    assert report["pass_at_k"] == _whole_scan_curves(run) == rest.pass_at_k
    serial = tmp_path / "serial"
    shutil.copytree(run, serial)
    again = recurate(serial)  # the serial stage on the same rollouts
    _same_outputs(run, serial, report, again)
    assert [p.name for p in run.rglob("*.tmp")] == []


def _kill(follower: Follower) -> int:
    pid = follower.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    follower._proc.join()
    return pid


@pytest.mark.parametrize("step", ["scan", "curate", "rest"])
def test_a_follower_that_dies_is_replaced_by_the_serial_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             step: str) -> None:
    """scan: the child dies before collection's end reaches it; curate: after it sent its counts, before it curated;
    rest: after its curation, before pass@k and the RL rows' tallies reached the parent (what the child had already
    written to the pipe is lost with it)."""
    killed = []
    original = getattr(Follower, step)

    def kill_then_ask(self: Follower) -> object:
        killed.append(_kill(self))
        if step == "rest":
            self._conn.close()  # its answer may already be in the pipe: drop it with the child
        return original(self)

    monkeypatch.setattr(Follower, step, kill_then_ask)
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 60)
    with serve_in_thread(FakeOpenAI(varied=True, correct_rate=0.5)) as url:
        report = _run(tmp_path, url, tasks, "run", "quality.overlap=true",
                      *(("sampler=ppo", "format=rl") if step == "rest" else ()))
    run = tmp_path / "run"
    assert killed and report["status"] == "complete" and report["collection"]["rollouts"] == 120
    assert report["pass_at_k"] == _whole_scan_curves(run) and len(report["plots"]) >= 5
    serial = tmp_path / "serial"
    shutil.copytree(run, serial)
    _same_outputs(run, serial, report, recurate(serial))


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie whose parent (the ended run) can no longer reap it


def test_a_signal_during_a_followed_collection_stops_the_follower_and_curates_nothing(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 200)
    with serve_in_thread(FakeOpenAI(hold_after=9)) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
             "sampler.num_samples_in_parallel=4", "quality.overlap=true", "hydra.run.dir=run"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        run = tmp_path / "run"
        wait_for_lines(proc, run / "rollgen.log", 2)  # the follower's line comes once the writer is open
        wait_for_lines(proc, run / "rollouts.jsonl", 9)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    log = (run / "rollgen.log").read_text()
    pid = int(re.search(r"follower pid (\d+)", log).group(1))  # type: ignore[union-attr]
    assert _gone(pid)
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "interrupted" and report["collection"]["rollouts"] == 9
    assert not (run / "curated.jsonl").exists() and not list(run.rglob("*.tmp"))


def test_task_codes_sent_to_another_process_still_find_every_id() -> None:
    """The child's scan reaches the parent pickled; ``hash(str)`` differs between processes, so the table is rebuilt."""
    from rollgen.taskcodes import TaskCodes

    ids = [f"task-{i}" for i in range(3000)] + ["ünïcode", ""]
    data = pickle.dumps(TaskCodes(ids))
    code = ("import pickle, sys; t = pickle.loads(sys.stdin.buffer.read()); "
            "print(len(t), [t.get(x) for x in ('task-0', 'task-2999', 'ünïcode', '', 'missing')])")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.decode()
    assert out.strip() == "3002 [0, 2999, 3000, 3001, -1]"
