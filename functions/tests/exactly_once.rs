//! Issue 13's end to end on the emulator: uploads through events, a corrected re-upload, a
//! burst of 1,000 files at once, a 10-day outage (the schedule's clock moved), then the runs
//! that catch up. Afterwards the lake holds each key's latest content once, every dataset is
//! visible to Athena (its Glue table), the monthly extract reflects the corrected data,
//! nothing is stranded, and every message is within its service's limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{object_created, sample, scheduled, Lab, HOUR};
use serde_json::{json, Value};
use sluice_asl::Status;
use sluice_core::ports::WorkStatus;
use sluice_functions::contracts::ExtractInput;

/// What SNS takes in one message.
/// <https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>
/// Files uploaded at once.
const BURST: usize = 1_000;

const SNS_MAX_BYTES: usize = 256 * 1024;

fn drain(time: &str) -> Value {
    json!({
        "version": "0", "id": "drain", "detail-type": "Scheduled Event", "source": "sluice.drain",
        "time": time, "resources": [], "detail": {"drain": true}
    })
}

/// Uploads `body` at `key` and delivers its Object Created event to the queue-generator (as
/// the S3 rule does: it registers the work item; a drain run ingests it).
fn upload_with_event(lab: &Lab, key: &str, body: Vec<u8>) {
    let etag = lab.put(key, body);
    let event = object_created(&lab.names.raw_bucket, key, &etag);
    lab.rt
        .block_on(sluice_functions::registry::invoke(
            &lab.ports,
            "queue-generator",
            &event,
        ))
        .unwrap();
}

fn succeeded(lab: &Lab, input: Value, name: &str) {
    let r = lab.run(input, name);
    let failed: Vec<_> = lab
        .items()
        .into_iter()
        .filter(|w| w.status == WorkStatus::Failed)
        .map(|w| (w.key, w.error_message))
        .collect();
    assert_eq!(
        r.status,
        Status::Succeeded,
        "{name}: {:?} {:?} {failed:?}",
        r.error,
        r.cause
    );
}

#[test]
fn corrections_bursts_and_a_ten_day_outage_leave_each_key_once_and_nothing_stranded() {
    let lab = Lab::new();
    let inbox = lab.inbox();
    let credit_sample = sample("credit/yyyy=2026/mm=11/dd=21/hh=23/credit-0001.csv");
    let credit_rows = credit_sample
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
        - 1;
    // A credit file of one row.
    let tiny: Vec<u8> = credit_sample
        .split(|b| *b == b'\n')
        .take(2)
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();

    // 1. Uploads (events), then the drain run and the hourly run (which sets the watermark).
    let banking = [
        ("banking/bank/bank.csv", "idBank,Name,Capitalization\n1,J.P. Morgan Chase,100000.00\n2,William's Bay Bank,5.00\n"),
        ("banking/branch/branch.csv", "idBranch,Bank_idBank,Address\n1,1,Old Wood Square\n2,1,Rock Hill\n3,2,William's Bay\n"),
        ("banking/client/client.csv", "idClient,Name,Surname,Branch_idBranch\n1,A,One,1\n2,B,Two,3\n"),
        ("banking/account/account.csv", "idAccount,Balance,Client_idClient,OpenDate\n1,10.00,1,2020-01-01\n2,20.00,2,2020-01-01\n"),
        ("banking/loans/loans-2023.csv", "idLoan,Amount,Account_idAccount,LoanDate\n1,5000.00,1,2023-03-11\n2,100.50,2,2023-03-30\n3,2500.25,1,2023-05-02\n"),
    ];
    for (key, body) in banking {
        upload_with_event(&lab, key, body.as_bytes().to_vec());
    }
    upload_with_event(
        &lab,
        "credit/yyyy=2026/mm=11/dd=21/hh=23/first.csv",
        credit_sample.clone(),
    );
    succeeded(&lab, drain("2026-11-22T00:01:00Z"), "drain-1");
    succeeded(&lab, scheduled(HOUR), "hourly-1");
    assert_eq!(lab.watermark().as_deref(), Some("2026-11-21T23"));

    // 2. A corrected re-upload of the loans (the loan of 5000.00 was 4000.00), same key.
    upload_with_event(
        &lab,
        "banking/loans/loans-2023.csv",
        b"idLoan,Amount,Account_idAccount,LoanDate\n1,4000.00,1,2023-03-11\n2,100.50,2,2023-03-30\n3,2500.25,1,2023-05-02\n".to_vec(),
    );
    succeeded(&lab, drain("2026-11-22T00:06:00Z"), "drain-2");

    // 3. 1,000 files uploaded at once: their events register them; one drain run ingests.
    for n in 0..BURST {
        let key = format!("credit/yyyy=2026/mm=11/dd=22/hh=00/burst-{n:04}.csv");
        upload_with_event(&lab, &key, tiny.clone());
    }
    succeeded(&lab, drain("2026-11-22T00:11:00Z"), "drain-3");

    // 4. A 10-day outage: files land every day, their events are lost, no run happens.
    let outage: Vec<String> = (0..10)
        .map(|d| {
            let day =
                chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap() + chrono::Duration::days(d);
            day.format("credit/yyyy=%Y/mm=%m/dd=%d/hh=09/outage.csv")
                .to_string()
        })
        .collect();
    for key in &outage {
        lab.put(key, credit_sample.clone());
    }
    // The schedule comes back 10 days later; the catch-up goes on across hourly runs.
    let back = chrono::DateTime::parse_from_rfc3339("2026-12-02T00:05:00Z").unwrap();
    let mut runs = 0;
    while lab.watermark().as_deref() < Some("2026-12-01T23") {
        assert!(runs < 6, "the catch-up does not end: {:?}", lab.watermark());
        let at = (back + chrono::Duration::hours(runs)).to_rfc3339();
        succeeded(&lab, scheduled(&at), &format!("after-outage-{runs}"));
        runs += 1;
    }

    // Nothing stranded: every item done, once; the lock free.
    let items = lab.items();
    let open: Vec<_> = items
        .iter()
        .filter(|w| w.status != WorkStatus::Done)
        .collect();
    assert!(open.is_empty(), "{open:?}");
    let expected_items = banking.len() + 1 /* corrected loans */ + 1 + BURST + outage.len();
    assert_eq!(items.len(), expected_items);
    assert_eq!(lab.lock_holder(), None);

    // Each key's latest content, once.
    let mut loans: Vec<(i64, String)> = lab
        .rows("bank_loans")
        .into_iter()
        .map(|r| (r["id_loan"].as_i64().unwrap(), r["amount"].to_string()))
        .collect();
    loans.sort();
    assert_eq!(loans.len(), 3, "{loans:?}");
    assert!(
        loans[0].1.contains("4000"),
        "the corrected amount: {loans:?}"
    );
    let credit_items: Vec<_> = items.iter().filter(|w| w.dataset == "credit").collect();
    assert_eq!(credit_items.len(), 1 + BURST + outage.len());
    let count = |f: fn(&sluice_core::ports::ItemCounts) -> u64| -> u64 {
        credit_items
            .iter()
            .map(|w| f(w.counts.as_ref().unwrap()))
            .sum()
    };
    assert_eq!(
        count(|c| c.rows_read) as usize,
        credit_rows * (1 + outage.len()) + BURST,
        "every line of every credit file read once"
    );
    assert_eq!(
        lab.rows("credit").len() as u64,
        count(|c| c.rows_written),
        "every row written once, nothing twice"
    );

    // Athena sees every dataset: its Glue table is there.
    for dataset in [
        "bank",
        "branch",
        "client",
        "account",
        "bank_loans",
        "credit",
    ] {
        lab.rt
            .block_on(
                lab.clients
                    .glue
                    .get_table()
                    .database_name(&lab.names.glue_database)
                    .name(dataset)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("no Glue table for {dataset}: {e:?}"));
    }
    assert_eq!(lab.partitions("credit").len(), 2 + outage.len());

    // The monthly extract reads the corrected loans.
    let out = lab
        .rt
        .block_on(sluice_functions::extract::handle(
            &lab.ports,
            ExtractInput {
                execution: "arn:aws:states:us-east-1:000000000000:execution:x:monthly".into(),
                time: Some("2023-07-01T01:00:00Z".into()),
                month: None,
            },
        ))
        .unwrap();
    assert_eq!(out.files, 8, "{out:?}");
    let march = lab.rt.block_on(async {
        use sluice_core::ports::ObjectStore;
        lab.ports
            .store
            .get_bytes(
                &lab.names.extracts_bucket,
                "bank=JPMorganChase/year=2023/month=03/JPMorganChase_20230331.csv",
            )
            .await
            .unwrap()
            .unwrap()
    });
    let march = String::from_utf8(march).unwrap();
    assert!(
        march.contains(",4000.00,") && !march.contains("5000"),
        "{march}"
    );

    // Every message within SNS's limit.
    let messages = lab.messages(&inbox);
    assert!(!messages.is_empty());
    for (subject, body) in &messages {
        let size = body.to_string().len();
        assert!(size < SNS_MAX_BYTES, "{subject}: {size} bytes");
    }
}
