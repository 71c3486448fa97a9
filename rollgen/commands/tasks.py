"""``rollgen tasks preview``: the exact messages a run would send for its first tasks, without a model.

    rollgen tasks preview                                   the first 3 tasks of the default config
    rollgen tasks preview server.generators=[chain_sum,gsm_symbolic] -n 5
    rollgen tasks preview server.data_path=my_tasks.jsonl server.instruction=null --json

Overrides are the same Hydra-style key=value overrides as a run (``--config-dir DIR`` adds a training
repo's config groups), so what is printed is what the policy receives: each task's chat messages after
the server's prompt template, answer instruction (appended only where the prompt has no final-answer
instruction of its own) and system prompt, the tools offered, and the gold answer the verifier compares
against. A summary counts, over the tasks shown, the prompts that got the server's instruction, those with
an instruction twice, those with none, and repeated prompts. With ``--json``: one JSON object per task
(``id``, ``messages``, ``tools``, ``answer``), then the summary. Exit status: 0 shown, 2 a config or
task-source error.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import islice
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(prog="rollgen tasks", description=doc.split("\n\n")[0].split(": ", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preview", help="print the exact messages sent for the first N tasks",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc.split("\n\n", 1)[1])
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra-style overrides, as for a run")
    p.add_argument("-n", "--num", type=int, default=3, help="how many tasks to show (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per task, then the summary")
    p.add_argument("--config-dir", "-cd", default=None, help="a directory of extra config groups (a training repo's)")
    return ap


def _show(task: Any, tools: list[dict[str, Any]] | None) -> str:
    lines = [f"--- task {task.id} (answer: {json.dumps(task.answer, ensure_ascii=False)}) ---"]
    for m in task.chat():
        lines.append(f"[{m.get('role')}]")
        content = m.get("content")
        lines.append(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
    if tools:
        lines.append("[tools] " + ", ".join(str((t.get("function") or t).get("name")) for t in tools))
    return "\n".join(lines)


def _summary(checks: dict[str, Any], instruction: str | None) -> list[str]:
    n = checks["tasks"]
    lines = [f"{n} tasks shown: {checks['with_server_instruction']} with the server's instruction "
             f"({json.dumps(instruction)}), {checks['instruction_twice']} with a final-answer instruction twice, "
             f"{checks['no_answer_instruction']} with none, {checks['tasks_repeating_a_prompt']} repeating an "
             f"earlier prompt"]
    lines += [f"  e.g. {kind.replace('_', ' ')}: {', '.join(ids)}" for kind, ids in checks["examples"].items()]
    return lines


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from rollgen.build import build
    from rollgen.composer import compose
    from rollgen.errors import ConfigError
    from rollgen.servers import TaskSourceError
    from rollgen.servers.prompts import prompt_checks

    if args.num < 1:
        print("rollgen tasks: -n must be at least 1", file=sys.stderr)
        return 2
    try:
        cfg = compose(args.overrides, config_dir=args.config_dir, output_dir=".")
    except ConfigError as e:
        for line in e.lines:
            print(f"rollgen: config error: {line}", file=sys.stderr)
        return 2
    server = build(cfg.server)
    try:
        tasks = list(islice(server.tasks(), min(args.num, cfg.limit or args.num)))
    except (TaskSourceError, OSError) as e:
        print(f"rollgen tasks: cannot read the tasks: {e}", file=sys.stderr)
        return 2
    instruction = getattr(server.params, "instruction", None)
    checks = prompt_checks(tasks, server.added_text())
    for task in tasks:
        tools = task.tools or server.tools() or None
        if args.json:
            print(json.dumps({"id": task.id, "messages": task.chat(), "tools": tools, "answer": task.answer},
                             ensure_ascii=False))
        else:
            print(_show(task, tools) + "\n")
    if args.json:
        print(json.dumps({"summary": checks}))
    else:
        print("\n".join(_summary(checks, instruction)))
    return 0
