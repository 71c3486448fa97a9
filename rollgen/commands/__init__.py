"""Subcommands of ``rollgen`` that work on files rather than run a collection.

Each is a module with ``main(argv: list[str]) -> int``; ``rollgen <name> --help`` explains it. A
subcommand that takes a run directory re-reads its ``run_config.json`` and applies Hydra-style
overrides on top (``rollgen.composer.rerun_config``).
"""

SUBCOMMANDS = {
    "validate": ("rollgen.commands.validate", "check a verifier on gold and perturbed answers, or a run's rewards"),
    "verify": ("rollgen.commands.verify", "re-verify a run's rollouts with another verifier config"),
    "curate": ("rollgen.commands.curate", "re-run the quality stage on a run's rollouts"),
    "merge": ("rollgen.commands.merge", "join the run dirs of a run's shards, then curate, format and export the whole"),
    "dataset": ("rollgen.commands.dataset", "validate a dataset file against a format, or print its stats"),
    "compare": ("rollgen.commands.compare", "compare the reports of several runs side by side"),
    "tasks": ("rollgen.commands.tasks", "preview the exact messages a run sends for its first tasks"),
    "ray-run": ("rollgen.ray_run", "collect a run's shards as Ray tasks, then merge them (pip install 'rollgen[ray]')"),
    "serve": ("rollgen.commands.serve", "serve a resource server and its verifier over HTTP for online RL"),
}
