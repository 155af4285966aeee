//! Invariants of terraform/, checked offline (no Terraform binary can be installed here): the
//! files parse (with line and column on error), every function is deployed with its own role
//! and artifact, the state machine gets every placeholder, every function gets every
//! environment variable its configuration reads, IAM grants no wildcard action and uses "*"
//! resources only where AWS requires them (with a comment saying why), and the schedule and
//! the S3 rule start the state machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use hcl::{Block, Body, Expression};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct File {
    name: String,
    text: String,
    body: Body,
}

fn terraform() -> Vec<File> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(root().join("terraform"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap();
        let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.push(File {
            name: p.file_name().unwrap().to_string_lossy().into_owned(),
            text,
            body,
        });
    }
    assert!(out.len() >= 10, "terraform/ has {} files", out.len());
    out
}

fn blocks<'a>(files: &'a [File], kind: &str, labels: &[&str]) -> Vec<&'a Block> {
    files
        .iter()
        .flat_map(|f| f.body.blocks())
        .filter(|b| {
            b.identifier() == kind
                && b.labels()
                    .iter()
                    .zip(labels)
                    .all(|(l, want)| l.as_str() == *want)
        })
        .collect()
}

fn one<'a>(files: &'a [File], kind: &str, labels: &[&str]) -> &'a Block {
    let found = blocks(files, kind, labels);
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {labels:?}, found {}",
        found.len()
    );
    found[0]
}

fn attr<'a>(b: &'a Body, key: &str) -> Option<&'a Expression> {
    b.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn text(e: &Expression) -> String {
    hcl::format::to_string(e).unwrap_or_default()
}

fn object_keys(e: &Expression) -> BTreeSet<String> {
    match e {
        Expression::Object(o) => o
            .keys()
            .map(|k| match k {
                hcl::ObjectKey::Identifier(i) => i.to_string(),
                hcl::ObjectKey::Expression(e) => text(e).trim_matches('"').to_owned(),
                other => format!("{other:?}"),
            })
            .collect(),
        other => panic!("expected an object, got {}", text(other)),
    }
}

fn local<'a>(files: &'a [File], name: &str) -> &'a Expression {
    blocks(files, "locals", &[])
        .into_iter()
        .find_map(|b| attr(b.body(), name))
        .unwrap_or_else(|| panic!("no local.{name}"))
}

#[test]
fn every_function_has_its_lambda_artifact_and_own_role() {
    let tf = terraform();
    let functions = object_keys(local(&tf, "functions"));
    assert_eq!(
        functions,
        sluice_functions::registry::names()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>(),
        "local.functions must list exactly the functions of sluice_functions::registry"
    );
    // Each function's description is the registry's.
    let Expression::Object(entries) = local(&tf, "functions") else {
        panic!("local.functions is not an object");
    };
    for (key, value) in entries {
        let name = match key {
            hcl::ObjectKey::Identifier(i) => i.to_string(),
            hcl::ObjectKey::Expression(e) => text(e).trim_matches('"').to_owned(),
            other => format!("{other:?}"),
        };
        let Expression::Object(fields) = value else {
            panic!("local.functions[{name}] is not an object");
        };
        let description = fields
            .iter()
            .find(
                |(k, _)| matches!(k, hcl::ObjectKey::Identifier(i) if i.as_str() == "description"),
            )
            .map(|(_, v)| text(v).trim_matches('"').to_owned());
        let registered = sluice_functions::registry::FUNCTIONS
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.description.to_owned());
        assert_eq!(
            description, registered,
            "local.functions[{name}].description"
        );
    }
    let lambda = one(&tf, "resource", &["aws_lambda_function", "function"]).body();
    assert_eq!(text(attr(lambda, "for_each").unwrap()), "local.functions");
    assert!(text(attr(lambda, "function_name").unwrap()).contains("${each.key}"));
    assert!(text(attr(lambda, "filename").unwrap()).contains("/${each.key}/bootstrap.zip"));
    assert_eq!(
        text(attr(lambda, "role").unwrap()),
        "aws_iam_role.function[each.key].arn"
    );
    assert_eq!(
        text(attr(lambda, "architectures").unwrap())
            .split_whitespace()
            .collect::<String>(),
        "[\"arm64\"]"
    );
    assert_eq!(
        text(attr(lambda, "runtime").unwrap()),
        "\"provided.al2023\""
    );
    let role = one(&tf, "resource", &["aws_iam_role", "function"]).body();
    assert_eq!(text(attr(role, "for_each").unwrap()), "local.functions");
    // Each function's role gets its own policy document.
    let policy = one(&tf, "resource", &["aws_iam_role_policy", "function"]).body();
    let policy_expr = text(attr(policy, "policy").unwrap());
    let mut documents = BTreeSet::new();
    for f in &functions {
        let doc = f.replace('-', "_");
        assert!(
            policy_expr.contains(&format!("\"{f}\"")),
            "no policy entry for {f}"
        );
        assert!(
            policy_expr.contains(&format!("data.aws_iam_policy_document.{doc}.json")),
            "{f} has no policy document of its own"
        );
        documents.insert(doc);
    }
    assert_eq!(documents.len(), functions.len());
}

#[test]
fn every_placeholder_of_every_definition_is_passed_by_templatefile() {
    let tf = terraform();
    let machines = blocks(&tf, "resource", &["aws_sfn_state_machine"]);
    let defs: Vec<PathBuf> = std::fs::read_dir(root().join("statemachine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    assert!(!defs.is_empty());
    for def in defs {
        let file = def.file_name().unwrap().to_string_lossy().into_owned();
        let asl = std::fs::read_to_string(&def).unwrap();
        let placeholders: BTreeSet<String> = asl
            .split("${")
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(p, _)| p.to_owned()))
            .collect();
        let call = machines
            .iter()
            .filter_map(|m| match attr(m.body(), "definition") {
                Some(Expression::FuncCall(f)) if f.name.to_string() == "templatefile" => Some(f),
                _ => None,
            })
            .find(|f| {
                f.args
                    .first()
                    .is_some_and(|a| text(a).contains(&format!("statemachine/{file}")))
            })
            .unwrap_or_else(|| {
                panic!("no aws_sfn_state_machine renders statemachine/{file} with templatefile()")
            });
        let passed = object_keys(&call.args[1]);
        let missing: Vec<_> = placeholders.difference(&passed).collect();
        assert!(
            missing.is_empty(),
            "statemachine/{file}: templatefile() does not pass {missing:?}"
        );
    }
}

#[test]
fn every_function_gets_every_variable_its_configuration_reads() {
    let tf = terraform();
    let lambda = one(&tf, "resource", &["aws_lambda_function", "function"]).body();
    let env = lambda
        .blocks()
        .find(|b| b.identifier() == "environment")
        .expect("an environment block");
    let variables = text(attr(env.body(), "variables").unwrap());
    assert!(
        variables.starts_with("merge(local.function_environment,"),
        "{variables}"
    );
    let set = object_keys(local(&tf, "function_environment"));
    for var in sluice_aws::names::ENV_VARS {
        assert!(
            set.contains(*var),
            "{var} is read by the functions but not set on them"
        );
    }
}

#[test]
fn iam_grants_no_wildcard_action_and_star_resources_only_where_aws_requires() {
    let tf = terraform();
    let mut problems = Vec::new();
    for f in &tf {
        for doc in f.body.blocks().filter(|b| {
            b.identifier() == "data"
                && b.labels()
                    .first()
                    .is_some_and(|l| l.as_str() == "aws_iam_policy_document")
        }) {
            let name = doc
                .labels()
                .get(1)
                .map(|l| l.as_str().to_owned())
                .unwrap_or_default();
            for st in doc
                .body()
                .blocks()
                .filter(|b| b.identifier() == "statement")
            {
                if let Some(actions) = attr(st.body(), "actions") {
                    let t = text(actions);
                    if t.contains('*') {
                        problems.push(format!("{}: {name}: wildcard action in {t}", f.name));
                    }
                }
            }
        }
        // "*" resources: the line before must say why AWS requires it.
        let lines: Vec<&str> = f.text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let compact = l.replace(' ', "");
            if compact.starts_with("resources=") && compact.contains("\"*\"") {
                let why = i > 0
                    && lines[i - 1].trim_start().starts_with('#')
                    && lines[i - 1].contains("requires \"*\"");
                if !why {
                    problems.push(format!(
                        "{}:{}: \"*\" resource without a comment saying why AWS requires it",
                        f.name,
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_schedules_start_their_state_machines_and_s3_events_register_work() {
    let tf = terraform();
    let rules = blocks(&tf, "resource", &["aws_cloudwatch_event_rule"]);
    let targets = blocks(&tf, "resource", &["aws_cloudwatch_event_target"]);
    let target_of = |rule: &str| {
        targets
            .iter()
            .find(|t| {
                let r = text(attr(t.body(), "rule").unwrap());
                r == format!("aws_cloudwatch_event_rule.{rule}.name")
                    || r == format!("aws_cloudwatch_event_rule.{rule}[each.key].name")
            })
            .unwrap_or_else(|| panic!("rule {rule} has no target"))
    };
    let mut schedules = BTreeSet::new();
    for r in &rules {
        let name = r.labels()[1].as_str();
        if attr(r.body(), "schedule_expression").is_some() {
            let t = target_of(name);
            assert!(
                attr(t.body(), "role_arn").is_some(),
                "rule {name} needs a role to start executions"
            );
            schedules.insert((name.to_owned(), text(attr(t.body(), "arn").unwrap())));
        }
        if attr(r.body(), "event_pattern")
            .is_some_and(|p| text(p).contains("Object Created") && text(p).contains("aws.s3"))
        {
            // Uploads register work through the function: no execution per upload.
            assert_eq!(
                text(attr(target_of(name).body(), "arn").unwrap()),
                "aws_lambda_function.function[\"queue-generator\"].arn",
                "the S3 rule"
            );
        }
    }
    let ingest = "aws_sfn_state_machine.ingest.arn".to_owned();
    let want: BTreeSet<(String, String)> = [
        ("hourly".to_owned(), ingest.clone()),
        ("drain".to_owned(), ingest.clone()),
        ("reconcile".to_owned(), ingest.clone()),
        ("pull".to_owned(), ingest),
        (
            "monthly_extract".to_owned(),
            "aws_sfn_state_machine.extract.arn".to_owned(),
        ),
    ]
    .into();
    assert_eq!(schedules, want);
}

/// Database sources: one rule per cadence the specs name (its runs say which cadence), and the
/// two functions that reach the databases may read those sources' secrets.
#[test]
fn database_sources_get_a_rule_per_cadence_and_their_secrets() {
    let tf = terraform();
    let rule = one(&tf, "resource", &["aws_cloudwatch_event_rule", "pull"]);
    assert_eq!(
        attr(rule.body(), "for_each").map(text).as_deref(),
        Some("local.pull_cadences")
    );
    let target = block_text(&tf, "resource \"aws_cloudwatch_event_target\" \"pull\"");
    assert!(
        target.contains(r#""detail": {"pull_every_minutes": ${each.key}}"#),
        "{target}"
    );
    let sources = block_text(&tf, "data \"aws_iam_policy_document\" \"database_sources\"");
    assert!(
        sources.contains("DatabaseSourceSecrets") && sources.contains("local.source_secrets"),
        "{sources}"
    );
    for name in ["queue_generator", "ingest"] {
        let doc = block_text(&tf, &format!("data \"aws_iam_policy_document\" \"{name}\""));
        assert!(
            doc.contains("data.aws_iam_policy_document.database_sources.json"),
            "{name}: {doc}"
        );
    }
    let cadences = text(local(&tf, "pull_cadences"));
    assert!(
        cadences.contains("every_minutes") && cadences.contains("!= 60"),
        "{cadences}"
    );
    // Freshness: an alarm per such dataset on the count of its items ingested (ingest's EMF).

    let alarm = one(&tf, "resource", &["aws_cloudwatch_metric_alarm", "stale"]).body();
    assert_eq!(
        attr(alarm, "for_each").map(text).as_deref(),
        Some("local.fresh_datasets")
    );
    assert_eq!(
        attr(alarm, "treat_missing_data").map(text).as_deref(),
        Some("\"breaching\"")
    );
    // The metric is ingest's EMF line: its namespace, name and dimensions.
    assert_eq!(
        attr(alarm, "namespace").map(text).as_deref(),
        Some(format!("\"{}\"", sluice_functions::metrics::NAMESPACE).as_str())
    );
    assert_eq!(
        attr(alarm, "metric_name").map(text).as_deref(),
        Some("\"ItemsIngested\"")
    );
    let ingest = std::fs::read_to_string(root().join("functions/src/ingest.rs")).unwrap();
    assert!(ingest.contains("Metric::count(\"ItemsIngested\", 1)"));
    let emf = sluice_functions::metrics::emf_line("e", "d", &[], 0);
    let dims = text(attr(alarm, "dimensions").unwrap());
    for d in ["Environment", "Dataset"] {
        assert!(
            emf.contains(&format!("\"{d}\"")) && dims.contains(d),
            "{dims}"
        );
    }
}

/// DMS writes what the change-log specs read: no header, `Op` on every line (full load
/// included), the commit timestamp column `sluice spec import-dms` names, under dms/; its
/// table mappings come from those specs; its role writes under dms/ only.
#[test]
fn dms_writes_the_files_the_change_log_specs_read() {
    let tf = terraform();
    let s3 = one(&tf, "resource", &["aws_dms_s3_endpoint", "raw"]).body();
    let setting = |k: &str| attr(s3, k).map(text).unwrap_or_default();
    assert_eq!(setting("add_column_name"), "false");
    assert_eq!(setting("include_op_for_full_load"), "true");
    assert_eq!(setting("data_format"), "\"csv\"");
    assert_eq!(setting("bucket_folder"), "\"dms\"");
    assert_eq!(
        setting("timestamp_column_name"),
        format!("\"{}\"", sluice_core::dms::DEFAULT_TIMESTAMP_COLUMN)
    );
    assert_eq!(setting("encryption_mode"), "\"SSE_KMS\"");
    let source = one(&tf, "resource", &["aws_dms_endpoint", "source"]).body();
    assert_eq!(
        attr(source, "ssl_mode").map(text).as_deref(),
        Some("\"require\"")
    );
    let config = one(&tf, "resource", &["aws_dms_replication_config", "sync"]).body();
    assert_eq!(
        attr(config, "table_mappings").map(text).as_deref(),
        Some("local.dms_table_mappings")
    );
    let tables = text(local(&tf, "dms_tables"));
    assert!(
        tables.contains("change_log") && tables.contains("\"dms/\""),
        "{tables}"
    );
    let policy = block_text(&tf, "data \"aws_iam_policy_document\" \"dms\"");
    assert!(policy.contains("/dms/*"), "{policy}");
}

/// On-call's saved Logs Insights queries exist and read fields the functions really log.
#[test]
fn the_saved_queries_read_what_the_functions_log() {
    let tf = terraform();
    for name in [
        "file_history",
        "execution_failure",
        "quarantined_today",
        "quarantined_by_reason",
    ] {
        one(&tf, "resource", &["aws_cloudwatch_query_definition", name]);
    }
    let ingest = std::fs::read_to_string(root().join("functions/src/ingest.rs")).unwrap();
    let quarantined = block_text(
        &tf,
        "resource \"aws_cloudwatch_query_definition\" \"quarantined_today\"",
    );
    assert!(quarantined.contains("\"item ingested\""), "{quarantined}");
    for field in ["rows_quarantined", "\"item ingested\""] {
        assert!(ingest.contains(field), "ingest no longer logs {field}");
    }
    // By reason: ingest's "rows quarantined" lines carry the column, the reason and the rows.
    let by_reason = block_text(
        &tf,
        "resource \"aws_cloudwatch_query_definition\" \"quarantined_by_reason\"",
    );
    for (query, logged) in [
        ("\"rows quarantined\"", "\"rows quarantined\""),
        ("fields.reason", "reason = "),
        ("fields.column", "column = "),
        ("fields.rows", "rows = "),
    ] {
        assert!(by_reason.contains(query), "{by_reason}");
        assert!(ingest.contains(logged), "ingest no longer logs {logged}");
    }
    // Every function's invocation span names the fields the queries show.
    let lib = std::fs::read_to_string(root().join("functions/src/lib.rs")).unwrap();
    for field in [
        "execution = ",
        "state = ",
        "item = ",
        "dataset = ",
        "key = ",
    ] {
        assert!(lib.contains(field), "the invocation span lacks {field}");
    }
    // Every Task passes its state's name (the span's `state`).
    for machine in ["ingest", "extract"] {
        let d: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root().join(format!("statemachine/{machine}.asl.json")))
                .unwrap(),
        )
        .unwrap();
        let text = d.to_string();
        let tasks = text.matches("\"Type\":\"Task\"").count();
        let named = text.matches("\"state.$\":\"$$.State.Name\"").count();
        assert_eq!(tasks, named, "{machine}: a Task without state.$");
    }
}

/// A rule that invokes a function needs that function's permission for that very rule, or
/// EventBridge's invocations are refused and the notice never goes out.
#[test]
fn every_rule_that_invokes_a_function_has_its_permission() {
    let tf = terraform();
    let targets = blocks(&tf, "resource", &["aws_cloudwatch_event_target"]);
    let permissions = blocks(&tf, "resource", &["aws_lambda_permission"]);
    let mut checked = 0;
    for t in &targets {
        let arn = text(attr(t.body(), "arn").unwrap());
        let Some(function) = arn
            .strip_prefix("aws_lambda_function.function[\"")
            .and_then(|r| r.strip_suffix("\"].arn"))
        else {
            continue;
        };
        let rule = text(attr(t.body(), "rule").unwrap());
        let rule_arn = rule.replace(".name", ".arn");
        let allowed = permissions.iter().any(|p| {
            let name = text(attr(p.body(), "function_name").unwrap());
            let for_each = attr(p.body(), "for_each").map(text).unwrap_or_default();
            let names_it = name.contains(&format!("function[\"{function}\"]"))
                || (name.contains("function[each.key]")
                    && for_each.contains(&format!("\"{function}\"")));
            names_it && text(attr(p.body(), "source_arn").unwrap()) == rule_arn
        });
        assert!(
            allowed,
            "{function} has no aws_lambda_permission for {rule_arn}"
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} function targets");
}

#[test]
fn the_database_end_is_encrypted_tls_only_private_and_reached_by_the_load_function_alone() {
    let tf = terraform();
    let cluster = one(&tf, "resource", &["aws_rds_cluster", "app"]).body();
    for (key, want) in [
        ("storage_encrypted", "true"),
        ("deletion_protection", "true"),
        ("manage_master_user_password", "true"),
        ("kms_key_id", "aws_kms_key.main.arn"),
        ("master_user_secret_kms_key_id", "aws_kms_key.main.arn"),
        (
            "vpc_security_group_ids",
            "[aws_security_group.database[0].id]",
        ),
    ] {
        assert_eq!(
            attr(cluster, key)
                .map(|e| text(e).split_whitespace().collect::<String>())
                .as_deref(),
            Some(want),
            "aws_rds_cluster.app {key}"
        );
    }
    assert!(
        attr(cluster, "master_password").is_none(),
        "the password is RDS-managed, never in Terraform"
    );
    assert!(attr(cluster, "backup_retention_period").is_some());
    // TLS required by the server for both engines.
    let params = block_text(&tf, "resource \"aws_rds_cluster_parameter_group\" \"app\"");
    assert!(
        params.contains("rds.force_ssl") && params.contains("require_secure_transport"),
        "{params}"
    );
    let instance = one(&tf, "resource", &["aws_rds_cluster_instance", "app"]).body();
    assert_eq!(
        attr(instance, "publicly_accessible").map(text).as_deref(),
        Some("false")
    );
    // The database admits the load function's security group only.
    let ingress = one(
        &tf,
        "resource",
        &["aws_vpc_security_group_ingress_rule", "database_from_load"],
    )
    .body();
    assert_eq!(
        attr(ingress, "referenced_security_group_id")
            .map(text)
            .as_deref(),
        Some("aws_security_group.load[0].id")
    );
    assert!(attr(ingress, "cidr_ipv4").is_none());
    // The load function runs in the VPC when a target is deployed.
    let lambda = block_text(&tf, "resource \"aws_lambda_function\" \"function\"");
    assert!(
        lambda.contains("dynamic \"vpc_config\"") && lambda.contains("each.key == \"load\""),
        "{lambda}"
    );
    // Its secret permission names one secret, never a pattern.
    let policy = tf.iter().find(|f| f.name == "iam.tf").unwrap();
    let load_doc = &policy.text[policy
        .text
        .find("data \"aws_iam_policy_document\" \"load\"")
        .unwrap()..];
    let secret = &load_doc[load_doc.find("secretsmanager:GetSecretValue").unwrap()..];
    let resources = secret
        .lines()
        .find(|l| l.trim_start().starts_with("resources"))
        .unwrap();
    assert!(
        resources.contains("local.database_secret_arn") && !resources.contains('*'),
        "{resources}"
    );
    // No NAT needed: gateway endpoints for S3 and DynamoDB, interface endpoints for the rest.
    let endpoints = text(local(&tf, "interface_endpoints"));
    for service in ["secretsmanager", "ssm", "kms", "sts", "states"] {
        assert!(
            endpoints.contains(&format!("\"{service}\"")),
            "{service}: {endpoints}"
        );
    }
}

/// The statements of `data "aws_iam_policy_document" "<name>"`: (sid, principals' identifiers,
/// actions, condition variables), each as text.
fn statements(tf: &[File], name: &str) -> Vec<(String, String, String, String)> {
    let doc = one(tf, "data", &["aws_iam_policy_document", name]).body();
    doc.blocks()
        .filter(|b| b.identifier() == "statement")
        .map(|st| {
            let b = st.body();
            let sub = |kind: &str, key: &str| {
                b.blocks()
                    .filter(|x| x.identifier() == kind)
                    .filter_map(|x| attr(x.body(), key).map(text))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            (
                attr(b, "sid").map(text).unwrap_or_default(),
                sub("principals", "identifiers"),
                attr(b, "actions").map(text).unwrap_or_default(),
                sub("condition", "variable"),
            )
        })
        .collect()
}

#[test]
fn the_key_lets_every_service_and_role_that_uses_it_use_it() {
    let tf = terraform();
    let key = statements(&tf, "kms");
    let for_principal = |p: &str| key.iter().filter(|s| s.1.contains(p)).collect::<Vec<_>>();
    // CloudWatch alarms publish to the encrypted topic.
    let alarms = for_principal("cloudwatch.amazonaws.com");
    assert!(
        alarms
            .iter()
            .any(|s| s.2.contains("kms:Decrypt") && s.2.contains("kms:GenerateDataKey")),
        "the key policy must let cloudwatch.amazonaws.com Decrypt and GenerateDataKey: {key:?}"
    );
    // CloudWatch Logs: the encryption-context condition AWS documents, not aws:SourceAccount.
    let logs = for_principal("logs.${var.region}.amazonaws.com");
    assert!(!logs.is_empty(), "no statement for CloudWatch Logs");
    for s in &logs {
        assert!(
            s.3.contains("kms:EncryptionContext:aws:logs:arn")
                && !s.3.contains("aws:SourceAccount"),
            "logs statement {s:?}"
        );
    }
    // The roles that start, read or redrive executions of the encrypted state machines.
    let grants =
        |doc: &str, action: &str| statements(&tf, doc).iter().any(|s| s.2.contains(action));
    for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
        assert!(
            grants("events", action),
            "the EventBridge role needs {action}"
        );
        assert!(
            grants("oncall", action),
            "the on-call policy needs {action}"
        );
    }
}

#[test]
fn the_provider_floor_accepts_what_the_configuration_uses_and_nothing_reserves_concurrency_by_default(
) {
    let tf = terraform();
    let all: String = tf.iter().map(|f| f.text.as_str()).collect();
    // The aws provider's constraint (`version = ">= X, < Y"` under required_providers).
    let versions = block_text(&tf, "terraform {");
    let floor = versions
        .lines()
        .filter_map(|l| l.trim().strip_prefix("version"))
        .find_map(|v| v.split(">=").nth(1))
        .and_then(|v| v.split([',', '"']).next())
        .map(str::trim)
        .unwrap_or_else(|| panic!("no provider floor in {versions}"));
    let parts: Vec<u32> = floor.split('.').filter_map(|p| p.parse().ok()).collect();
    if all.contains("TransferSecurityPolicy-2025-03") {
        assert!(
            parts >= vec![5, 95, 0],
            "TransferSecurityPolicy-2025-03 needs the AWS provider 5.95.0 or later; the floor is {floor}"
        );
    }
    let lambda = one(&tf, "resource", &["aws_lambda_function", "function"]).body();
    let reserved = text(attr(lambda, "reserved_concurrent_executions").unwrap());
    assert!(reserved.contains("var.reserved_concurrency"), "{reserved}");
    let variable = one(&tf, "variable", &["reserved_concurrency"]).body();
    assert_eq!(text(attr(variable, "default").unwrap()), "null");
}

/// A top-level block's text, from its header to its closing brace.
fn block_text(files: &[File], header: &str) -> String {
    files
        .iter()
        .find_map(|f| {
            let at = f.text.find(header)?;
            let rest = &f.text[at..];
            Some(rest[..rest.find("\n}\n").map_or(rest.len(), |e| e + 2)].to_owned())
        })
        .unwrap_or_else(|| panic!("no {header}"))
}

/// Every metric the alarms read from namespace Sluice is one a function emits (an EMF line
/// written with `Metric::count("<name>", …)`): an alarm on a name nobody writes never fires.
#[test]
fn every_alarm_on_a_sluice_metric_reads_one_a_function_emits() {
    let mut emitted = BTreeSet::new();
    for e in std::fs::read_dir(root().join("functions/src")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for constructor in ["Metric::count(\"", "Metric::seconds(\""] {
            for part in text.split(constructor).skip(1) {
                if let Some(name) = part.split('"').next() {
                    emitted.insert(name.to_owned());
                }
            }
        }
    }
    let monitoring = std::fs::read_to_string(root().join("terraform/monitoring.tf")).unwrap();
    let mut namespace = String::new();
    let mut read = BTreeSet::new();
    for line in monitoring.lines().map(str::trim) {
        let value = |l: &str| l.split('"').nth(1).unwrap_or_default().to_owned();
        if line.starts_with("namespace ") {
            namespace = value(line);
        } else if line.starts_with("metric_name ") && namespace == "Sluice" {
            read.insert(value(line));
        }
    }
    for m in ["ItemsIngested", "RowsRead", "RowsQuarantined", "LagSeconds"] {
        assert!(read.contains(m), "no alarm reads {m}: {read:?}");
    }
    let unknown: Vec<_> = read.difference(&emitted).collect();
    assert!(
        unknown.is_empty(),
        "alarms on metrics nothing emits: {unknown:?} (emitted: {emitted:?})"
    );
    // The quarantine-rate alarm: one per table spec, a rate of the two counts.
    let alarm = one(
        &terraform(),
        "resource",
        &["aws_cloudwatch_metric_alarm", "quarantine_rate"],
    )
    .body()
    .clone();
    assert!(text(attr(&alarm, "for_each").unwrap()).contains("local.table_specs"));
    // Freshness covers the datasets whose spec expects files, credit among them.
    let fresh = text(local(&terraform(), "fresh_datasets"));
    assert!(fresh.contains("s.source.expect_every_minutes"), "{fresh}");
    let credit = std::fs::read_to_string(root().join("config/tables/credit.json")).unwrap();
    assert!(credit.contains("\"expect_every_minutes\": 60"));
}

/// The CI/CD stack (cicd/pipeline.yaml, CloudFormation) and its buildspec agree: the project
/// builds with the buildspec that exists, the buildspec runs the test command, the arm64
/// Lambda build, the plan, and applies only on the branch with the approval, and every
/// variable it reads is one the project sets (or CodeBuild's own, or its own).
#[test]
fn the_cicd_stack_runs_the_tests_builds_plans_and_applies_only_when_approved() {
    let template = std::fs::read_to_string(root().join("cicd/pipeline.yaml")).unwrap();
    let buildspec = std::fs::read_to_string(root().join("cicd/buildspec.yml")).unwrap();
    for line in template
        .lines()
        .filter(|l| l.trim().starts_with("BuildSpec:"))
    {
        let path = line.trim().trim_start_matches("BuildSpec:").trim();
        assert!(
            root().join(path).is_file(),
            "the project's buildspec {path} is absent"
        );
    }
    for needed in [
        "bash .ci/run",
        "cargo lambda build --release --arm64 --output-format zip",
        "terraform plan",
        "terraform apply -input=false plan.out",
        "use_lockfile=true",
        "sha256sum -c",
    ] {
        assert!(buildspec.contains(needed), "the buildspec lacks `{needed}`");
    }
    let apply = buildspec.find("terraform apply").unwrap();
    let guard = buildspec[..apply].rfind("if [").unwrap();
    assert!(
        buildspec[guard..apply].contains("APPLY_ON_MAIN")
            && buildspec[guard..apply].contains("SLUICE_BRANCH"),
        "apply is not guarded by the branch and the approval"
    );
    let set_by_project: BTreeSet<String> = template
        .lines()
        .filter_map(|l| l.split("Name: ").nth(1))
        .filter_map(|l| l.split(',').next())
        .map(str::to_owned)
        .collect();
    let set_by_buildspec = [
        "CARGO_TARGET_DIR",
        "PATH",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ];
    for part in buildspec.split('$').skip(1) {
        let name: String = part
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() < 2 || name.starts_with("CODEBUILD_") || name == "AWS_REGION" {
            continue;
        }
        assert!(
            set_by_project.contains(&name) || set_by_buildspec.contains(&name.as_str()),
            "the buildspec reads ${name}, which the project does not set (it sets {set_by_project:?})"
        );
    }
}

// ---- the configuration against the provider's own schema -------------------------------------

/// The provider schemas of the lowest and highest release terraform/versions.tf allows, as
/// `scripts/provider-schema` writes them (from the npm packages generated from the schema).
fn provider_schemas() -> Vec<serde_json::Value> {
    let paths: Vec<PathBuf> = match std::env::var("SLUICE_PROVIDER_SCHEMAS") {
        Ok(list) => list.split(':').map(PathBuf::from).collect(),
        Err(_) => std::fs::read_dir(root().join(".tools/provider-schema"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default(),
    };
    assert!(
        paths.len() >= 2,
        "no provider schemas: run scripts/provider-schema (.ci/run does) or set SLUICE_PROVIDER_SCHEMAS"
    );
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Arguments and blocks every resource and data source takes (Terraform's meta-arguments).
const META_ARGUMENTS: [&str; 4] = ["count", "for_each", "depends_on", "provider"];
const META_BLOCKS: [&str; 3] = ["lifecycle", "provisioner", "connection"];

/// Problems of one block's body against its schema: unknown arguments and blocks, required
/// ones missing. `dynamic "x"` blocks are checked as `x` with their `content`.
fn check_body(
    schema: &serde_json::Value,
    body: &Body,
    at: &str,
    top: bool,
    problems: &mut Vec<String>,
) {
    let attrs = &schema["attrs"];
    let blocks = &schema["blocks"];
    let mut given = BTreeSet::new();
    for a in body.attributes() {
        let k = a.key();
        given.insert(k.to_owned());
        if top && META_ARGUMENTS.contains(&k) {
            continue;
        }
        if attrs.get(k).is_none() {
            problems.push(format!("{at}: unknown argument `{k}`"));
        }
    }
    for b in body.blocks() {
        let (name, inner) = if b.identifier() == "dynamic" {
            let name = b.labels().first().map(|l| l.as_str()).unwrap_or_default();
            let content = b.body().blocks().find(|c| c.identifier() == "content");
            (name, content.map(|c| c.body()))
        } else {
            (b.identifier(), Some(b.body()))
        };
        given.insert(name.to_owned());
        if top && META_BLOCKS.contains(&name) {
            continue;
        }
        match blocks.get(name) {
            None => problems.push(format!("{at}: unknown block `{name}`")),
            Some(s) => {
                if let Some(inner) = inner {
                    check_body(&s["block"], inner, &format!("{at}.{name}"), false, problems);
                }
            }
        }
    }
    for (kind, map) in [("argument", attrs), ("block", blocks)] {
        for (k, v) in map.as_object().into_iter().flatten() {
            if v["required"] == true && !given.contains(k) {
                problems.push(format!("{at}: required {kind} `{k}` is missing"));
            }
        }
    }
}

/// Problems of every resource and data block of `files` against one provider schema.
fn check_against(schema: &serde_json::Value, files: &[(String, Body)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, body) in files {
        for b in body.blocks() {
            let kind = match b.identifier() {
                "resource" => "resources",
                "data" => "data",
                _ => continue,
            };
            let labels: Vec<&str> = b.labels().iter().map(|l| l.as_str()).collect();
            let (ty, id) = (
                labels.first().copied().unwrap_or_default(),
                labels.get(1).copied().unwrap_or_default(),
            );
            let at = format!("{name}: {} {ty}.{id}", b.identifier());
            match schema[kind].get(ty) {
                None => problems.push(format!(
                    "{at}: no such {} type in provider {}",
                    b.identifier(),
                    schema["provider"]
                )),
                Some(s) => check_body(s, b.body(), &at, true, &mut problems),
            }
        }
    }
    problems
}

/// Every `var.`, `local.`, resource and `data.` reference names something declared.
fn unresolved_references(files: &[File]) -> Vec<String> {
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for f in files {
        for b in f.body.blocks() {
            let labels: Vec<&str> = b.labels().iter().map(|l| l.as_str()).collect();
            match (b.identifier(), labels.as_slice()) {
                ("variable", [n]) => {
                    declared.insert(format!("var.{n}"));
                }
                ("locals", []) => {
                    for a in b.body().attributes() {
                        declared.insert(format!("local.{}", a.key()));
                    }
                }
                ("resource", [t, n]) => {
                    declared.insert(format!("{t}.{n}"));
                }
                ("data", [t, n]) => {
                    declared.insert(format!("data.{t}.{n}"));
                }
                _ => {}
            }
        }
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut problems = Vec::new();
    for f in files {
        for (no, line) in f.text.lines().enumerate() {
            if line.trim_start().starts_with('#') || line.trim_start().starts_with("//") {
                continue;
            }
            let bytes: Vec<char> = line.chars().collect();
            for start in 0..bytes.len() {
                if start > 0 && (ident(bytes[start - 1]) || bytes[start - 1] == '.') {
                    continue;
                }
                let rest: String = bytes[start..].iter().collect();
                let parts: Vec<String> = rest
                    .split('.')
                    .take(3)
                    .map(|p| p.chars().take_while(|c| ident(*c)).collect())
                    .collect();
                let name = match parts.as_slice() {
                    [v, n, ..] if (v == "var" || v == "local") && !n.is_empty() => {
                        format!("{v}.{n}")
                    }
                    [d, t, n] if d == "data" && t.starts_with("aws_") && !n.is_empty() => {
                        format!("data.{t}.{n}")
                    }
                    [t, n, ..]
                        if t.starts_with("aws_")
                            && !n.is_empty()
                            && rest.starts_with(&format!("{t}.{n}")) =>
                    {
                        format!("{t}.{n}")
                    }
                    _ => continue,
                };
                if !declared.contains(&name) {
                    problems.push(format!("{}:{}: `{name}` is not declared", f.name, no + 1));
                }
            }
        }
    }
    problems
}

#[test]
fn every_resource_argument_and_block_exists_in_the_lowest_and_highest_provider_release() {
    let files = terraform();
    let bodies: Vec<(String, Body)> = files
        .iter()
        .map(|f| (f.name.clone(), f.body.clone()))
        .collect();
    let schemas = provider_schemas();
    let releases: Vec<String> = schemas
        .iter()
        .map(|s| s["provider"].as_str().unwrap_or_default().to_owned())
        .collect();
    // The releases checked are the floor of terraform/versions.tf and a 6.x release.
    let versions = std::fs::read_to_string(root().join("terraform/versions.tf")).unwrap();
    assert!(
        releases
            .iter()
            .any(|r| versions.contains(&format!(">= {r}"))),
        "{releases:?} lack the floor of versions.tf"
    );
    assert!(releases.iter().any(|r| r.starts_with("6.")), "{releases:?}");
    // The work table's indexes are written with key_schema (6.x deprecates their hash_key
    // and range_key), which every release checked has.
    let work = one(&files, "resource", &["aws_dynamodb_table", "work"]).body();
    for gsi in work
        .blocks()
        .filter(|b| b.identifier() == "global_secondary_index")
    {
        assert!(attr(gsi.body(), "hash_key").is_none() && attr(gsi.body(), "range_key").is_none());
        assert_eq!(
            gsi.body()
                .blocks()
                .filter(|b| b.identifier() == "key_schema")
                .count(),
            2
        );
    }
    for schema in &schemas {
        let problems = check_against(schema, &bodies);
        assert!(
            problems.is_empty(),
            "against provider {}:\n{}",
            schema["provider"],
            problems.join("\n")
        );
    }
    let refs = unresolved_references(&files);
    assert!(refs.is_empty(), "{}", refs.join("\n"));

    // The check fails on a typo'd argument, an unknown type, a missing required argument, an
    // unknown nested block, and an undeclared reference.
    let bad = hcl::parse(
        r#"
resource "aws_sqs_queue" "q" {
  nmae = "x"
}
resource "aws_lambda_functoin" "f" {}
resource "aws_lambda_function" "g" {
  function_name = "g"
  environmnet {
    variables = {}
  }
}
"#,
    )
    .unwrap();
    let found = check_against(&schemas[0], &[("bad.tf".into(), bad)]).join("\n");
    for want in [
        "unknown argument `nmae`",
        "aws_lambda_functoin.f: no such resource type",
        "required argument `role` is missing",
        "unknown block `environmnet`",
    ] {
        assert!(found.contains(want), "the check missed {want}:\n{found}");
    }
    let undeclared = File {
        name: "bad.tf".into(),
        text: "x = var.nope\ny = aws_s3_bucket.missing.arn\n".into(),
        body: Body::default(),
    };
    let found = unresolved_references(&[undeclared]).join("\n");
    assert!(
        found.contains("`var.nope`") && found.contains("`aws_s3_bucket.missing`"),
        "{found}"
    );
}

/// Each state machine has its own role, which may invoke exactly the functions its definition
/// names (the extract machine cannot invoke the ingest functions).
#[test]
fn each_state_machine_role_invokes_only_its_own_functions() {
    let tf = terraform();
    let machines = local(&tf, "machine_functions");
    let Expression::Object(o) = machines else {
        panic!("machine_functions is not an object")
    };
    assert_eq!(o.len(), 2);
    for (k, v) in o.iter() {
        let machine = match k {
            hcl::ObjectKey::Identifier(i) => i.to_string(),
            hcl::ObjectKey::Expression(e) => text(e).trim_matches('"').to_owned(),
            other => format!("{other:?}"),
        };
        let granted: BTreeSet<String> = text(v)
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        let definition =
            std::fs::read_to_string(root().join(format!("statemachine/{machine}.asl.json")))
                .unwrap();
        let named: BTreeSet<String> = definition
            .split("${")
            .skip(1)
            .filter_map(|p| p.split('}').next())
            .filter_map(|p| p.strip_suffix("_arn"))
            .map(|p| p.replace('_', "-"))
            .collect();
        assert_eq!(granted, named, "state machine {machine}");
    }
    let sfn = block_text(&tf, "resource \"aws_sfn_state_machine\" \"extract\"");
    assert!(
        sfn.contains("aws_iam_role.state_machine[\"extract\"].arn"),
        "{sfn}"
    );
}

/// Secrets are each function's own: stored outside the shared settings path (a read by path
/// covers every level below it), under `<secrets_path><function>/`, and each role may read the
/// shared path and its own secrets path only.
#[test]
fn each_function_reads_the_shared_settings_and_its_own_secrets_alone() {
    let tf = terraform();
    let unquote = |e: &Expression| text(e).trim_matches('"').to_owned();
    let settings = unquote(local(&tf, "settings_path"));
    let secrets = unquote(local(&tf, "secrets_path"));
    assert!(
        !secrets.starts_with(&settings) && !settings.starts_with(&secrets),
        "{secrets} and {settings} must not nest"
    );
    // Each function is told its own secrets path.
    let lambda = one(&tf, "resource", &["aws_lambda_function", "function"]).body();
    let env = lambda
        .blocks()
        .find(|b| b.identifier() == "environment")
        .unwrap();
    let variables = text(attr(env.body(), "variables").unwrap());
    assert!(
        variables.contains(&format!(
            "{} = \"${{local.secrets_path}}${{each.key}}/\"",
            sluice_aws::names::SECRETS_PATH_VAR
        )),
        "{variables}"
    );
    // Stored under it, one function's each.
    let secret = one(&tf, "resource", &["aws_ssm_parameter", "secret"]).body();
    assert_eq!(
        text(attr(secret, "name").unwrap()),
        "\"${local.secrets_path}${each.key}\""
    );
    assert_eq!(unquote(attr(secret, "type").unwrap()), "SecureString");
    // Every SSM grant of every policy: the shared path, or the function's own secrets.
    let mut ssm_grants = 0;
    for f in &tf {
        for b in f.body.blocks().filter(|b| b.identifier() == "data") {
            for st in b.body().blocks().filter(|x| x.identifier() == "statement") {
                let actions = attr(st.body(), "actions").map(text).unwrap_or_default();
                if !actions.contains("ssm:") {
                    continue;
                }
                ssm_grants += 1;
                let resources = attr(st.body(), "resources").map(text).unwrap_or_default();
                let own = resources.contains("${local.secrets_arn}/${each.key}")
                    && !resources.contains("${local.secrets_arn}/*")
                    && !resources.contains("${local.secrets_arn}\"");
                let shared =
                    resources.contains("local.settings_arn") && !resources.contains("secrets_arn");
                assert!(
                    own || shared,
                    "{:?}: an SSM grant beyond the shared settings and the function's own secrets: {resources}",
                    b.labels()
                );
            }
        }
    }
    assert!(ssm_grants >= 2, "found {ssm_grants} SSM grants");
    // The variable's validation names exactly the deployed functions.
    let functions = object_keys(local(&tf, "functions"));
    let var = block_text(&tf, "variable \"secure_settings\"");
    for f in &functions {
        assert!(
            var.contains(&format!("\"{f}\"")),
            "{f} missing from secure_settings' validation"
        );
    }
}
