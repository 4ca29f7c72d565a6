"""The one parser of Mesos master strings, shared by config and the builtin driver."""

from __future__ import annotations

import pytest

from actors.mesos.masters import parse_masters

MASTER_HINT = "is not a Mesos master (use http(s)://host:port, a comma-separated list, or zk://…/mesos)"
ZK_HINT = "is not a zk:// URL (use zk://host:2181,host2:2181/mesos)"


@pytest.mark.parametrize(
    ("text", "pymesos_forms", "expected"),
    [
        ("http://m1:5050", False, ("http://m1:5050",)),
        (" http://m1:5050 , https://m2:5050 ", False, ("http://m1:5050", "https://m2:5050")),
        ("HTTP://m1:5050,,http://m2:5050", False, ("http://m1:5050", "http://m2:5050")),
        ("http://[::1]:5050/ignored/path", False, ("http://[::1]:5050",)),
        ("zk://z1:2181,z2:2181/mesos", False, ("zk://z1:2181,z2:2181/mesos",)),
        ("m1:5050", True, ("http://m1:5050",)),
        ("m1:5050, https://m2:5050", True, ("http://m1:5050", "https://m2:5050")),
        ("zoo://z1:2181/mesos", True, ("zoo://z1:2181/mesos",)),
        ("zk://z1:2181/mesos", True, ("zk://z1:2181/mesos",)),
    ],
)
def test_master_strings(text, pymesos_forms, expected):
    assert parse_masters(text, pymesos_forms=pymesos_forms) == expected


@pytest.mark.parametrize(
    ("text", "pymesos_forms", "message"),
    [
        ("", False, "no Mesos master given"),
        (" , ", True, "no Mesos master given"),
        ("m1:5050", False, f'"m1:5050" {MASTER_HINT}'),
        ("http://m1", False, f'"http://m1" {MASTER_HINT}'),
        ("http://m1", True, f'"http://m1" {MASTER_HINT}'),
        ("ftp://m:1", True, f'"ftp://m:1" {MASTER_HINT}'),
        ("http://m:99999", False, f'"http://m:99999" {MASTER_HINT}'),
        ("http://m1:5050, m2", True, f'"m2" {MASTER_HINT}'),
        ("zk://z1:2181", False, f'"zk://z1:2181" {ZK_HINT}'),
        ("zk:///mesos", True, f'"zk:///mesos" {ZK_HINT}'),
        ("zoo://z1:2181/mesos", False, f'"zoo://z1:2181/mesos" {MASTER_HINT}'),
    ],
)
def test_bad_master_strings(text, pymesos_forms, message):
    with pytest.raises(ValueError) as info:
        parse_masters(text, pymesos_forms=pymesos_forms)
    assert str(info.value) == message
