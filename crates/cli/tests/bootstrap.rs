//! `sluice bootstrap` against the emulator, as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn sluice(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(sluice_testkit::repo_root()).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("SLUICE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn bootstrap_twice_changes_nothing_the_second_time() {
    let env = sluice_testkit::unique("boot");
    let vars = sluice_testkit::child_env();
    let first = sluice(&["bootstrap", "--env", &env], &vars);
    assert!(first.status.success(), "{}", text(&first));
    let out = text(&first);
    for resource in [
        format!("created   s3 bucket sluice-{env}-raw"),
        format!("created   dynamodb table sluice-{env}-work"),
        format!("created   sns topic sluice-{env}-notifications"),
        "created   table spec loans".to_owned(),
        format!("created   model s3://sluice-{env}-lake/config/models/aspen.json"),
        format!(
            "created   glue table sluice_{}.aspen_model_role_profile",
            env.replace('-', "_")
        ),
        format!(
            "created   glue table sluice_{}.loans",
            env.replace('-', "_")
        ),
    ] {
        assert!(out.contains(&resource), "missing {resource:?} in:\n{out}");
    }

    let second = sluice(&["bootstrap", "--env", &env, "--json"], &vars);
    assert!(second.status.success(), "{}", text(&second));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.len() > 20, "{report}");
    let changed: Vec<_> = steps
        .iter()
        .filter(|s| s["change"] != "unchanged")
        .collect();
    assert!(changed.is_empty(), "second run changed: {changed:?}");
}

#[test]
fn bootstrap_refuses_a_real_account_unless_told() {
    let out = sluice(
        &["bootstrap", "--env", "refused"],
        &[("AWS_REGION", "us-east-1".into())],
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("no endpoint override is set"), "{msg}");
    assert!(msg.contains("--real-account"), "{msg}");
}
