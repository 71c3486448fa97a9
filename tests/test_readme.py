"""Every command in README.md runs as a user runs it (a subprocess) against the fake OpenAI server.

The README's fenced blocks are read: ``$ command`` lines (the output lines shown after one must keep their
shape: the same lines in the same order, numbers, paths and timings aside), plain command lines (continued
with ``\\``, chained with ``&&``, with ``VAR=value`` prefixes) and Python blocks. Each runs with the policy
pointed at the fake and the README's placeholders (``outputs/<date>/<time>``, ``RUN_DIR``, dated run dirs,
``my_pairs.jsonl``, ``aime.jsonl``) replaced by run dirs and files made here first, from the README's own
commands. Blocks that only show output are reproduced and compared too (``ILLUSTRATIONS``). A command this
machine cannot run is in ``NOT_RUN`` with the reason; a README command that is neither run nor listed fails
the test, so the docs cannot drift from the code.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rollgen.commands import SUBCOMMANDS
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# README commands not run here, each with the reason (the exact command text, comments and spacing aside).
NOT_RUN = {
    "pip install -e '.[local]'": "installs rollgen and its model; this test runs in the environment it made",
    "pip install -e '.[dev]'": "installs the test tools; this test runs in the environment it made",
    "pytest": "the test suite itself, this file included",
    "MODEL_PATH=Qwen/Qwen2.5-0.5B-Instruct NGPUS=8 bash outputs/<date>/<time>/export/verl/train.sh":
        "trains a model on 8 GPUs; tests/test_integration_verl.py runs train.sh with the launcher stubbed",
    "python -m rollgen -m hydra/launcher=submitit_slurm hydra.launcher.partition=cpu hydra.launcher.timeout_min=240 "
    "hydra.launcher.cpus_per_task=8 hydra.launcher.array_parallelism=16 cache_dir=/shared/rollgen-cache "
    "policy=openai policy.base_url=http://vllm-node:8000/v1 sampler.responses_create_params.temperature=0.2,0.5,0.7":
        "submits a SLURM job array; tests/test_launchers.py runs it with stand-ins for srun and sbatch and checks "
        "the sbatch script",
    "ROLLGEN_SERVE_TOKEN=my-long-secret-token rollgen serve server=math serve.port=8765":
        "serves until stopped; tests/test_serve.py runs `python -m rollgen serve` as a process and stops it with SIGTERM",
    "curl -s -H \"Authorization: Bearer $ROLLGEN_SERVE_TOKEN\" http://127.0.0.1:8765/verify -d '{\"task\": "
    "{\"question\": \"What is 7*6?\", \"answer\": \"42\"}, \"completion\": \"7*6 = \\\\boxed{42}\"}'":
        "needs the server above; tests/test_serve.py sends the same request over HTTP",
}

QUICKSTART = "python -m rollgen server=math sampler=dpo"
RESPONSES = ("OPENAI_API_KEY=sk-... python -m rollgen policy=openai policy.base_url=https://api.openai.com/v1 "
             "policy.model=gpt-4o-mini policy.api=responses")
PPO = "python -m rollgen sampler=ppo integration=[trl,verl,openrlhf,nemo_rl]"
# A run dir the README names -> the README command whose run stands in for it.
RUN_DIRS = {
    "outputs/<date>/<time>": QUICKSTART,
    "RUN_DIR": QUICKSTART,
    "outputs/2026-11-30/01-31-15": QUICKSTART,  # the quickstart's own, in the run dir listing
    "outputs/2026-11-25/15-40-12": RESPONSES,  # an SFT run (the default sampler): a reward bar leaves rows
    "outputs/2026-11-25/10-00-00": QUICKSTART,
    "outputs/2026-11-25/11-00-00": PPO,
}
RUN_DIR_MENTION = re.compile(r"outputs/(?:<date>/<time>|\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d)|\bRUN_DIR\b")
# Sizes that would only make the test slow; the command's shape is what is checked, not its throughput.
SMALLER = {"server.size=2000": ["server.size=20"], "server.size=1000": ["server.size=200"],
           "+sweep=optuna_dpo": ["+sweep=optuna_dpo", "hydra.sweeper.n_trials=2"]}
# The exit status of a command that does not succeed (by design: the README shows why); 0 for the others.
EXIT = {
    "python -m rollgen sampler.responses_create_params.temperature=hot": 2,
    "python -m rollgen sampler.tempreature=0.3": 2,
    "python -m rollgen validate verifier=exact server.size=200": 1,
    "rollgen dataset validate my_pairs.jsonl --format dpo": 1,
}
ENDPOINT = "http://localhost:8000/v1"  # in Python blocks: replaced by the fake's URL
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PROGRAMS = {"python", "rollgen", "pip", "pytest", "bash", "uv", "curl"}


# ---- reading the README ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # README line of the block's first content line
    lang: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    line: int
    text: str  # as written: continuation lines joined, the trailing comment dropped, spaces collapsed
    shown: tuple[str, ...] = ()  # the output the README shows after it (``$`` blocks)
    python: bool = False  # a Python block, run with ``python -c``

    @property
    def split(self) -> tuple[dict[str, str], list[str]]:
        """(environment assignments in front, the command's words)."""
        tokens, env = shlex.split(self.text), {}
        while tokens and ENV_ASSIGNMENT.match(tokens[0]):
            key, _, value = tokens.pop(0).partition("=")
            env[key] = value
        return env, tokens

    @property
    def id(self) -> str:
        return f"line{self.line}:{'python' if self.python else self.text[:70]}"


def readme_blocks(text: str) -> list[Block]:
    blocks, lang, start, body = [], None, 0, []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang, start, body = line[3:].strip(), n + 1, []
            else:
                blocks.append(Block(start, lang, tuple(body)))
                lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"README.md:{start - 1}: a code block is never closed"
    return blocks


def _logical_lines(block: Block) -> list[tuple[int, str]]:
    """The block's lines with ``\\`` continuations joined, each with its README line number."""
    out: list[tuple[int, str]] = []
    joining = False
    for i, line in enumerate(block.lines):
        if joining:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        else:
            out.append((block.line + i, line))
        joining = line.rstrip().endswith("\\")
        if joining:
            out[-1] = (out[-1][0], out[-1][1].rstrip()[:-1])
    return out


def _commands_of(line: int, text: str, shown: tuple[str, ...] = ()) -> list[Command]:
    text = re.sub(r"\s#(?:\s.*)?$", "", text)  # a trailing comment
    parts = [" ".join(p.split()) for p in text.split("&&")]
    return [Command(line, p, shown if i == len(parts) - 1 else ()) for i, p in enumerate(parts)]


def _is_command(text: str) -> bool:
    words = [w for w in text.split() if not ENV_ASSIGNMENT.match(w)]
    return bool(words) and words[0] in PROGRAMS


def readme_commands(blocks: list[Block]) -> tuple[list[Command], list[Block]]:
    """Every command of the README's blocks, and the blocks that hold no command (output shown on its own)."""
    commands: list[Command] = []
    others: list[Block] = []
    for block in blocks:
        lines = _logical_lines(block)
        if block.lang == "python":
            commands.append(Command(block.line, "\n".join(block.lines), python=True))
        elif any(text.startswith("$ ") for _, text in lines):
            for i, (n, text) in enumerate(lines):
                if text.startswith("$ "):
                    shown = []
                    for _, after in lines[i + 1:]:
                        if after.startswith("$ "):
                            break
                        if after.strip():
                            shown.append(after)
                    commands += _commands_of(n, text[2:], tuple(shown))
                else:
                    assert i > 0, f"README.md:{n}: output before the first $ command"
        elif lines and _is_command(lines[0][1]):
            for n, text in lines:
                assert _is_command(text), f"README.md:{n}: not a command in a block of commands: {text!r}"
                commands += _commands_of(n, text)
        else:
            others.append(block)
    return commands, others


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
COMMANDS, OTHER_BLOCKS = readme_commands(BLOCKS)
RUN = [c for c in COMMANDS if c.text not in NOT_RUN]


# ---- output shapes ---------------------------------------------------------------------------------

LOG_TIME = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]")
TQDM_RATE = re.compile(r"(?:\d+(?:\.\d+)?|\?)(?:s/rollout|rollout/s)")
PATH = re.compile(r"/?(?:[\w.~<>*-]+/)+[\w.<>*-]*")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
FUNNEL_ROW = re.compile(r"^(\w+ N -> N -N)\b.*$")  # a funnel row; its reasons depend on the model's answers


def shape(line: str) -> str:
    """A line with what may differ between runs masked: times, rates, paths, numbers, funnel reasons."""
    line = LOG_TIME.sub("[TIME]", line.strip())
    line = TQDM_RATE.sub("RATE", line)
    line = PATH.sub(lambda m: "PATH" if re.search(r"[A-Za-z<]", m.group()) else m.group(), line)
    line = re.sub(r"PATH(?:, PATH)+", "PATH", line)  # a list of files
    line = NUMBER.sub("N", line)
    return FUNNEL_ROW.sub(r"\1", " ".join(line.split()))


def screen(output: str) -> list[str]:
    """The lines a terminal would show: the last of each line's carriage-return updates (tqdm), no blanks."""
    lines = [line.rstrip("\r").split("\r")[-1] for line in output.split("\n")]
    return [line for line in lines if line.strip()]


def same_shape(shown: str, actual: str) -> bool:
    """Two lines of one shape; ``...`` in the shown line stands for any text."""
    return re.fullmatch(".*?".join(map(re.escape, shape(shown).split("..."))), shape(actual)) is not None


def fits(shown: list[str], actual: list[str]) -> bool:
    """``actual`` has ``shown``'s shape line for line; a shown ``...`` line stands for any number of lines."""
    if not shown:
        return not actual
    if shown[0].strip() == "...":
        return any(fits(shown[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and same_shape(shown[0], actual[0]) and fits(shown[1:], actual[1:])


def assert_fits(shown: list[str], actual: list[str], where: str) -> None:
    assert fits(shown, actual), (f"{where}: the README shows\n  " + "\n  ".join(map(shape, shown))
                                 + "\nbut the command printed\n  " + "\n  ".join(map(shape, actual)))


def funnel(output: str) -> dict[str, int]:
    """Rollouts each filter dropped, from a printed funnel."""
    rows = (re.match(r"^\s+(\w+)\s+(\d+) -> (\d+)\s+-(\d+)", line) for line in screen(output))
    return {m.group(1): int(m.group(4)) for m in rows if m}


# ---- running --------------------------------------------------------------------------------------


@dataclass
class Result:
    argv: list[str]
    cwd: Path
    returncode: int
    output: str  # stdout and stderr as they interleaved
    made: list[Path] = field(default_factory=list)  # run dirs the command made


class Workspace:
    """Runs README commands once each, in their own directories, and hands out the run dirs they made.

    The commands the session selected start at once, two at a time (``prefetch``), each test waiting for
    its own; a command that needs another's run dir waits for it, or runs it itself if it has not started.
    """

    def __init__(self, root: Path, workers: int = 2):
        self.root = root
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="readme")
        self.futures: dict[str, Future[Result]] = {}
        self.lock = threading.Lock()

    def run_dir(self, mention: str) -> Path:
        assert mention in RUN_DIRS, f"the README names run dir {mention!r}: add it to RUN_DIRS in {__file__}"
        source = next(c for c in COMMANDS if c.text == RUN_DIRS[mention])
        made = self.result(source).made
        assert len(made) == 1, f"{source.text!r} made {made}, not one run dir"
        return made[0]

    def result(self, cmd: Command) -> Result:
        return self.once(cmd.text, lambda: self._run(cmd))

    def once(self, key: str, work: Callable[[], Result]) -> Result:
        """``work()``'s result, computed once; in a worker, work not yet started runs here (no worker waits on a queue)."""
        in_worker = threading.current_thread().name.startswith("readme")
        with self.lock:
            future = self.futures.get(key)
            mine = future is None or (in_worker and future.cancel())
            if mine:
                future = self.futures[key] = Future()
        assert future is not None
        if mine:
            try:
                future.set_result(work())
            except BaseException as e:
                future.set_exception(e)
        return future.result()

    def prefetch(self, keys: list[tuple[str, Callable[[], Result]]]) -> None:
        with self.lock:
            for key, work in keys:
                if key not in self.futures:
                    self.futures[key] = self.pool.submit(work)

    def _run(self, cmd: Command) -> Result:
        cwd = self.root / f"cmd{COMMANDS.index(cmd)}-line{cmd.line}"
        cwd.mkdir()
        if cmd.python:
            code = RUN_DIR_MENTION.sub(lambda m: str(self.run_dir(m.group())), cmd.text)
            return self.execute(lambda url: [sys.executable, "-c", code.replace(ENDPOINT, url)], cwd)
        prefix, words = cmd.split
        return self.execute(lambda url: self._argv(words, url, cwd), cwd, env=prefix)

    def execute(self, argv: Callable[[str], list[str]], cwd: Path, fake: FakeOpenAI | None = None,
                env: dict[str, str] | None = None) -> Result:
        """Run ``argv(fake's URL)`` in ``cwd`` with its own rollout cache; note the run dirs it made."""
        full = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}  # no real key reaches the fake
        full.update(ROLLGEN_CACHE_DIR=str(cwd / "cache"), PYTHONUNBUFFERED="1", HF_HOME=str(self.root / "hf"),
                    PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
                    **(env or {}))
        with serve_in_thread(fake or FakeOpenAI(alternate=True)) as url:
            args = argv(url)
            p = subprocess.run(args, cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        made = sorted(d for d in [*cwd.glob("outputs/[0-9]*/*"), *cwd.glob("multirun/[0-9]*/*")] if d.is_dir())
        output = p.stdout.decode("utf-8", errors="replace")  # not text=True: that turns tqdm's \r into \n
        return Result(args, cwd, p.returncode, output, made)

    def _argv(self, words: list[str], url: str, cwd: Path) -> list[str]:
        if words[:3] == ["python", "-m", "rollgen"]:
            args = words[3:]
        elif words[0] == "rollgen":  # the console script is `python -m rollgen` (tests/test_packaging.py checks it)
            args = words[1:]
        else:
            raise AssertionError(f"{shlex.join(words)!r} is not a rollgen command: run it here or add it to NOT_RUN")
        args = [a for arg in args for a in SMALLER.get(arg, [arg])]
        copies = itertools.count(1) if args[:1] == ["curate"] else None  # curate rewrites its run dir: a copy
        args = [self._placeholders(arg, cwd, copies) for arg in args]
        if not args or args[0] not in SUBCOMMANDS:  # a run: the policy is the fake
            assert all(a == "policy=openai" for a in args if a.startswith("policy=")), args
            args = [a for a in args if not a.startswith("policy.base_url=")]
            args += [*(["policy=openai"] if "policy=openai" not in args else []), f"policy.base_url={url}"]
        return [sys.executable, "-m", "rollgen", *args]

    def _placeholders(self, arg: str, cwd: Path, copies: Iterator[int] | None) -> str:
        """Run dirs (fresh copies when ``copies`` numbers them) and the input files a command names."""
        def run_dir(m: re.Match) -> str:
            source = self.run_dir(m.group())
            return str(source if copies is None else shutil.copytree(source, cwd / f"run{next(copies)}"))

        arg = RUN_DIR_MENTION.sub(run_dir, arg)
        if "my_pairs.jsonl" in arg:
            write_pairs(cwd / "my_pairs.jsonl")
        if "aime.jsonl" in arg:  # a benchmark that shares one task with the run: decontamination has work to do
            task = json.loads((self.run_dir("RUN_DIR") / "tasks.jsonl").read_text().splitlines()[0])
            question = next(m["content"] for m in task["messages"] if m["role"] == "user")
            (cwd / "aime.jsonl").write_text(json.dumps({"question": question, "answer": task["answer"]}) + "\n")
        return arg


def write_pairs(path: Path) -> None:
    """The README's ``my_pairs.jsonl``: 120 DPO rows, chosen = rejected on line 4, an assistant turn first on 7."""
    rows = []
    for i in range(120):
        row = {"prompt": [{"role": "user", "content": f"Calculate {i} + 1."}],
               "chosen": [{"role": "assistant", "content": f"\\boxed{{{i + 1}}}"}],
               "rejected": [{"role": "assistant", "content": f"\\boxed{{{i + 2}}}"}]}
        if i == 3:
            row["rejected"] = row["chosen"]
        if i == 6:
            row["prompt"].insert(0, {"role": "assistant", "content": "Hello."})
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")


def needs(text: str) -> list[Command]:
    """The README commands whose run dirs ``text`` names."""
    return [c for c in COMMANDS if c.text in {RUN_DIRS.get(m) for m in RUN_DIR_MENTION.findall(text)}]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    """Starts the selected tests' commands at once, the run dirs others need first; stops what is left at the end."""
    ws = Workspace(tmp_path_factory.mktemp("readme"))
    params = [item.callspec.params for item in request.session.items
              if item.module is sys.modules[__name__] and hasattr(item, "callspec")]
    cmds = [p["cmd"] for p in params if "cmd" in p]
    blocks = [p["block"] for p in params if "block" in p]
    first = [c for x in [*(c.text for c in cmds), *(" ".join(b.lines) for b in blocks)] for c in needs(x)]
    ws.prefetch([(c.text, lambda c=c: ws._run(c)) for c in [*first, *cmds]])
    ws.prefetch([(f"block{b.line}", lambda b=b: illustration(b)._run(ws, b)) for b in blocks
                 if illustration(b).overrides is not None])
    yield ws
    ws.pool.shutdown(cancel_futures=True)


# ---- the tests ------------------------------------------------------------------------------------


def test_every_command_is_run_or_listed() -> None:
    """The parser finds the README's commands; each is run by this file, or listed in NOT_RUN with a reason."""
    texts = [c.text for c in COMMANDS]
    assert QUICKSTART in texts and PPO in texts and RESPONSES in texts, texts
    assert [t for t in NOT_RUN if t not in texts] == [], "NOT_RUN lists commands the README no longer has"
    assert [t for t in EXIT if t not in texts] == [], "EXIT lists commands the README no longer has"
    for c in RUN:
        _, words = c.split
        assert c.python or words[:3] == ["python", "-m", "rollgen"] or words[0] == "rollgen", \
            f"README.md:{c.line}: {c.text!r} is neither run by {Path(__file__).name} nor listed in NOT_RUN"
    assert {kind(b) for b in OTHER_BLOCKS} == set(ILLUSTRATIONS), \
        "a README block without commands that ILLUSTRATIONS does not check (or an entry for one gone)"


def test_shapes_mask_what_may_differ_and_nothing_else() -> None:
    readme = "Collecting rollouts: 100%|██████████| 40/40 [00:57<00:00,  1.44s/rollout, reward=0.125 fail=0]"
    actual = "Collecting rollouts: 100%|██████████| 40/40 [00:00<00:00, 202.43rollout/s, reward=1.000 fail=0]"
    assert shape(readme) == shape(actual)
    assert shape("  exact_dedup  80 -> 36  -44  exact duplicate 44") == shape("  exact_dedup 40 -> 40 -0")
    assert shape("ok: 20 dpo rows in outputs/<date>/<time>/dataset/train.jsonl, outputs/<date>/<time>/dataset/"
                 "validation.jsonl") == shape("ok: 9 dpo rows in /tmp/x/outputs/2026-01-01/00-00-00/dataset/train.jsonl")
    assert shape("rollgen validate: PASS: 1000 tasks") != shape("rollgen validate: FAIL: 1000 tasks")
    assert shape("  status 40 -> 40 -0") != shape("  reward 40 -> 40 -0")
    assert fits(["a 1", "...", "c"], ["a 2", "b", "b", "c"]) and not fits(["a", "c"], ["a", "b", "c"])
    assert same_shape("2 shown: 0 with (...), 1 twice", 'N shown: 7 with ("x y."), 3 twice')
    assert not same_shape("2 shown: 0 with (...), 1 twice", "2 shown: 0 with (x), 1 once")
    assert screen("x\r\ry 1\rz 2\n\nw\n") == ["z 2", "w"]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", RUN, ids=lambda c: c.id)
def test_readme_command(cmd: Command, workspace: Workspace) -> None:
    r = workspace.result(cmd)
    where = f"README.md:{cmd.line}: {cmd.text if not cmd.python else 'python block'}"
    lines = screen(r.output)
    assert r.returncode == EXIT.get(cmd.text, 0), f"{where}: exit {r.returncode}\n{r.output[-3000:]}"
    assert not [ln for ln in lines if ln.startswith(("Traceback", "Exception ignored"))], f"{where}\n{r.output}"
    if cmd.shown:
        assert_fits(list(cmd.shown), lines, where)
    args = r.argv[3:] if not cmd.python else []
    subcommand = args[0] if args and args[0] in SUBCOMMANDS else None
    if "rollgen.run(" in cmd.text if cmd.python else subcommand is None and r.returncode == 0:  # a run or a sweep
        assert r.made, f"{where}: no run dir\n{r.output[-3000:]}"
        for d in r.made:
            if (d / "sweep_summary.json").is_file():
                jobs = json.loads((d / "sweep_summary.json").read_text())["jobs"]
                assert jobs and all(j["status"] == "complete" for j in jobs), f"{where}: {jobs}"
            else:
                assert json.loads((d / "report.json").read_text())["status"] == "complete", where
    if subcommand == "curate":  # every filter the command names is in the funnel it printed
        named = {m.group(1) for a in args for m in [re.match(r"quality\.filters\.(\w+)\.", a)] if m}
        for a in args:
            if a.startswith("quality.chain="):
                named |= set(a.split("=", 1)[1].strip("[]").split(","))
        dropped = funnel(r.output)
        assert named <= set(dropped), f"{where}: sets {sorted(named - set(dropped))}, not in the funnel {dropped}"
        if "decontaminate" in named:
            assert dropped["decontaminate"] > 0, f"{where}: the eval file shares a task with the run: {dropped}"


# ---- blocks that show output without a command ----------------------------------------------------


def _run_tree(block: Block, run: Path) -> None:
    """The run dir listing: every entry it names is in the quickstart's run dir, and every entry there is named."""
    named = []
    for line in block.lines[1:]:
        for word in line.split():
            if not re.fullmatch(r"[\w.<>*/-]+", word) or not ("." in word or "/" in word):
                break
            named.append(word.replace("<integration>", "jsonl"))  # the default integration
    for name in named:
        if "<hash>" not in name:  # rollouts of another collection: only after one (tests/test_reuse.py)
            assert list(run.glob(name.rstrip("/"))), f"README.md:{block.line}: no {name} in {sorted(run.rglob('*'))}"
    tops = {n.split("/")[0].replace("<hash>", "*") for n in named}
    unnamed = [p.name for p in run.iterdir() if not any(Path(p.name).match(t) for t in tops)]
    assert unnamed == [], f"README.md:{block.line}: the run dir holds {unnamed}, which the listing does not name"


def _funnel_block(block: Block, output: list[str]) -> None:
    start = next((i for i, ln in enumerate(output) if ln.startswith("quality: ")), len(output))
    assert_fits(list(block.lines), output[start:start + len(block.lines)], f"README.md:{block.line}")


def _empty_block(block: Block, output: list[str]) -> None:
    assert_fits([" ".join(ln.strip() for ln in block.lines)], [ln for ln in output if ln.startswith("0 dataset rows")],
                f"README.md:{block.line}")


@dataclass(frozen=True)
class Illustration:
    """How to make the output a README block shows: a run dir of a README command, or a run of ``overrides``."""

    check: Callable[[Block, Any], None]
    overrides: tuple[str, ...] | None = None  # a run with these against ``fake``: ``check`` gets its log lines;
    # None: the block lists a run dir (its first line), ``check`` gets the run dir of the README command it stands for
    fake: dict[str, Any] = field(default_factory=dict)

    def produce(self, ws: Workspace, block: Block) -> Path | list[str]:
        if self.overrides is None:
            return ws.run_dir(block.lines[0].strip().rstrip("/"))
        r = ws.once(f"block{block.line}", lambda: self._run(ws, block))
        assert r.returncode == 0, r.output[-3000:]
        return [re.sub(r"^\[.*?\]\[rollgen\]\[\w+\] - ", "", ln) for ln in screen(r.output)]  # log prefixes off

    def _run(self, ws: Workspace, block: Block) -> Result:
        cwd = ws.root / f"block-line{block.line}"
        cwd.mkdir()
        return ws.execute(lambda url: [sys.executable, "-m", "rollgen", *self.overrides, "policy=openai",
                                       f"policy.base_url={url}"], cwd, FakeOpenAI(**self.fake))


# A README block without a command (by ``kind``) -> how this file reproduces and checks it.
ILLUSTRATIONS = {
    "run dir": Illustration(_run_tree),
    # the funnel: quality=default, 20 tasks x 4 repeats against the fake, which repeats its answers word for word
    "quality:": Illustration(_funnel_block, overrides=("quality=default", "sampler.num_repeats=4")),
    # "0 dataset rows: ...": sampler=sft server.size=10 against a policy that never gets an answer right
    "0": Illustration(_empty_block, overrides=("sampler=sft", "server.size=10"), fake={"correct_rate": 0.0}),
}


def kind(block: Block) -> str:
    """An ILLUSTRATIONS key: "run dir" for a run dir listing, else the block's first word."""
    first = block.lines[0].split()[0]
    return "run dir" if RUN_DIR_MENTION.fullmatch(first.rstrip("/")) else first


def illustration(block: Block) -> Illustration:
    return ILLUSTRATIONS[kind(block)]


@pytest.mark.slow
@pytest.mark.parametrize("block", OTHER_BLOCKS, ids=lambda b: f"line{b.line}:{b.lines[0][:40]}")
def test_readme_output_block(block: Block, workspace: Workspace) -> None:
    how = illustration(block)
    how.check(block, how.produce(workspace, block))
