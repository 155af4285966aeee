//! statemachine/extract.asl.json end to end on the emulator: a failing extract notifies with
//! the execution link and fails; once the cause is fixed, redrive completes and the files land;
//! later runs write only new or corrected months, and wait while an ingestion holds the lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Lab;
use serde_json::{json, Value};
use sluice_asl::{ExecutionInfo, Options, Status};
use sluice_core::ports::LockStore;
use sluice_core::ports::{ObjectStore, WorkQueue};
use sluice_functions::contracts::ExtractInput;
use sluice_functions::extract::{self};
use sluice_functions::local::LocalLambdas;

fn extract_definition() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(common::root().join("statemachine/extract.asl.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_failing_extract_notifies_and_a_redrive_after_the_fix_completes() {
    let lab = Lab::new();
    let inbox = lab.inbox();
    let input = json!({
        "version": "0", "id": "m", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "000000000000", "time": "2023-07-01T01:00:00Z", "region": "us-east-1", "resources": [], "detail": {}
    });
    let runner = LocalLambdas {
        ports: &lab.ports,
        runtime: lab.rt.handle().clone(),
    };
    let info = ExecutionInfo::local(
        &format!("sluice-{}-extract", lab.names.env),
        "monthly-2023-07",
    );
    // The lake holds no loans yet: the extract fails, notifies, and the execution fails.
    let failed = sluice_asl::run(
        &extract_definition(),
        input,
        info,
        &runner,
        &Options::default(),
    );
    assert_eq!(failed.status, Status::Failed);
    // Uncaught: Extract itself ends the execution, so it is what Redrive resumes.
    assert_eq!(failed.error.as_deref(), Some("Sluice.NoData"));
    assert_eq!(
        sluice_asl::restart_points(&failed),
        [("Extract".to_owned(), "Extract".to_owned())]
    );
    // The status-change rule sends the one failure notice.
    lab.status_change_rule(&failed);
    let (_, message) = lab.next_message(&inbox);
    assert_eq!(message["failed_state"], "Extract");
    assert_eq!(message["error"], "Sluice.NoData");
    assert!(
        message["console"]
            .as_str()
            .unwrap()
            .ends_with(&failed.execution.execution_arn),
        "{message}"
    );

    // The fix: the banking datasets arrive in the lake (curated CSV, as ingest writes with
    // `output: csv`).
    let lake = lab.names.lake_bucket.clone();
    let files = [
        ("data/bank/bank.csv", "id_bank,name,capitalization\n1,J.P. Morgan Chase,100000.00\n2,William's Bay Bank,5.00\n"),
        ("data/branch/branch.csv", "id_branch,bank_id,address\n1,1,Old Wood Square\n2,1,Rock Hill\n3,2,William's Bay\n"),
        ("data/client/client.csv", "id_client,name,surname,branch_id\n1,A,One,1\n2,B,Two,3\n"),
        ("data/account/account.csv", "id_account,balance,client_id,open_date\n1,10.00,1,2020-01-01\n2,20.00,2,2020-01-01\n"),
        ("data/bank_loans/year=2023/month=03/loans.csv", "id_loan,amount,account_id,loan_date\n1,5000.00,1,2023-03-11\n2,100.50,2,2023-03-30\n"),
        ("data/bank_loans/year=2023/month=05/loans.csv", "id_loan,amount,account_id,loan_date\n3,2500.25,1,2023-05-02\n"),
    ];
    lab.rt.block_on(async {
        for (k, body) in files {
            lab.ports
                .store
                .put_bytes(&lake, k, body.as_bytes().to_vec())
                .await
                .unwrap();
        }
    });
    let done = sluice_asl::redrive(&failed, &runner, &Options::default()).unwrap();
    assert_eq!(
        done.status,
        Status::Succeeded,
        "{:?} {:?}",
        done.error,
        done.cause
    );
    assert_eq!(done.execution.execution_arn, failed.execution.execution_arn);
    let out = done.output.unwrap();
    assert_eq!(
        out["months"],
        json!(["2023-03", "2023-04", "2023-05", "2023-06"])
    );
    assert_eq!(out["files"], 8, "2 banks x 4 months");

    let (keys, june, watermark) = lab.rt.block_on(async {
        let keys: Vec<String> = lab
            .ports
            .store
            .list(&lab.names.extracts_bucket, "")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        let june = lab
            .ports
            .store
            .get_bytes(
                &lab.names.extracts_bucket,
                "bank=JPMorganChase/year=2023/month=05/JPMorganChase_20230531.csv",
            )
            .await
            .unwrap()
            .unwrap();
        (
            keys,
            june,
            lab.ports
                .work
                .get_marker("extract_watermark")
                .await
                .unwrap(),
        )
    });
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert!(
        keys.contains(
            &"bank=WilliamsBayBank/year=2023/month=06/WilliamsBayBank_20230630.csv".to_owned()
        ),
        "{keys:?}"
    );
    assert_eq!(
        String::from_utf8(june).unwrap(),
        "bank_name,branch_id,month,loan_count,total_amount,months_in_window,loan_count_3m,total_amount_3m,ma3_amount,avg_loan_amount_3m\n\
         J.P. Morgan Chase,1,2023-05,1,2500.25,3,2,7500.25,2500.08,3750.12\n\
         J.P. Morgan Chase,2,2023-05,0,0.00,3,0,0.00,0.00,\n"
    );
    assert_eq!(watermark.as_deref(), Some("2023-06"));

    // The lock was released at the end.
    assert_eq!(lab.lock_holder(), None);

    // Issue 13.5. A month later with the same inputs: only July is new; nothing else is
    // rewritten.
    let extract = |time: &str, name: &str| {
        let input = ExtractInput {
            execution: format!("arn:aws:states:us-east-1:000000000000:execution:x:{name}"),
            time: Some(time.into()),
            month: None,
        };
        lab.rt.block_on(extract::handle(&lab.ports, input))
    };
    let august = extract("2023-08-01T01:00:00Z", "monthly-2023-08").unwrap();
    assert_eq!(august.months, ["2023-07"]);
    assert_eq!((august.files, august.unchanged), (2, 8));
    assert!(august.corrected.is_empty());

    // A correction for March arrives (the loan of 5000.00 was 4000.00): March's file and the
    // later ones whose 3-month window holds March are rewritten under the same names.
    lab.rt.block_on(async {
        lab.ports
            .store
            .put_bytes(
                &lake,
                "data/bank_loans/year=2023/month=03/loans.csv",
                b"id_loan,amount,account_id,loan_date\n1,4000.00,1,2023-03-11\n2,100.50,2,2023-03-30\n".to_vec(),
            )
            .await
            .unwrap();
    });
    let again = extract("2023-08-02T01:00:00Z", "rerun-2023-08").unwrap();
    let march = "bank=JPMorganChase/year=2023/month=03/JPMorganChase_20230331.csv".to_owned();
    assert!(again.corrected.contains(&march), "{:?}", again.corrected);
    assert!(again.months.contains(&"2023-03".to_owned()));
    assert!(
        !again.months.contains(&"2023-07".to_owned()),
        "July's window has no March"
    );
    let body = lab.rt.block_on(async {
        lab.ports
            .store
            .get_bytes(&lab.names.extracts_bucket, &march)
            .await
            .unwrap()
            .unwrap()
    });
    assert!(
        String::from_utf8(body).unwrap().contains(",4000.00,"),
        "the corrected amount"
    );

    // While an ingestion holds the lock, the extract waits (LockLost, retried by its Retry).
    lab.rt.block_on(async {
        lab.ports
            .locks
            .acquire(
                sluice_functions::run::PIPELINE_LOCK,
                "arn:aws:states:us-east-1:000000000000:execution:sluice-ingest:busy",
                3600,
                sluice_aws::now_secs(),
            )
            .await
            .unwrap();
    });
    let waiting = extract("2023-08-03T01:00:00Z", "while-busy").unwrap_err();
    assert_eq!(waiting.error_type(), "Sluice.LockLost");
}
