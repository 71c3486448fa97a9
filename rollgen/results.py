"""What each stage of a run returns, typed, and the report made of them.

```
collect  ─▶ Collection      status, counts and rewards (RolloutStats), what the requests cost, resume, timing,
                            and the per-rollout tallies later stages need (RolloutScan: pass@k groups, per-task
                            rewards, models) from the one pass over rollouts.jsonl
quality  ─▶ Curation        the funnel, metrics, how many were kept, contamination, the histograms plots draw
format   ─▶ DatasetSummary  rows per split, their total, the format stage's details
export   ─▶ ExportResult    per integration: files written, the manifest, rows left out
report   ─▶ Report          all of the above; ``Report.to_json()`` is report.json, key for key
```

``rollgen.report.build_report`` makes the ``Report`` (once, from these results); ``Collection.from_report`` reads
a run's collection back from its report.json (``rollgen curate`` keeps it and redoes the rest).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

__all__ = ["Calls", "Collection", "Concurrency", "Curation", "DatasetSummary", "EndpointUsage", "ExportResult",
           "IntegrationExport",
           "LengthHistogram", "Report", "Resume", "RolloutStats", "TaskStats"]


class TaskStats(NamedTuple):
    """Rewards of one task's scored rollouts, as collected (before quality filters)."""

    n: int
    total: float
    total_sq: float
    passed: int


@dataclass(frozen=True)
class RolloutStats:
    """report.json's ``collection``: counts, rewards and tokens over every rollout of the run."""

    tasks: int
    rollouts: int
    by_status: dict[str, int]
    mean_reward: float | None
    pass_rate: float | None  # passing rollouts (rollgen.metrics.passed) / rollouts with a reward
    task_pass_rate: float | None  # tasks with a passing rollout / tasks
    tokens: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RolloutStats:
        return cls(tasks=d["tasks"], rollouts=d["rollouts"], by_status=dict(d["by_status"]),
                   mean_reward=d.get("mean_reward"), pass_rate=d.get("pass_rate"),
                   task_pass_rate=d.get("task_pass_rate"), tokens=dict(d.get("tokens") or {}))


@dataclass(frozen=True)
class Calls:
    """What collection cost: policy requests this run sent, retries apart, rollouts reused (no calls)."""

    model_calls: int
    retries: int
    reused_rollouts: int


@dataclass(frozen=True)
class Resume:
    """What the run took from earlier runs of its collection hash (``rollgen.resume.Prior``)."""

    source: str | None
    reused: int
    retried: int
    torn: int
    rescored: int
    kept_aside: int
    set_aside: str | None


@dataclass(frozen=True)
class Concurrency:
    max: int
    lowest: int | None
    throttled_responses: int


@dataclass(frozen=True)
class EndpointUsage:
    """One endpoint's share of the run (``policy.base_urls``): attempts sent, their outcome, times it was taken
    out of rotation, whether it was in rotation at the end, latency of its successful attempts."""

    url: str
    requests: int
    ok: int
    failed: int
    taken_out: int
    up: bool
    latency_mean_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None


# report.json keys a Collection holds, in report order; ``Collection.present`` names those a report read back had
LIVE_KEYS = ("calls", "resume", "bad_rows", "first_rollout_s", "peak_in_flight", "concurrency", "collect_time_s",
             "rollouts_per_s", "endpoints")


@dataclass
class Collection:
    """The collect stage's result: how it ended, the rollouts' numbers, and the live counters of the run.

    ``scan`` holds what the one streaming pass over rollouts.jsonl gathered for later stages (it is not part
    of report.json); a Collection read back from a report has none.
    """

    status: str  # complete | interrupted | aborted
    stats: RolloutStats
    config_hash: str | None = None
    model: str | None = None
    reason: str | None = None
    calls: Calls | None = None
    resume: Resume | None = None
    bad_rows: list[str] = field(default_factory=list)
    first_rollout_s: float | None = None
    peak_in_flight: int | None = None
    concurrency: Concurrency | None = None
    collect_time_s: float | None = None
    rollouts_per_s: float | None = None
    endpoints: list[EndpointUsage] | None = None
    pass_at_k: dict[str, dict[int, float]] | None = None
    scan: Any = None  # rollgen.scan.RolloutScan
    present: frozenset[str] | None = None  # of LIVE_KEYS, those to write (None: all; a report read back: its own)

    def live_json(self) -> dict[str, Any]:
        """The live counters under their report.json keys (``present`` ones only)."""
        values: dict[str, Any] = {
            "calls": None if self.calls is None else asdict(self.calls),
            "resume": None if self.resume is None else asdict(self.resume),
            "bad_rows": self.bad_rows, "first_rollout_s": self.first_rollout_s,
            "peak_in_flight": self.peak_in_flight,
            "concurrency": None if self.concurrency is None else asdict(self.concurrency),
            "collect_time_s": self.collect_time_s, "rollouts_per_s": self.rollouts_per_s,
            "endpoints": None if self.endpoints is None else [asdict(e) for e in self.endpoints],
        }
        return {k: v for k, v in values.items() if (self.present is None or k in self.present)
                and (k != "endpoints" or v is not None)}

    @classmethod
    def from_report(cls, d: dict[str, Any]) -> Collection:
        """The collection part of a report.json (a run's, or an older rollgen's with fewer keys)."""
        calls, resume, conc = d.get("calls"), d.get("resume"), d.get("concurrency")
        curves = d.get("pass_at_k")
        return cls(
            status=d["status"], stats=RolloutStats.from_json(d["collection"]), config_hash=d.get("config_hash"),
            model=d.get("model"), reason=d.get("reason"),
            calls=Calls(**calls) if calls else None, resume=Resume(**resume) if resume else None,
            bad_rows=list(d.get("bad_rows") or []), first_rollout_s=d.get("first_rollout_s"),
            peak_in_flight=d.get("peak_in_flight"), concurrency=Concurrency(**conc) if conc else None,
            collect_time_s=d.get("collect_time_s"), rollouts_per_s=d.get("rollouts_per_s"),
            endpoints=[EndpointUsage(**e) for e in d["endpoints"]] if d.get("endpoints") else None,
            pass_at_k=None if curves is None else {k: {int(n): v for n, v in c.items()} for k, c in curves.items()},
            present=frozenset(k for k in LIVE_KEYS if k in d))


@dataclass(frozen=True)
class LengthHistogram:
    """Completion lengths binned for the length plot: shared bin edges, counts over all and curated rollouts."""

    unit: str
    edges: list[float]
    all: list[int]
    curated: list[int]


@dataclass
class Curation:
    """What the quality stage did: the funnel, metrics, how many were kept, contamination.

    ``lengths`` (not in report.json) is the completion-length histogram the report stage's plots draw; the
    other plots read ``metrics``.
    """

    total: int
    curated: int
    funnel: list[dict[str, Any]]
    metrics: dict[str, Any]
    contamination: dict[str, Any] | None = None
    lengths: LengthHistogram | None = None

    @property
    def rejected(self) -> int:
        return self.total - self.curated


@dataclass(frozen=True)
class DatasetSummary:
    """What the format stage wrote: rows per split, their total, and its details (report.json's ``dataset_details``:
    tasks per split, how the split was made, what was left out, statistics, notes)."""

    format: str
    splits: dict[str, int]
    rows: int
    details: dict[str, Any]


@dataclass(frozen=True)
class IntegrationExport:
    """One integration's export: the files it wrote (rows, or None for scripts and configs), its manifest, and the
    rows it left out (``{"reason", "rows"}``; a user's integration may report none)."""

    name: str
    files: dict[str, int | None]
    manifest: dict[str, Any]
    skipped: list[dict[str, Any]]


@dataclass(frozen=True)
class ExportResult:
    """The export stage's result, per integration in config order."""

    integrations: list[IntegrationExport] = field(default_factory=list)

    @property
    def manifests(self) -> dict[str, dict[str, Any]]:
        """report.json's ``export``: each integration's manifest under its name."""
        return {e.name: e.manifest for e in self.integrations}


# The keys of report.json, in order, and the part of the Report each comes from.
REPORT_KEYS: dict[str, str] = {
    "status": "Report.status", "rollgen_version": "Report.rollgen_version",
    "config_hash": "Collection.config_hash", "model": "Collection.model", "format": "Report.format",
    "collection": "Collection.stats", "calls": "Collection.calls", "resume": "Collection.resume",
    "bad_rows": "Collection.bad_rows", "funnel": "Curation.funnel",
    "kept": "Collection.stats.rollouts, Curation.curated, DatasetSummary.rows", "dataset": "DatasetSummary.splits",
    "first_rollout_s": "Collection.first_rollout_s", "peak_in_flight": "Collection.peak_in_flight",
    "concurrency": "Collection.concurrency", "collect_time_s": "Collection.collect_time_s",
    "rollouts_per_s": "Collection.rollouts_per_s", "endpoints": "Collection.endpoints", "quality": "Curation.metrics", "plots": "Report.plots",
    "contamination": "Curation.contamination", "dataset_details": "DatasetSummary.details",
    "export": "ExportResult.manifests", "empty": "Report.empty", "pass_at_k": "Collection.pass_at_k",
    "reason": "Report.reason", "wall_time_s": "Report.wall_time_s", "curated_with": "Report.curated_with",
}


@dataclass
class Report:
    """A run's report: the stage results and what the report stage added (plots, why there is no data, timing).

    ``curation``, ``dataset`` and ``exports`` are set when the stages after collection ran to the end; ``extra``
    keeps the keys of a report.json read back that this version does not know, as they were.
    """

    status: str
    rollgen_version: str
    format: str
    collection: Collection
    curation: Curation | None = None
    dataset: DatasetSummary | None = None
    exports: ExportResult | None = None
    reason: str | None = None
    plots: list[str] | None = None
    empty: list[str] | None = None
    wall_time_s: float | None = None
    curated_with: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def downstream(self) -> bool:
        """Whether quality, format and export all ran to the end."""
        return self.curation is not None and self.dataset is not None and self.exports is not None

    def kept(self) -> dict[str, int]:
        return {"rollouts": self.collection.stats.rollouts,
                "curated": self.curation.curated if self.downstream else 0,  # type: ignore[union-attr]
                "dataset_rows": self.dataset.rows if self.downstream else 0}  # type: ignore[union-attr]

    def to_json(self) -> dict[str, Any]:
        """report.json: every key from a field of this report or of its stage results (``REPORT_KEYS``)."""
        c = self.collection
        live = c.live_json()
        out: dict[str, Any] = {"status": self.status, "rollgen_version": self.rollgen_version,
                               "config_hash": c.config_hash, "model": c.model, "format": self.format,
                               "collection": c.stats.to_json()}
        out.update({k: live[k] for k in ("calls", "resume", "bad_rows") if k in live})
        out["funnel"] = self.curation.funnel if self.downstream else []  # type: ignore[union-attr]
        out["kept"] = self.kept()
        out["dataset"] = self.dataset.splits if self.downstream else {}  # type: ignore[union-attr]
        out.update({k: live[k] for k in LIVE_KEYS[3:] if k in live})
        if self.downstream:
            assert self.curation is not None and self.dataset is not None and self.exports is not None
            out.update(quality=self.curation.metrics, plots=self.plots or [], contamination=self.curation.contamination,
                       dataset_details=self.dataset.details, export=self.exports.manifests)
        if self.empty is not None:
            out["empty"] = self.empty
        if c.pass_at_k is not None and self.downstream:
            out["pass_at_k"] = c.pass_at_k
        if self.reason is not None:
            out["reason"] = self.reason
        out["wall_time_s"] = self.wall_time_s
        out.update(self.extra)
        if self.curated_with is not None:
            out["curated_with"] = self.curated_with
        return out
