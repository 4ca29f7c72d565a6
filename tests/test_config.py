"""Configuration: the spec, the sample file, every error at once, secrets."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from actors import config
from actors.config import Constraint, GoCDSettings, Profile, Secret, Volume, parse_duration, parse_memsize
from actors.exceptions import ConfigError
from tests.conftest import SAMPLE_CONFIG

MINIMAL = """
[gocd]
url = https://gocd.example.com/go
[mesos]
master = http://127.0.0.1:5050
[agents]
auto_register_key = k-123
[profiles]
[[linux]]
image = gocd/gocd-agent-ubuntu-24.04:v25.1.0
"""


def load_text(text: str, environ: dict[str, str] | None = None, path: str = "test.ini") -> config.Settings:
    return config.loads(text.splitlines(), path, environ or {})


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, environ)
    return list(info.value.problems)


def test_sample_config_validates():
    settings = config.load(SAMPLE_CONFIG, environ={})
    assert settings.gocd.url == "http://127.0.0.1:8153/go"
    assert settings.profiles[0].name == "linux"
    assert settings.profiles[0].resources == ("linux", "docker")


def spec_keys() -> list[tuple[str, str]]:
    """(section, key) of every key in the spec; profile keys under 'profiles'."""
    keys, section = [], None
    for line in config.spec_lines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        header = re.match(r"^\[+([^\]]+)\]+$", line)
        if header:
            if line.startswith("[["):
                continue
            section = header.group(1)
            continue
        name = line.split("=", 1)[0].strip()
        if name != "__many__":
            keys.append((section, name))
    return keys


def test_every_spec_key_is_documented_in_the_sample():
    text = Path(SAMPLE_CONFIG).read_text(encoding="utf-8")
    missing = [f"[{s}] {k}" for s, k in spec_keys() if not re.search(rf"^#? ?{k} =", text, re.M)]
    assert spec_keys(), "spec parsed to nothing"
    assert missing == []


def test_every_sample_key_has_a_comment_above_it():
    lines = Path(SAMPLE_CONFIG).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#? ?[a-z_]+ =", line) and not line.startswith("# ["):
            above = lines[i - 1]
            assert above.startswith("#") and not re.match(r"^# ?[a-z_]+ =", above), (
                f"no comment above line {i + 1}: {line}"
            )


def test_the_four_problems_of_the_issue_are_reported_in_one_run():
    text = """
[gocd]
poll_interval = often
pol_interval = 10s
[mesos]
master = http://127.0.0.1:5050
[agents]
auto_register_key = k
[profiles]
[[linux]]
image = x
cpus = two
"""
    problems = problems_of(text)
    assert "test.ini: [gocd] url: missing (required)" in problems
    assert any(p.startswith("test.ini: [gocd] poll_interval:") and "not a duration" in p for p in problems)
    assert "test.ini: [gocd] pol_interval: unknown key (did you mean 'poll_interval'?)" in problems
    assert any(p.startswith("test.ini: [profiles][linux] cpus:") and "not a number" in p for p in problems)
    assert len(problems) == 4


def test_empty_file_names_every_required_piece():
    problems = problems_of("")
    assert problems == [
        "test.ini: [gocd] url: missing (required)",
        "test.ini: [mesos] master: missing (required)",
        "test.ini: [agents] auto_register_key: missing (required: auto_register_key, "
        "auto_register_key_file or $GOCD_MESOS_AUTO_REGISTER_KEY)",
        "test.ini: [profiles]: no agent profile (add one, e.g. [[linux]] with image = …)",
    ]


def test_unknown_section_and_profile_key():
    problems = problems_of(MINIMAL + "imgae = y\n[logs]\nlevel = INFO\n")
    assert "test.ini: [profiles][linux] imgae: unknown key (did you mean 'image'?)" in problems
    assert "test.ini: [logs]: unknown section (did you mean 'logging'?)" in problems or any(
        "[logs]" in p and "unknown section" in p for p in problems
    )


def test_defaults():
    s = load_text(MINIMAL)
    assert s.gocd.poll_interval == 10.0
    assert s.gocd.verify_tls is True
    assert s.gocd.backlog == "auto"
    assert s.mesos.failover_timeout == 7 * 86400
    assert s.mesos.masters == ("http://127.0.0.1:5050",)
    assert s.mesos.driver == "builtin"
    assert s.agents.go_server_url == "https://gocd.example.com/go"
    assert s.http.host == "127.0.0.1" and s.http.port == 9404
    p = s.profiles[0]
    assert (p.cpus, p.mem, p.disk, p.min, p.max, p.max_jobs) == (1.0, 2048.0, 0.0, 0, 10, 0)
    assert p.containerizer == "docker" and p.network == "host"
    # About an agent's start time: the trace benchmark's choice (README, Performance).
    assert p.idle_timeout == 30.0
    assert Profile(name="x", image="y").idle_timeout == 30.0


def test_settings_are_frozen():
    s = load_text(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gocd.url = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.profiles[0].max = 3  # type: ignore[misc]
    assert isinstance(s.profiles, tuple)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("7d", 604800),
        ("250ms", 0.25),
        ("45", 45),
        ("1.5m", 90),
        (" 2H ", 7200),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5 minutes", "-5s", "1w", "s"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "mb"),
    [("512M", 512), ("2G", 2048), ("2g", 2048), ("1024", 1024), ("1T", 1048576), ("512MB", 512)],
)
def test_memsizes(text, mb):
    assert parse_memsize(text) == mb


@pytest.mark.parametrize("text", ["", "lots", "2X", "-1G"])
def test_bad_memsizes(text):
    with pytest.raises(ValueError):
        parse_memsize(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://m1:5050", ("http://m1:5050",)),
        ("http://m1:5050, https://m2:5050", ("http://m1:5050", "https://m2:5050")),
        ("zk://z1:2181,z2:2181/mesos", ("zk://z1:2181,z2:2181/mesos",)),
    ],
)
def test_mesos_master_forms(value, expected):
    text = MINIMAL.replace("master = http://127.0.0.1:5050", f"master = {value}")
    assert load_text(text).mesos.masters == expected


@pytest.mark.parametrize("value", ["m1:5050", "http://m1", "zk://z1:2181", "ftp://m:1"])
def test_bad_mesos_masters(value):
    text = MINIMAL.replace("master = http://127.0.0.1:5050", f"master = {value}")
    problems = problems_of(text)
    assert len(problems) == 1 and problems[0].startswith("test.ini: [mesos] master:")


@pytest.mark.parametrize(
    "url", ["https://gocd.example.com", "https://gocd.example.com/go/api", "gocd:8153/go"]
)
def test_gocd_url_must_end_in_go(url):
    problems = problems_of(MINIMAL.replace("url = https://gocd.example.com/go", f"url = {url}"))
    assert len(problems) == 1 and problems[0].startswith("test.ini: [gocd] url:")


def test_gocd_url_trailing_slash_is_dropped():
    s = load_text(MINIMAL.replace("url = https://gocd.example.com/go", "url = https://gocd.example.com/go/"))
    assert s.gocd.url == "https://gocd.example.com/go"


def test_secrets_from_file_and_environment(tmp_path):
    (tmp_path / "pw").write_text("s3cret-pw\n")
    (tmp_path / "key").write_text("file-key\n")
    (tmp_path / "mesos").write_text("mesos-secret\n")
    text = (
        MINIMAL.replace("auto_register_key = k-123", "auto_register_key_file = key")
        .replace(
            "url = https://gocd.example.com/go",
            "url = https://gocd.example.com/go\nusername = bot\npassword_file = pw",
        )
        .replace(
            "master = http://127.0.0.1:5050",
            "master = http://127.0.0.1:5050\nprincipal = gocd\nsecret_file = mesos",
        )
    )
    path = tmp_path / "gocd-mesos.ini"
    path.write_text(text)
    s = config.load(str(path), environ={})
    assert s.gocd.password.reveal() == "s3cret-pw"
    assert s.agents.auto_register_key.reveal() == "file-key"
    assert s.mesos.secret.reveal() == "mesos-secret"
    for secret in ("s3cret-pw", "file-key", "mesos-secret"):
        assert secret not in repr(s)
        assert secret not in config.render(s)

    env = {"GOCD_MESOS_AUTO_REGISTER_KEY": "env-key", "GOCD_MESOS_GOCD_TOKEN": "tok-env"}
    s = load_text(MINIMAL.replace("auto_register_key = k-123", ""), env)
    assert s.agents.auto_register_key.reveal() == "env-key"
    assert s.gocd.token.reveal() == "tok-env"


def test_secret_problems():
    text = MINIMAL.replace(
        "url = https://gocd.example.com/go", "url = https://gocd.example.com/go\nusername = bot"
    )
    assert problems_of(text) == [
        "test.ini: [gocd] password: username is set but no password "
        "(password, password_file or $GOCD_MESOS_GOCD_PASSWORD)"
    ]
    text = MINIMAL.replace(
        "auto_register_key = k-123", "auto_register_key = a\nauto_register_key_file = /nonexistent"
    )
    assert problems_of(text) == [
        "test.ini: [agents] auto_register_key: set both auto_register_key and auto_register_key_file; keep one"
    ]
    text = MINIMAL.replace("auto_register_key = k-123", "auto_register_key_file = /nonexistent/key")
    (problem,) = problems_of(text)
    assert problem.startswith("test.ini: [agents] auto_register_key_file: cannot read /nonexistent/key")
    text = MINIMAL + "\n[gocd]\n"  # duplicate section is a parse error
    assert problems_of(text)


def test_secret_never_shows():
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    assert secret.reveal() == "hunter2"
    assert bool(Secret("")) is False


def test_profile_details():
    text = (
        MINIMAL
        + """
cpus = 2.5
mem = 4G
disk = 10G
resources = linux, Docker
environments = staging
min = 1
max = 3
constraints = os:LIKE:linux|ubuntu, rack:UNLIKE:r9, zone:is:a
volumes = /var/run/docker.sock:/var/run/docker.sock, /cache:/cache:ro
network = bridge
containerizer = mesos
[[[env]]]
GOCD_AGENT_JVM_OPTS = -Xmx1g
"""
    )
    p = load_text(text).profiles[0]
    assert (p.cpus, p.mem, p.disk, p.min, p.max) == (2.5, 4096.0, 10240.0, 1, 3)
    assert p.resources == ("linux", "Docker") and p.environments == ("staging",)
    assert p.constraints == (
        Constraint("os", "LIKE", "linux|ubuntu"),
        Constraint("rack", "UNLIKE", "r9"),
        Constraint("zone", "IS", "a"),
    )
    assert p.volumes == (
        Volume("/var/run/docker.sock", "/var/run/docker.sock", "RW"),
        Volume("/cache", "/cache", "RO"),
    )
    assert p.env == (("GOCD_AGENT_JVM_OPTS", "-Xmx1g"),)
    assert (p.network, p.containerizer) == ("bridge", "mesos")


def test_profile_problems_all_reported():
    text = (
        MINIMAL
        + """
min = 4
max = 2
constraints = os:NEAR:linux, rack:LIKE:(
volumes = relative:/x
[[[env]]]
GO_SERVER_URL = http://other/go
[[bad name!]]
image = y
"""
    )
    problems = problems_of(text)
    assert "test.ini: [profiles][linux] min: 4 is greater than max (2)" in problems
    assert any("constraints" in p and "NEAR" in p for p in problems)
    assert any("constraints" in p and "bad regular expression" in p for p in problems)
    assert any("volumes" in p and "relative:/x" in p for p in problems)
    assert "test.ini: [profiles][linux][env] GO_SERVER_URL: set by gocd-mesos itself; remove it" in problems
    assert any("[profiles][bad name!]" in p for p in problems)


def test_render_masks_and_shows_effective_values():
    s = load_text(MINIMAL, {"GOCD_MESOS_GOCD_TOKEN": "tok-123456"})
    out = config.render(s)
    assert "tok-123456" not in out and "k-123" not in out
    assert "token = ****" in out and "auto_register_key = ****" in out
    assert "poll_interval = 10" in out and "[[linux]]" in out


def test_unreadable_file():
    with pytest.raises(ConfigError) as info:
        config.load("/nonexistent/gocd-mesos.ini")
    assert info.value.problems[0].startswith("/nonexistent/gocd-mesos.ini: cannot read")


def test_a_file_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "gocd-mesos.ini"
    path.write_bytes(MINIMAL.encode() + "# café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert info.value.problems == (
        f"{path}: cannot read: not UTF-8 text (byte {len(MINIMAL) + 5}: invalid continuation byte)",
    )


# Found by the fault campaign's fuzzing (bench/faults): an unquoted comma makes configobj read a
# list, which failed the key's check and was reported, and then crashed a later step with a
# TypeError; a NUL in a file name crashed open() with a ValueError.
@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("gocd", "password_file"),
        ("gocd", "token_file"),
        ("gocd", "ca_bundle"),
        ("mesos", "secret_file"),
        ("mesos", "ca_bundle"),
        ("agents", "auto_register_key_file"),
        ("http", "password_file"),
        ("http", "token_file"),
    ],
)
def test_a_file_key_with_a_comma_is_a_problem_not_a_crash(section, key):
    problems = problems_of(with_key(section, f"{key} = secret, key"))
    assert f"test.ini: [{section}] {key}: \"['secret', 'key']\" is of the wrong type" in problems
    with pytest.raises(ConfigError):
        config.from_dict({section: {key: ["secret", "key"]}})


def test_a_nul_in_a_secret_file_name_is_a_problem_not_a_crash():
    (problem,) = [p for p in problems_of(with_key("gocd", "token_file = a\x00b")) if "token_file" in p]
    assert problem.startswith("test.ini: [gocd] token_file: cannot read ") and "null" in problem


def test_user_network_needs_a_name():
    problems = problems_of(MINIMAL + "network = user\n")
    assert problems == ["test.ini: [profiles][linux] network_name: required with network = user"]
    problems = problems_of(MINIMAL + "network_name = ci-net\n")
    assert problems == ["test.ini: [profiles][linux] network_name: only used with network = user"]
    assert load_text(MINIMAL + "network = user\nnetwork_name = ci-net\n").profiles[0].network_name == "ci-net"


HUGE = "1" + "0" * 305  # finite as a float, infinite once multiplied by a unit


@pytest.mark.parametrize(
    ("parse", "value"),
    [
        *((parse, float(v)) for parse in (parse_duration, parse_memsize) for v in ("inf", "-inf", "nan")),
        (parse_duration, "9" * 400),
        (parse_memsize, "9" * 400),
        pytest.param(parse_duration, HUGE + "d", id="1e305d"),
        pytest.param(parse_memsize, HUGE + "T", id="1e305T"),
    ],
)
def test_non_finite_durations_and_memsizes_are_refused(parse, value):
    with pytest.raises(ValueError, match="not a finite number"):
        parse(value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cpus", "inf"),
        ("cpus", "-inf"),
        ("cpus", "nan"),
        ("cpus", "Infinity"),
        ("cpus", "1e999"),
        pytest.param("mem", "9" * 400, id="mem-400-digits"),
        pytest.param("disk", HUGE + "T", id="disk-1e305T"),
        pytest.param("idle_timeout", HUGE + "d", id="idle_timeout-1e305d"),
    ],
)
def test_non_finite_profile_values_are_refused(key, value):
    (problem,) = problems_of(MINIMAL + f"{key} = {value}\n")
    assert problem == f'test.ini: [profiles][linux] {key}: "{value}" is not a finite number'


def with_key(section: str, line: str) -> str:
    """MINIMAL with ``line`` added to ``[section]``, or to its ``[[linux]]`` profile."""
    if section == "linux":
        return MINIMAL + line + "\n"
    if f"\n[{section}]\n" in MINIMAL:
        return MINIMAL.replace(f"\n[{section}]\n", f"\n[{section}]\n{line}\n", 1)
    return MINIMAL + f"[{section}]\n{line}\n"


@pytest.mark.parametrize(
    ("section", "line", "problem"),
    [
        ("gocd", "poll_interval = 0", '[gocd] poll_interval: "0" is too short (must be at least 1s)'),
        ("gocd", "poll_interval = 500ms", '[gocd] poll_interval: "500ms" is too short (must be at least 1s)'),
        ("gocd", "timeout = 0", '[gocd] timeout: "0" is too short (must be at least 1s)'),
        (
            "mesos",
            "failover_timeout = 0",
            '[mesos] failover_timeout: "0" is too short (must be greater than 0)',
        ),
        (
            "agents",
            "register_timeout = 0s",
            '[agents] register_timeout: "0s" is too short (must be greater than 0)',
        ),
        (
            "judge",
            "backoff_initial = 0",
            '[judge] backoff_initial: "0" is too short (must be greater than 0)',
        ),
        (
            "judge",
            "max_launch_per_cycle = 0",
            '[judge] max_launch_per_cycle: "0" is too small (must be at least 1)',
        ),
        ("linux", "mem = 0", '[profiles][linux] mem: "0" is too small (must be greater than 0)'),
        ("linux", "min = -1", '[profiles][linux] min: "-1" is too small (must be at least 0)'),
        ("linux", "max = -1", '[profiles][linux] max: "-1" is too small (must be at least 0)'),
        ("linux", "max_jobs = -1", '[profiles][linux] max_jobs: "-1" is too small (must be at least 0)'),
    ],
)
def test_values_that_would_break_the_daemon_are_refused_with_their_range(section, line, problem):
    assert problems_of(with_key(section, line)) == [f"test.ini: {problem}"]


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ("gocd", "poll_interval = 1s"),
        ("gocd", "timeout = 1"),
        ("gocd", "max_backoff = 0"),
        ("gocd", "backlog = feed"),
        ("gocd", "backlog = dashboard"),
        ("mesos", "refuse_seconds = 0"),
        ("linux", "idle_timeout = 0"),
        ("linux", "disk = 0"),
        ("linux", "min = 0"),
        ("linux", "max = 0"),
        ("linux", "max_jobs = 0"),
        ("linux", "mem = 1"),
        ("judge", "stale_after = 11s"),
        ("judge", "backoff_initial = 1s\nbackoff_max = 1s"),
    ],
)
def test_meaningful_edge_values_are_accepted(section, line):
    assert load_text(with_key(section, line))


@pytest.mark.parametrize(
    ("poll_interval", "stale_after", "shown"),
    [("10s", "0", "0s"), ("10s", "10s", "10s"), ("1m", "30s", "30s")],
)
def test_stale_after_must_exceed_the_poll_interval(poll_interval, stale_after, shown):
    text = with_key("gocd", f"poll_interval = {poll_interval}") + f"[judge]\nstale_after = {stale_after}\n"
    poll = f"{parse_duration(poll_interval):g}s"
    assert problems_of(text) == [
        f"test.ini: [judge] stale_after: {shown} must be greater than [gocd] poll_interval ({poll}): "
        "GoCD data ages that much between two polls, so it would count as stale in normal operation"
    ]


def test_agents_interval_is_the_poll_interval_unless_set():
    s = load_text(MINIMAL)
    assert (s.gocd.agents_interval, s.gocd.agents_every) == (None, 10.0)
    assert "agents_interval = (not set)" in config.render(s)
    assert load_text(with_key("gocd", "poll_interval = 20s")).gocd.agents_every == 20.0
    s = load_text(with_key("gocd", "agents_interval = 45s"))
    assert (s.gocd.poll_interval, s.gocd.agents_interval, s.gocd.agents_every) == (10.0, 45.0, 45.0)
    assert GoCDSettings(url="http://g/go", poll_interval=3).agents_every == 3


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ("agents_interval = 500ms", '[gocd] agents_interval: "500ms" is too short (must be at least 1s)'),
        (
            "agents_interval = 5s",
            "[gocd] agents_interval: 5s is shorter than poll_interval (10s): the agents are read at most "
            "once a poll (leave it out to read them at every poll)",
        ),
        (
            "agents_interval = 1m",
            "[judge] stale_after: 60s must be greater than [gocd] agents_interval (60s): the agents list "
            "ages that much between two reads, so it would count as stale in normal operation",
        ),
    ],
)
def test_agents_interval_problems(lines, problem):
    text = with_key("gocd", lines) + "[judge]\nstale_after = 1m\n"
    assert problems_of(text) == [f"test.ini: {problem}"]


def test_backoff_max_below_backoff_initial_says_the_range():
    text = with_key("judge", "backoff_initial = 1m\nbackoff_max = 30s")
    assert problems_of(text) == [
        "test.ini: [judge] backoff_max: 30s is smaller than backoff_initial (60s); must be at least backoff_initial"
    ]


def test_range_and_cross_key_problems_join_every_other_problem_in_one_run():
    text = """
[gocd]
url = https://gocd.example.com/go
poll_interval = 0
timeout = 0
pol_interval = 10s
[mesos]
master = http://127.0.0.1:5050
[agents]
auto_register_key = k-123
[profiles]
[[linux]]
image = i
cpus = inf
mem = 0
min = 3
max = 2
[judge]
stale_after = 0
backoff_initial = 1m
backoff_max = 30s
"""
    assert sorted(problems_of(text)) == sorted(
        [
            'test.ini: [gocd] poll_interval: "0" is too short (must be at least 1s)',
            'test.ini: [gocd] timeout: "0" is too short (must be at least 1s)',
            "test.ini: [gocd] pol_interval: unknown key (did you mean 'poll_interval'?)",
            'test.ini: [profiles][linux] cpus: "inf" is not a finite number',
            'test.ini: [profiles][linux] mem: "0" is too small (must be greater than 0)',
            "test.ini: [profiles][linux] min: 3 is greater than max (2)",
            "test.ini: [judge] stale_after: 0s must be greater than [gocd] poll_interval: "
            "GoCD data ages that much between two polls, so it would count as stale in normal operation",
            "test.ini: [judge] backoff_max: 30s is smaller than backoff_initial (60s); must be at least backoff_initial",
        ]
    )


@pytest.mark.parametrize("name", ["büild", "-linux", pytest.param("a" * 64, id="64-chars"), "bad name!"])
def test_a_bad_profile_name_says_exactly_what_is_allowed(name):
    text = MINIMAL.replace("[[linux]]", f"[[{name}]]")
    assert problems_of(text) == [
        f"test.ini: [profiles][{name}]: profile name must be ASCII letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, at most 63 characters"
    ]


@pytest.mark.parametrize("name", [pytest.param("a" * 63, id="63-chars"), "Linux_Big.2-x", "7"])
def test_good_profile_names(name):
    assert load_text(MINIMAL.replace("[[linux]]", f"[[{name}]]")).profiles[0].name == name


@pytest.mark.parametrize(
    ("section", "line", "problem"),
    [
        ("mesos", "driver = mesoz", '[mesos] driver: "mesoz" is not one of: builtin, pymesos'),
        ("gocd", "backlog = xml", '[gocd] backlog: "xml" is not one of: auto, feed, dashboard'),
        (
            "linux",
            "containerizer = podman",
            '[profiles][linux] containerizer: "podman" is not one of: docker, mesos',
        ),
        (
            "linux",
            "network = overlay",
            '[profiles][linux] network: "overlay" is not one of: host, bridge, none, user',
        ),
    ],
)
def test_an_unknown_option_lists_the_valid_values(section, line, problem):
    assert problems_of(with_key(section, line)) == [f"test.ini: {problem}"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("linux", "linux"),
        ("Linux_Big", "linux-big"),
        ("linux-big", "linux-big"),
        ("docker.large-2", "docker-large-2"),
        ("_x__y_", "x-y"),
        ("build-agents-ubuntu-2404", "build-agents-ubuntu-"),
        ("abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrst"),
        ("___", "agent"),
        ("büild", "b-ild"),
    ],
)
def test_profile_slug_names_the_profile_in_task_ids(name, slug):
    assert config.Profile(name=name, image="i").slug == slug


LINUX = config.Profile(name="linux", image="i")
DOCKER2 = config.Profile(name="Docker_2-large", image="i")
LONG = config.Profile(name="build-agents-ubuntu-2404-large", image="i")
PROFILES = (LINUX, DOCKER2, LONG)


@pytest.mark.parametrize(
    ("task_id", "profile"),
    [
        ("gocd-mesos-linux-0a1b2c3d", LINUX),
        ("gocd-mesos-docker-2-large-deadbeef", DOCKER2),
        ("gocd-mesos-build-agents-ubuntu--12345678", LONG),
        ("ci-linux-0a1b2c3d", None),  # another prefix
        ("gocd-mesos-linux", None),  # no hex suffix
        ("gocd-mesos-linux-0a1b2c3", None),  # 7 hex chars
        ("gocd-mesos-linux-0A1B2C3D", None),  # upper-case hex is not ours
        ("gocd-mesos-linux-0a1b2c3dd", None),  # 9 hex chars
        ("gocd-mesos--0a1b2c3d", None),  # empty slug
        ("gocd-mesos-windows-0a1b2c3d", None),  # no such profile
        ("gocd-mesos-0a1b2c3d", None),  # only the suffix
    ],
)
def test_profile_for_task(task_id, profile):
    assert config.profile_for_task(task_id, "gocd-mesos-", PROFILES) == profile


@pytest.mark.parametrize(
    ("first", "second", "slug"),
    [
        ("Linux_Big", "linux-big", "linux-big"),
        ("build-agents-ubuntu-2404", "build-agents-ubuntu-2204", "build-agents-ubuntu-"),
    ],
)
def test_two_profiles_may_not_share_a_slug(first, second, slug):
    text = MINIMAL.replace("[[linux]]", f"[[{first}]]") + f"[[{second}]]\nimage = j\n"
    assert problems_of(text) == [
        f'test.ini: [profiles][{second}]: same task id slug "{slug}" as [profiles][{first}]; '
        "gocd-mesos recognises a profile's agents from the slug in their task id (the name in lower "
        "case, other characters than a-z and 0-9 as '-', at most 20 characters), so rename one"
    ]


def test_a_shared_slug_is_reported_with_every_other_problem():
    text = MINIMAL + "[[Linux]]\nimage = j\ncpus = 0\n[[LINUX]]\nimage = k\n"
    assert problems_of(text) == [
        'test.ini: [profiles][Linux] cpus: "0" must be greater than 0',
        'test.ini: [profiles][Linux]: same task id slug "linux" as [profiles][linux]; '
        "gocd-mesos recognises a profile's agents from the slug in their task id (the name in lower "
        "case, other characters than a-z and 0-9 as '-', at most 20 characters), so rename one",
        'test.ini: [profiles][LINUX]: same task id slug "linux" as [profiles][linux]; '
        "gocd-mesos recognises a profile's agents from the slug in their task id (the name in lower "
        "case, other characters than a-z and 0-9 as '-', at most 20 characters), so rename one",
    ]


# --- settings built in code ---------------------------------------------------------


CODE = {
    "gocd": {"url": "http://gocd.example.com:8153/go", "poll_interval": 5},
    "mesos": {"master": "http://mesos.example.com:5050", "checkpoint": True},
    "agents": {"auto_register_key": "k"},
    "profiles": {
        "linux": {"image": "gocd/gocd-agent-ubuntu-24.04:v25.1.0", "resources": ["linux", "docker"]}
    },
    "state": {"dir": "/tmp/gocd-mesos-state"},
}


def test_settings_built_in_code_equal_the_same_ini_file():
    from actors.config import Settings, from_dict

    built = Settings.from_dict(CODE, environ={})
    ini = load_text(
        "[gocd]\nurl = http://gocd.example.com:8153/go\npoll_interval = 5s\n"
        "[mesos]\nmaster = http://mesos.example.com:5050\ncheckpoint = true\n"
        "[agents]\nauto_register_key = k\n"
        "[profiles]\n[[linux]]\nimage = gocd/gocd-agent-ubuntu-24.04:v25.1.0\nresources = linux, docker\n"
        "[state]\ndir = /tmp/gocd-mesos-state\n"
    )
    assert dataclasses.replace(built, source=ini.source) == ini
    assert from_dict(CODE, environ={}) == built
    assert built.gocd.poll_interval == 5.0 and built.profiles[0].resources == ("linux", "docker")


def test_settings_built_in_code_report_every_problem_as_a_file_does():
    from actors.config import Settings

    bad = {
        **CODE,
        "gocd": {"url": "http://gocd/", "poll_interval": 0, "pol_interval": 3},
        "judge": {"policy": 3},
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_dict(bad, source="embedded", environ={})
    problems = info.value.problems
    assert all(p.startswith("embedded: ") for p in problems)
    assert any("[gocd] url" in p for p in problems)
    assert any("[gocd] poll_interval" in p for p in problems)
    assert any("pol_interval: unknown key (did you mean 'poll_interval'?)" in p for p in problems)


@pytest.mark.parametrize(
    ("section", "key"), [("gocd", "timeout"), ("gocd", "poll_interval"), ("mesos", "failover_timeout")]
)
def test_a_duration_longer_than_a_year_is_refused(section, key):
    problems = problems_of(MINIMAL.replace(f"[{section}]\n", f"[{section}]\n{key} = 100000000d\n", 1))
    assert any(f"[{section}] {key}" in p and "must be at most 365d" in p for p in problems), problems


def test_status_server_credentials_come_from_files_and_never_show(tmp_path):
    (tmp_path / "http-pw").write_text("pw-S3cr3t-9f1c77\n")
    (tmp_path / "http-token").write_text("tok-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b\n")
    path = tmp_path / "gocd-mesos.ini"
    path.write_text(MINIMAL + "[http]\nusername = ops\npassword_file = http-pw\ntoken_file = http-token\n")
    s = config.load(str(path), environ={})
    assert s.http.username == "ops"
    assert s.http.password.reveal() == "pw-S3cr3t-9f1c77"
    assert s.http.token.reveal() == "tok-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b"
    out = config.render(s)
    assert "pw-S3cr3t" not in out and "tok-0a1b" not in out and "pw-S3cr3t" not in repr(s)
    assert "username = ops" in out and "password = ****" in out and "token = ****" in out
    assert ("[http] password_file", str(tmp_path / "http-pw")) in s.secret_files
    assert ("[http] token_file", str(tmp_path / "http-token")) in s.secret_files
    # None configured: every endpoint is open.
    s = load_text(MINIMAL)
    assert (s.http.username, bool(s.http.password), bool(s.http.token)) == ("", False, False)


def test_status_server_credential_problems(tmp_path):
    assert problems_of(MINIMAL + "[http]\nusername = ops\n") == [
        "test.ini: [http] password_file: username is set but no password_file"
    ]
    (tmp_path / "pw").write_text("x\n")
    assert problems_of(MINIMAL + f"[http]\npassword_file = {tmp_path / 'pw'}\n") == [
        "test.ini: [http] username: password_file is set but no username"
    ]
    (tmp_path / "empty").write_text("\n")
    assert problems_of(MINIMAL + f"[http]\ntoken_file = {tmp_path / 'empty'}\n") == [
        f"test.ini: [http] token_file: {tmp_path / 'empty'} is empty"
    ]
    (problem,) = problems_of(MINIMAL + "[http]\ntoken_file = /nonexistent/token\n")
    assert problem.startswith("test.ini: [http] token_file: cannot read /nonexistent/token")
    # The password itself has no key of its own: secrets stay out of the file.
    (problem,) = problems_of(MINIMAL + "[http]\npassword = inline\n")
    assert problem.startswith("test.ini: [http] password: unknown key")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("z1:2181/gocd-mesos", "z1:2181/gocd-mesos"),
        ("z1:2181, z2:2181/gocd/mesos/", "z1:2181,z2:2181/gocd/mesos"),
    ],
)
def test_ha_zookeeper_forms(value, expected):
    assert load_text(MINIMAL + f"\n[ha]\nzookeeper = {value}\n").ha.zookeeper == expected


def test_ha_is_off_by_default():
    assert load_text(MINIMAL).ha.zookeeper == ""


@pytest.mark.parametrize("value", ["z1:2181", "z1/path", "zk://z1:2181/p", "z1:2181,/p", "z1:2181/"])
def test_bad_ha_zookeeper(value):
    problems = problems_of(MINIMAL + f"\n[ha]\nzookeeper = {value}\n")
    assert len(problems) == 1 and problems[0].startswith("test.ini: [ha] zookeeper:")


WEBHOOK_SECRET = "whk-7e3a91c4b2d05f68a1c3e9b7d4f20a56"


def test_the_webhook_secret_comes_from_its_file_and_never_shows(tmp_path):
    (tmp_path / "webhook").write_text(f"  {WEBHOOK_SECRET}\n")
    path = tmp_path / "gocd-mesos.ini"
    path.write_text(with_key("gocd", "webhook_secret_file = webhook"))
    s = config.load(str(path), environ={})
    assert s.gocd.webhook_secret.reveal() == WEBHOOK_SECRET
    out = config.render(s)
    assert WEBHOOK_SECRET not in out + repr(s) and "webhook_secret = ****" in out
    assert ("[gocd] webhook_secret_file", str(tmp_path / "webhook")) in s.secret_files
    # None configured: no webhook.
    assert not load_text(MINIMAL).gocd.webhook_secret


@pytest.mark.parametrize(
    "secret", ["short-secret", "has a space 0123456789", "slash/0123456789abcdef", "é" * 20]
)
def test_a_webhook_secret_that_cannot_be_a_url_path_segment_is_refused(tmp_path, secret):
    (tmp_path / "webhook").write_text(secret + "\n")
    problems = problems_of(with_key("gocd", f"webhook_secret_file = {tmp_path / 'webhook'}"))
    assert problems == [
        "test.ini: [gocd] webhook_secret_file: the secret must be at least 16 characters of A-Z, a-z, "
        "0-9, '-', '_', '.' or '~' (it is part of the webhook's URL); e.g. openssl rand -hex 32"
    ]
    assert secret not in problems[0]


def test_webhook_secret_file_problems(tmp_path):
    (tmp_path / "empty").write_text("\n")
    assert problems_of(with_key("gocd", f"webhook_secret_file = {tmp_path / 'empty'}")) == [
        f"test.ini: [gocd] webhook_secret_file: {tmp_path / 'empty'} is empty"
    ]
    (problem,) = problems_of(with_key("gocd", "webhook_secret = inline-secret-0123456789"))
    assert problem.startswith("test.ini: [gocd] webhook_secret: unknown key")
