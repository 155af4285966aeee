//! What every function's `main` does, on the emulator: `AwsPorts::from_env` reads the AWS
//! environment and the `SLUICE_*` names Terraform sets, builds no client up front, and each
//! port's client, built on its first call (`sluice_aws::lazy`), reaches the endpoint. Its own
//! test binary: it sets process environment variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_aws::bootstrap::bootstrap;
use sluice_aws::{Clients, Names};
use sluice_core::ports::{Notifier, ObjectStore, Settings, WorkQueue};
use sluice_functions::AwsPorts;

#[tokio::test]
async fn from_env_reaches_the_emulator_with_clients_built_on_first_use() {
    let env = sluice_testkit::unique("fromenv");
    let names = Names::for_env(&env);
    let clients = Clients::from_config(sluice_testkit::sdk_config().await);
    bootstrap(&clients, &names, &[], &[]).await.unwrap();
    // The Lambda environment: the AWS variables (here: the emulator) and SLUICE_ENV, with no
    // SLUICE_TOPIC_ARN, so the topic is found by name through a client built on first use.
    for (k, v) in sluice_testkit::child_env() {
        std::env::set_var(k, v);
    }
    std::env::set_var("SLUICE_ENV", &env);
    std::env::remove_var("SLUICE_TOPIC_ARN");
    let ports = AwsPorts::from_env().await.unwrap();
    assert_eq!(ports.names.lake_bucket, names.lake_bucket);
    assert!(ports.notifier.topic_arn().ends_with(&names.topic_name));

    // S3 (path-style, as the endpoint override requires), SSM, DynamoDB and SNS, each through
    // its lazily built client.
    let lake = &names.lake_bucket;
    ports
        .store
        .put_bytes(lake, "probe/from-env.txt", b"hello".to_vec())
        .await
        .unwrap();
    let got = ports
        .store
        .get_bytes(lake, "probe/from-env.txt")
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    assert_eq!(ports.settings.get("no_such_setting").await.unwrap(), None);
    assert!(ports.work.get("no-such-item").await.unwrap().is_none());
    let id = ports
        .notifier
        .publish("from_env probe", &serde_json::json!({"ok": true}), "probe")
        .await
        .unwrap();
    assert!(!id.is_empty());
}
