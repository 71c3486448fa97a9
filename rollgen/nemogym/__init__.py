"""NeMo Gym (0.7.0) both ways: its Responses-API items as rollgen's chat messages and back (``items``), and its
rollout files as a rollgen run (``rollouts``). The row shapes are in ``docs/design/nemo_gym_facts.md``."""

__all__: list[str] = []
