"""Inventory.load and check(): typed findings for the example, the fixtures and AWS JSON, and
every problem of an invalid inventory on the InvalidInput it raises. No server is needed."""

from __future__ import annotations

from pathlib import Path

import pytest

import rds_pg

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "inventory"


def test_the_example_is_clean_with_and_without_aws_json():
    inventory = rds_pg.Inventory.load(ROOT / "examples" / "inventory.toml")
    assert inventory.client_names == ["acme", "globex"]
    assert inventory.instance_names == ["acme-staging", "acme-prod", "globex-prod"]
    assert inventory.project_names == ["shop", "shop-staging", "blog", "maps"]
    assert inventory.backup_retention_days == 14
    report = inventory.check()
    assert report.clean and len(report) == 0 and report.findings == []
    assert report.aws_db_instances is None
    assert (report.instances, report.projects) == (3, 4)
    aws = [ROOT / "examples" / "aws" / "db-instances.json", str(ROOT / "examples" / "aws" / "security-groups.json")]
    report = inventory.check(aws_json=aws)
    assert report.clean, [str(f) for f in report]
    assert report.aws_db_instances == 3
    assert "clean; 3 instances, 4 projects checked against 3 DB instances" in str(report)


def test_a_policy_finding_is_typed_with_entries_and_lines():
    path = FIXTURES / "one-client-per-instance.toml"
    report = rds_pg.Inventory.load(path).check()
    assert not report.clean
    (finding,) = list(report)
    assert isinstance(finding, rds_pg.Finding)
    assert finding.rule == "one-client-per-instance"
    assert finding.severity == "error"
    assert '"globex"' in finding.message
    assert "move project" in finding.fix
    kinds = [(o.kind, o.name, o.location.line, o.location.column) for o in finding.objects]
    assert kinds == [("project", "portal", 31, 10), ("instance", "acme-prod", 12, 10)]
    location = finding.objects[0].location
    assert isinstance(location, rds_pg.Location)
    assert location.file == str(path) and location.pointer is None
    assert str(location) == f"{path}:31:10"
    assert str(finding).startswith("error   one-client-per-instance: ")


def test_an_aws_finding_points_into_the_json():
    aws = FIXTURES / "aws"
    report = rds_pg.Inventory.load(aws / "inventory.toml").check(
        aws_json=[aws / "db-instances.json", aws / "security-groups-aws-ingress-cidr.json"]
    )
    (finding,) = report.findings
    assert finding.rule == "aws-ingress-from-security-groups"
    assert "203.0.113.0/24" in finding.message
    group = finding.objects[-1]
    assert (group.kind, group.name) == ("security_group", "sg-0c1d2e3f4a5b6c7d8")
    assert group.location.pointer == "/SecurityGroups/0/IpPermissions/1"
    assert group.location.line is None


def test_an_invalid_inventory_raises_invalid_input_with_every_problem(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(
        '[policy]\nbackup_retention_days = -1\n\n[[client]]\nname = "acme"\naccount_id = "12"\nextra = 1\n'
    )
    with pytest.raises(rds_pg.InvalidInput) as caught:
        rds_pg.Inventory.load(path)
    problems = caught.value.problems
    assert all(isinstance(p, rds_pg.InventoryProblem) for p in problems)
    assert [(p.location.line, p.location.column) for p in problems] == [(2, 25), (6, 14), (7, 1)]
    assert "out of range" in problems[0].message
    assert "unknown key `extra`" in problems[2].message
    assert f"inventory {path}: 3 problems" in str(caught.value)
    # Other invalid input has no problems list.
    with pytest.raises(rds_pg.InvalidInput) as caught:
        rds_pg.Inventory.load(FIXTURES / "same-region.toml").check(aws_json=[FIXTURES / "same-region.toml"])
    assert caught.value.problems is None


def test_from_str_names_the_text_and_missing_files_are_io_errors():
    with pytest.raises(rds_pg.InvalidInput) as caught:
        rds_pg.Inventory.from_str("[[client]]\n", "inline.toml")
    assert [str(p.location) for p in caught.value.problems] == ["inline.toml:1:1", "inline.toml:1:1"]
    with pytest.raises(rds_pg.IoError):
        rds_pg.Inventory.load(FIXTURES / "no-such.toml")
    inventory = rds_pg.Inventory.from_str((FIXTURES / "same-region.toml").read_text())
    assert inventory.source == "<string>"
    assert [f.rule for f in inventory.check()] == ["same-region"]
