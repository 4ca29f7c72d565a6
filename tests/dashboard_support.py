"""JSON answers of GoCD's dashboard (v4), stage instance (v3), pipeline config (v11) and
template (v7) APIs, built field for field as ``gocd-api.md`` 8.3, 9.1, 10.1 and 10.2 show
them, and a fake GoCD client that answers with them through the real parsers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from actors.exceptions import GoCDAuthError, GoCDError, GoCDNotFound, GoCDServerError
from actors.gocd.client import Fetched
from actors.gocd.dashboard import (
    parse_dashboard,
    parse_pipeline_config,
    parse_stage_jobs,
    parse_template_config,
)

BASE = "https://gocd.example.com/go"
#: 2026-07-10T09:00:00Z in epoch milliseconds.
T0 = 1_783_674_000_000


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


# --- dashboard v4 ------------------------------------------------------------------


def stage(name: str, counter: int | str, status: str, pipeline: str = "app", pc: int = 1, **kw: Any):
    """A dashboard stage (8.3); ``counter`` is sent as a string, as GoCD does."""
    scheduled = kw.pop("scheduled_at", iso(T0))
    obj = {
        "_links": {"self": {"href": f"{BASE}/api/stages/{pipeline}/{pc}/{name}/{counter}"}},
        "name": name,
        "counter": str(counter),
        "status": status,
        "allow_only_on_success_of_previous_stage": False,
        "can_operate": True,
        "approval_type": kw.pop("approval_type", "auto"),
        "approved_by": kw.pop("approved_by", "changes"),
        "scheduled_at": scheduled,
    }
    obj.update(kw)
    return obj


def not_run(name: str, pipeline: str = "app", pc: int = 1):
    """A stage that has not run yet: counter "1", status Unknown, scheduled ~24.8 days ahead."""
    return stage(
        name,
        1,
        "Unknown",
        pipeline,
        pc,
        approval_type="manual",
        approved_by=None,
        scheduled_at=iso(T0 + 2**31 - 1),
    )


def instance(pipeline: str, counter: int, stages: Iterable[dict[str, Any]]):
    """A dashboard pipeline instance (8.3); counter -1 is GoCD's "preparing to schedule"."""
    return {
        "_links": {"self": {"href": f"{BASE}/api/pipelines/{pipeline}/{counter}/instance"}},
        "label": "TBD" if counter < 0 else str(counter),
        "counter": counter,
        "triggered_by": "Triggered by changes",
        "scheduled_at": iso(T0),
        "_embedded": {"stages": list(stages)},
    }


def pipeline(
    name: str, instances: Iterable[dict[str, Any]] = (), *, updated: int = 1, template: str | None = None
):
    """A dashboard pipeline (8.3), ``updated`` its ``last_updated_timestamp``."""
    return {
        "_links": {
            "self": {"href": f"{BASE}/api/pipelines/{name}/history"},
            "doc": {"href": "https://api.gocd.org/current/#pipelines"},
        },
        "name": name,
        "last_updated_timestamp": T0 + updated,
        "locked": False,
        "pause_info": {"paused": False, "paused_by": None, "pause_reason": None, "paused_at": None},
        "template_info": {"is_using_template": template is not None, "template_name": template},
        "can_operate": True,
        "can_administer": True,
        "can_unlock": True,
        "can_pause": True,
        "from_config_repo": False,
        "_embedded": {"instances": list(instances)},
    }


def dashboard(pipelines: Iterable[dict[str, Any]], environments: Mapping[str, Iterable[str]] | None = None):
    """The dashboard (8.3): one group holding every pipeline, and the environments given as
    ``{environment: [pipelines]}``."""
    pipelines = list(pipelines)
    group = {
        "_links": {
            "doc": {"href": "https://api.gocd.org/current/#pipeline-groups"},
            "self": {"href": f"{BASE}/api/config/pipeline_groups"},
        },
        "name": "backend",
        "pipelines": [p["name"] for p in pipelines],
        "can_administer": True,
        "defines_pipelines": True,
    }
    envs = [
        {
            "_links": {
                "doc": {"href": "https://api.gocd.org/current/#environment-config"},
                "self": {"href": f"{BASE}/api/admin/environments/{env}"},
            },
            "name": env,
            "pipelines": list(names),
            "can_administer": True,
            "defines_pipelines": True,
        }
        for env, names in (environments or {}).items()
    ]
    return {
        "_links": {
            "self": {"href": f"{BASE}/api/dashboard"},
            "doc": {"href": "https://api.gocd.org/current/#dashboard"},
        },
        "_personalization": "2356e5d4",
        "_embedded": {"pipeline_groups": [group], "environments": envs, "pipelines": pipelines},
    }


# --- stage instance v3 ------------------------------------------------------------------


def job(name: str, state: str = "Scheduled", at: int = T0, agent: str | None = None):
    """One job of a stage instance (9.1), ``at`` its scheduled_date in epoch ms."""
    transitions = [{"state": "Scheduled", "state_change_time": at}]
    if state != "Scheduled":
        transitions.append({"state": state, "state_change_time": at + 3000})
    return {
        "name": name,
        "state": state,
        "result": "Unknown",
        "scheduled_date": at,
        "rerun": False,
        "original_job_id": None,
        "agent_uuid": agent,
        "pipeline_name": None,
        "pipeline_counter": None,
        "stage_name": None,
        "stage_counter": None,
        "job_state_transitions": transitions,
    }


def stage_instance(pipeline: str, pc: int, name: str, counter: int, jobs: Iterable[dict[str, Any]]):
    """A stage instance (9.1): jobs sorted by name, as GoCD's SQL orders them."""
    return {
        "name": name,
        "counter": counter,
        "approval_type": "success",
        "approved_by": "changes",
        "scheduled_at": T0,
        "last_transitioned_time": T0,
        "result": "Unknown",
        "rerun_of_counter": None,
        "fetch_materials": True,
        "clean_working_directory": False,
        "artifacts_deleted": False,
        "pipeline_name": pipeline,
        "pipeline_counter": pc,
        "jobs": sorted(jobs, key=lambda j: j["name"]),
    }


# --- pipeline config v11 and template v7 -------------------------------------------------


def job_config(
    name: str, resources: Iterable[str] = (), elastic: str | None = None, count: int | str | None = None
):
    """One job of a stage config (10.1), in the representer's field order."""
    obj: dict[str, Any] = {"name": name, "run_instance_count": count, "timeout": None}
    if elastic is not None:
        obj["elastic_profile_id"] = elastic
    obj.update(
        {
            "environment_variables": [],
            "resources": list(resources),
            "tasks": [{"type": "exec", "attributes": {"command": "make", "arguments": [name]}}],
            "tabs": [],
            "artifacts": [],
        }
    )
    return obj


def stage_config(name: str, jobs: Iterable[dict[str, Any]]):
    return {
        "name": name,
        "fetch_materials": True,
        "clean_working_directory": False,
        "never_cleanup_artifacts": False,
        "approval": {
            "type": "success",
            "allow_only_on_success": False,
            "authorization": {"roles": [], "users": []},
        },
        "environment_variables": [],
        "jobs": list(jobs),
    }


def pipeline_config(
    name: str,
    stages: Iterable[dict[str, Any]] | None = None,
    *,
    template: str | None = None,
    parameters: Mapping[str, str] | None = None,
):
    """A pipeline config (10.1): ``"stages": null`` with a template, raw ``#{param}``."""
    return {
        "_links": {"self": {"href": f"{BASE}/api/admin/pipelines/{name}"}},
        "label_template": "${COUNT}",
        "lock_behavior": "none",
        "name": name,
        "template": template,
        "group": "backend",
        "origin": {"_links": {}, "type": "gocd"},
        "parameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()],
        "environment_variables": [],
        "materials": [{"type": "git", "attributes": {"url": "https://git.example.com/app.git"}}],
        "stages": None if template is not None else list(stages or ()),
        "tracking_tool": None,
        "timer": None,
    }


def template_config(name: str, stages: Iterable[dict[str, Any]]):
    """A template (10.2)."""
    return {
        "_links": {"self": {"href": f"{BASE}/api/admin/templates/{name}"}},
        "name": name,
        "stages": list(stages),
    }


# --- a fake client ------------------------------------------------------------------------


class FakeGoCD:
    """Stands in for :class:`~actors.gocd.client.GoCDClient` for the dashboard source: it
    answers from the JSON above through the real parsers, with GoCD's status codes.

    ``dash`` is the dashboard JSON (or 202 while warming up), ``stages`` the stage
    instances by (pipeline, counter, stage, counter), ``configs`` and ``templates`` the
    configs by name; a value that is an exception is raised instead. ETags are the
    ``etags`` given (dashboard: ``"dash"``), a matching ``If-None-Match`` gives 304.
    """

    base_url = BASE

    def __init__(self) -> None:
        self.dash: Any = dashboard([])
        self.stages: dict[tuple[str, int, str, int], Any] = {}
        self.configs: dict[str, Any] = {}
        self.templates: dict[str, Any] = {}
        self.etags: dict[str, str] = {}
        #: Every call: (what, name, If-None-Match sent).
        self.calls: list[tuple[str, str, str | None]] = []
        self.feed: Any = ()

    def who(self) -> str:
        return "user 'svc'"

    def _answer(self, key: str, value: Any, etag: str | None, parse):
        if isinstance(value, GoCDError):
            raise value
        if value == 202:
            return Fetched(202)
        tag = self.etags.get(key, '"' + hashlib.md5(repr(value).encode()).hexdigest() + '"')
        if etag == tag:
            return Fetched(304, None, tag)
        return Fetched(200, parse(value), tag)

    def dashboard(self, etag=None):
        self.calls.append(("dashboard", "", etag))
        return self._answer("dashboard", self.dash, etag, parse_dashboard)

    def stage_jobs(self, pipeline, pipeline_counter, stage, stage_counter):
        key = (pipeline, pipeline_counter, stage, stage_counter)
        self.calls.append(("stage", "/".join(map(str, key)), None))
        value = self.stages.get(key)
        if value is None:
            raise GoCDNotFound("not found (404)", method="GET", url="x", status=404)
        if isinstance(value, GoCDError):
            raise value
        return parse_stage_jobs(value)

    def pipeline_config(self, name, etag=None):
        self.calls.append(("pipeline_config", name, etag))
        if name not in self.configs:
            raise GoCDNotFound(
                f"Pipeline with name '{name}' was not found!", method="GET", url="x", status=404
            )
        return self._answer(f"p:{name}", self.configs[name], etag, parse_pipeline_config)

    def template_config(self, name, etag=None):
        self.calls.append(("template", name, etag))
        if name not in self.templates:
            raise GoCDNotFound(f"Template '{name}' not found", method="GET", url="x", status=404)
        return self._answer(f"t:{name}", self.templates[name], etag, parse_template_config)

    # The feed side, for AutoSource: ``feed`` is the jobs (or an exception).
    def scheduled_jobs(self):
        self.calls.append(("feed", "", None))
        if isinstance(self.feed, Exception):
            raise self.feed
        return tuple(self.feed)

    def with_elastic_profiles(self, jobs):
        return tuple(jobs)

    def calls_of(self, what: str) -> list[tuple[str, str, str | None]]:
        return [c for c in self.calls if c[0] == what]


def forbidden(what: str = "pipeline config") -> GoCDAuthError:
    return GoCDAuthError(
        f"GET {BASE}/api/admin/... failed: user 'svc' may not do this (403): You are not authorized to perform this action.",
        method="GET",
        url=f"{BASE}/api/admin/x",
        status=403,
    )


def server_error() -> GoCDServerError:
    return GoCDServerError("GoCD failed (500)", method="GET", url=f"{BASE}/api/stages/x", status=500)
