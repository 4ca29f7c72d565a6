"""A generated day of CI traffic, and a queueing model of it for sizing a static fleet.

:func:`generate` makes a :class:`Trace` from a seed: pipeline definitions
(1 to 4 sequential stages, each fanning out 1 to 12 jobs, with lognormal job
durations and a mix of resources and environments) and the times in the day
they are triggered, a non-homogeneous Poisson process with working-hours
peaks. It is pure: the same seed and sizes give the same trace.

:func:`static_waits` plays a trace through an idealised static fleet (N agents
per profile, always up, each job to the first free agent of its profile in
scheduling order, stages in sequence) and returns every job's wait. The
benchmark uses it only to choose the static fleet's size; the static fleet's
figures themselves are measured on the simulators, like every other policy's.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PROFILES", "JobDef", "PipelineDef", "StageDef", "Trace", "generate", "profile_of", "static_waits"]

#: The profiles the trace needs: name -> (resources, environments). Every job fits exactly one.
PROFILES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "linux": (("linux",), ()),
    "docker": (("docker", "linux"), ()),
    "windows": (("windows",), ()),
    "prod": (("docker", "linux"), ("prod",)),
}


@dataclass(frozen=True)
class JobDef:
    """One job of a stage."""

    name: str
    resources: tuple[str, ...]
    #: Median seconds it builds; each run draws around it.
    median_s: float


@dataclass(frozen=True)
class StageDef:
    name: str
    jobs: tuple[JobDef, ...]


@dataclass(frozen=True)
class PipelineDef:
    name: str
    stages: tuple[StageDef, ...]
    #: Environment of the pipeline; None for none.
    environment: str | None


@dataclass(frozen=True)
class Run:
    """One trigger of a pipeline: when, and how long each of its jobs builds."""

    #: Seconds since the trace's start.
    at: float
    pipeline: str
    #: Per stage, per job (in definition order), seconds it builds.
    durations: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Trace:
    pipelines: tuple[PipelineDef, ...]
    runs: tuple[Run, ...]
    #: Seconds the trace covers.
    length: float
    #: Seconds an agent takes from LAUNCH to registered, per launch in order (drawn around 30 s).
    agent_starts: tuple[float, ...]

    def pipeline(self, name: str) -> PipelineDef:
        return next(p for p in self.pipelines if p.name == name)

    @property
    def jobs(self) -> int:
        return sum(len(d) for run in self.runs for d in run.durations)

    @property
    def busy_seconds(self) -> float:
        """Seconds of building over every job of every run."""
        return sum(sum(d) for run in self.runs for d in run.durations)


def profile_of(job: JobDef, environment: str | None) -> str:
    """The profile of :data:`PROFILES` made for a job of a pipeline in ``environment``: the one
    in that environment whose resources are exactly the job's."""
    for name, (resources, environments) in PROFILES.items():
        in_place = environment in environments if environment else not environments
        if in_place and set(resources) == set(job.resources):
            return name
    raise ValueError(f"no profile for {job} in {environment}")


def _rate(hour: float, peak_per_hour: float) -> float:
    """Pipeline triggers per hour at ``hour`` of the day: a night floor, two working-hours peaks."""
    morning = math.exp(-(((hour - 10.5) / 1.5) ** 2))
    afternoon = math.exp(-(((hour - 15.0) / 2.0) ** 2))
    return peak_per_hour * max(0.05, morning, 0.9 * afternoon)


def generate(
    seed: int = 2026,
    *,
    pipelines: int = 40,
    peak_per_hour: float = 40.0,
    hours: float = 24.0,
    start_hour: float = 0.0,
) -> Trace:
    """A day (or ``hours`` of it from ``start_hour``) of CI traffic; see the module docstring."""
    rng = random.Random(seed)
    defs = []
    for p in range(pipelines):
        environment = "prod" if rng.random() < 0.15 else None
        stages = []
        for s in range(rng.choice((1, 2, 2, 3, 3, 4))):
            fan_out = min(12, max(1, int(rng.lognormvariate(math.log(3), 0.8))))
            jobs = []
            for j in range(fan_out):
                kind = rng.random()
                if environment:
                    resources: tuple[str, ...] = ("docker", "linux")
                elif kind < 0.6:
                    resources = ("linux",)
                elif kind < 0.88:
                    resources = ("docker", "linux")
                else:
                    resources = ("windows",)
                median = min(3600.0, max(20.0, rng.lognormvariate(math.log(180), 0.7)))
                jobs.append(JobDef(f"job{j + 1}", resources, round(median, 1)))
            stages.append(StageDef(f"stage{s + 1}", tuple(jobs)))
        defs.append(PipelineDef(f"pipe{p + 1:02d}", tuple(stages), environment))
    # Thinning: candidate arrivals at the peak rate, each kept with rate(t) / peak.
    runs, t, length = [], 0.0, hours * 3600.0
    peak = _rate(10.5, peak_per_hour) / 3600.0
    while True:
        t += rng.expovariate(peak)
        if t >= length:
            break
        hour = (start_hour + t / 3600.0) % 24.0
        if rng.random() * peak * 3600.0 <= _rate(hour, peak_per_hour):
            chosen = rng.choice(defs)
            durations = tuple(
                tuple(
                    round(min(4 * 3600.0, j.median_s * rng.lognormvariate(0.0, 0.35)), 1) for j in stage.jobs
                )
                for stage in chosen.stages
            )
            runs.append(Run(round(t, 3), chosen.name, durations))
    total = sum(len(d) for run in runs for d in run.durations)
    starts = tuple(round(min(90.0, max(10.0, rng.gauss(30.0, 6.0))), 2) for _ in range(4 * total + 100))
    return Trace(tuple(defs), tuple(runs), length, starts)


def static_waits(
    trace: Trace, fleet: Mapping[str, int], overhead: float = 0.0
) -> list[tuple[float, int, str]]:
    """(wait seconds, stage index, profile) of every job of ``trace`` on a static ``fleet`` (see
    the module), in the order they started. ``overhead`` is added to every wait and holds the
    agent too: the seconds an idle agent takes to ask for work and be given it."""
    # Events: (time, seq, kind, payload). Kinds: 0 stage scheduled, 1 job done.
    seq = 0
    events: list[tuple[float, int, int, tuple[int, int]]] = []
    for r, run in enumerate(trace.runs):
        events.append((run.at, seq, 0, (r, 0)))
        seq += 1
    free = {name: fleet.get(name, 0) for name in PROFILES}
    queues: dict[str, list[tuple[float, int, int, int, int]]] = {name: [] for name in PROFILES}
    left: dict[tuple[int, int], int] = {}
    waits: list[tuple[float, int, str]] = []
    heapq.heapify(events)

    def start_jobs(now: float, profile: str) -> None:
        nonlocal seq
        queue = queues[profile]
        while free[profile] and queue:
            scheduled_at, _, r, s, j = heapq.heappop(queue)
            free[profile] -= 1
            waits.append((now + overhead - scheduled_at, s, profile))
            duration = trace.runs[r].durations[s][j]
            heapq.heappush(events, (now + overhead + duration, seq, 1, (r, s * 1000 + j)))
            seq += 1

    while events:
        now, _, kind, (r, x) = heapq.heappop(events)
        run = trace.runs[r]
        pipeline = trace.pipeline(run.pipeline)
        if kind == 0:
            stage = pipeline.stages[x]
            left[(r, x)] = len(stage.jobs)
            touched = set()
            for j, job in enumerate(stage.jobs):
                profile = profile_of(job, pipeline.environment)
                heapq.heappush(queues[profile], (now, seq, r, x, j))
                seq += 1
                touched.add(profile)
            for profile in touched:
                start_jobs(now, profile)
        else:
            s, j = divmod(x, 1000)
            profile = profile_of(pipeline.stages[s].jobs[j], pipeline.environment)
            free[profile] += 1
            left[(r, s)] -= 1
            if left[(r, s)] == 0 and s + 1 < len(pipeline.stages):
                heapq.heappush(events, (now, seq, 0, (r, s + 1)))
                seq += 1
            start_jobs(now, profile)
    return waits
