//! End-to-end tests of `rds-pg fleet check` (no server): exit statuses 0, 1 and 2, the human
//! listing and the `--json` document, on the example inventory and the fixtures.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

mod common;
use common::Run;

fn workspace(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

fn fleet(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_rds-pg"))
        .arg("fleet")
        .args(args)
        .output()
        .expect("rds-pg runs");
    Run::from_output(out)
}

#[test]
fn the_example_is_clean_exit_0() {
    let example = workspace("examples/inventory.toml");
    let run = fleet(&["check", &example]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains("inventory.toml: clean; 3 instances, 4 projects checked"),
        "{}",
        run.stderr
    );

    let rds = workspace("examples/aws/db-instances.json");
    let groups = workspace("examples/aws/security-groups.json");
    let run = fleet(&[
        "check",
        &example,
        "--aws-json",
        &rds,
        "--aws-json",
        &groups,
        "--json",
    ]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["command"], "fleet check");
    assert_eq!(doc["clean"], true);
    assert_eq!(doc["instances"], 3);
    assert_eq!(doc["projects"], 4);
    assert_eq!(doc["aws_db_instances"], 3);
    assert_eq!(doc["findings"], serde_json::json!([]));
    assert_eq!(doc["errors"], serde_json::json!([]));
}

#[test]
fn a_finding_is_exit_1_with_rule_entries_lines_and_fix() {
    let fixture = workspace("tests/fixtures/inventory/separate-staging-production.toml");
    let run = fleet(&["check", &fixture]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "error   separate-staging-production: staging project \"shop-staging\" is on \
             production instance \"acme-prod\""
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("project \"shop-staging\" at ")
            && run
                .stderr
                .contains("separate-staging-production.toml:28:15"),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains("        fix: move project \"shop-staging\""));
    assert!(run.stderr.contains("1 finding (1 error, 0 warnings)"));

    let run = fleet(&["check", &fixture, "--json"]);
    assert_eq!(run.status, 1);
    let doc = run.json();
    assert_eq!(doc["clean"], false);
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(f["rule"], "separate-staging-production");
    assert_eq!(f["severity"], "error");
    assert!(f["fix"].as_str().unwrap().contains("staging instance"));
    let objects = f["objects"].as_array().unwrap();
    assert_eq!(objects[0]["kind"], "project");
    assert_eq!(objects[0]["name"], "shop-staging");
    assert_eq!(objects[0]["file"], fixture);
    assert_eq!(objects[0]["line"], 28);
    assert_eq!(objects[0]["column"], 15);
    assert_eq!(objects[0]["pointer"], Value::Null);
    assert_eq!(objects[1]["kind"], "instance");
    assert_eq!(objects[1]["line"], 9);
}

#[test]
fn an_aws_finding_names_the_json_value() {
    let inventory = workspace("tests/fixtures/inventory/aws/inventory.toml");
    let rds = workspace("tests/fixtures/inventory/aws/db-instances-aws-not-public.json");
    let groups = workspace("tests/fixtures/inventory/aws/security-groups.json");
    let run = fleet(&[
        "check",
        &inventory,
        "--aws-json",
        &rds,
        "--aws-json",
        &groups,
        "--json",
    ]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    let doc = run.json();
    let f = &doc["findings"][0];
    assert_eq!(doc["findings"].as_array().unwrap().len(), 1);
    assert_eq!(f["rule"], "aws-not-public");
    assert_eq!(f["objects"][1]["kind"], "db_instance");
    assert_eq!(f["objects"][1]["file"], rds);
    assert_eq!(
        f["objects"][1]["pointer"],
        "/DBInstances/0/PubliclyAccessible"
    );
    assert_eq!(f["objects"][1]["line"], Value::Null);
}

#[test]
fn an_invalid_inventory_is_exit_2_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.toml");
    std::fs::write(
        &path,
        "[policy]\nbackup_retention_days = 36\n\n[[client]]\nname = \"acme\"\naccount_id = 1\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let run = fleet(&["check", &path]);
    assert_eq!(run.status, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "error: fleet check {path}: inventory {path}: 2 problems"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!(
        "  {path}:2:25: [policy]: backup_retention_days = 36"
    )));
    assert!(run
        .stderr
        .contains(&format!("  {path}:6:14: client \"acme\": invalid type")));

    let run = fleet(&["check", &path, "--json"]);
    assert_eq!(run.status, 2);
    let doc = run.json();
    assert_eq!(doc["clean"], Value::Null);
    assert_eq!(doc["findings"], serde_json::json!([]));
    let error = &doc["errors"][0];
    assert_eq!(error["kind"], "invalid_input");
    let problems = error["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0]["line"], 2);
    assert_eq!(problems[0]["column"], 25);
    assert_eq!(problems[1]["line"], 6);
    assert!(problems[1]["message"]
        .as_str()
        .unwrap()
        .contains("expected a string"));
}

#[test]
fn unreadable_input_and_usage_errors_are_exit_2() {
    let missing = fleet(&["check", "/nonexistent/fleet.toml"]);
    assert_eq!(missing.status, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("reading inventory /nonexistent/fleet.toml"),
        "{}",
        missing.stderr
    );

    let example = workspace("examples/inventory.toml");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"DBInstances\": [\n  {\"DBInstanceIdentifier\": \"x\",}\n]}\n",
    )
    .unwrap();
    let run = fleet(&[
        "check",
        &example,
        "--aws-json",
        &bad.display().to_string(),
        "--json",
    ]);
    assert_eq!(run.status, 2, "{}", run.stderr);
    let doc = run.json();
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bad.json:2:"),
        "{doc}"
    );

    let run = fleet(&["check", &example, "--aws-json", "/nonexistent/rds.json"]);
    assert_eq!(run.status, 2, "{}", run.stderr);

    let usage = fleet(&["check"]);
    assert_eq!(usage.status, 2);
    assert!(usage.stderr.contains("INVENTORY"), "{}", usage.stderr);
    let usage = fleet(&["check", &example, "--no-such-option"]);
    assert_eq!(usage.status, 2);
}
