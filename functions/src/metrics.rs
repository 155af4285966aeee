//! Metrics in CloudWatch's embedded metric format (EMF): one JSON line on stdout per event,
//! which CloudWatch Logs turns into metrics in namespace `Sluice` with the dimensions
//! `Environment` and `Dataset`; no API call, no agent.
//! https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
//! https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Lambda.html
//! (Lambda does not re-encode a line that already is JSON, whatever the function's log format.)

use serde_json::{json, Map, Value};

/// The namespace of every Sluice metric.
pub const NAMESPACE: &str = "Sluice";

/// The `Dataset` of metrics about the whole pipeline rather than one dataset.
pub const PIPELINE: &str = "all";

/// One metric of an EMF line: a name, a CloudWatch unit, a value.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
}

impl Metric {
    pub fn count(name: &'static str, value: u64) -> Metric {
        Metric {
            name,
            unit: "Count",
            value: value as f64,
        }
    }

    pub fn bytes(name: &'static str, value: u64) -> Metric {
        Metric {
            name,
            unit: "Bytes",
            value: value as f64,
        }
    }

    pub fn milliseconds(name: &'static str, value: u64) -> Metric {
        Metric {
            name,
            unit: "Milliseconds",
            value: value as f64,
        }
    }

    pub fn seconds(name: &'static str, value: i64) -> Metric {
        Metric {
            name,
            unit: "Seconds",
            value: value as f64,
        }
    }
}

/// The EMF line of `metrics` for a dataset of an environment at `timestamp_ms`.
pub fn emf_line(env: &str, dataset: &str, metrics: &[Metric], timestamp_ms: i64) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Environment", "Dataset"]],
                "Metrics": metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    root.insert("Environment".into(), env.into());
    root.insert("Dataset".into(), dataset.into());
    for m in metrics {
        root.insert(m.name.into(), json!(m.value));
    }
    Value::Object(root).to_string()
}

/// Writes the line to stdout when running in Lambda (where CloudWatch Logs reads it); locally
/// and in tests it is not printed.
pub fn emit(env: &str, dataset: &str, metrics: &[Metric], timestamp_ms: i64) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        println!("{}", emf_line(env, dataset, metrics, timestamp_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What CloudWatch checks of an EMF line (the specification's rules): `_aws.Timestamp` a
    /// number of milliseconds; each directive a namespace, at most 30 dimensions per set, each
    /// a root member holding a string; each metric a root member holding a number, with a
    /// known unit. Returns the metrics as CloudWatch would extract them.
    /// A metric as CloudWatch extracts it: namespace, dimensions (name, value), name, value.
    type Extracted = (String, Vec<(String, String)>, String, f64);

    fn extract(line: &str) -> Result<Vec<Extracted>, String> {
        const UNITS: [&str; 6] = [
            "Count",
            "Bytes",
            "Seconds",
            "Milliseconds",
            "Percent",
            "None",
        ];
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let aws = v.get("_aws").ok_or("no _aws")?;
        aws.get("Timestamp")
            .and_then(Value::as_i64)
            .ok_or("no numeric Timestamp")?;
        let mut out = Vec::new();
        for d in aws["CloudWatchMetrics"]
            .as_array()
            .ok_or("no CloudWatchMetrics")?
        {
            let ns = d["Namespace"].as_str().ok_or("no Namespace")?;
            let sets = d["Dimensions"].as_array().ok_or("no Dimensions")?;
            for set in sets {
                let set = set.as_array().ok_or("a dimension set is not an array")?;
                if set.len() > 30 {
                    return Err("more than 30 dimensions".into());
                }
                let dims = set
                    .iter()
                    .map(|k| {
                        let k = k.as_str().ok_or("a dimension name is not text")?;
                        let val = v[k]
                            .as_str()
                            .ok_or(format!("dimension {k} has no text value"))?;
                        Ok((k.to_owned(), val.to_owned()))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                for m in d["Metrics"].as_array().ok_or("no Metrics")? {
                    let name = m["Name"].as_str().ok_or("a metric has no Name")?;
                    let unit = m["Unit"].as_str().unwrap_or("None");
                    if !UNITS.contains(&unit) {
                        return Err(format!("unit {unit}"));
                    }
                    let value = v[name]
                        .as_f64()
                        .ok_or(format!("metric {name} has no number"))?;
                    out.push((ns.to_owned(), dims.clone(), name.to_owned(), value));
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn an_emf_line_reads_as_cloudwatch_reads_it() {
        let line = emf_line(
            "prod",
            "credit",
            &[
                Metric::count("ItemsIngested", 1),
                Metric::count("RowsQuarantined", 3),
            ],
            1_764_480_000_000,
        );
        let got = extract(&line);
        let dims = vec![
            ("Environment".to_owned(), "prod".to_owned()),
            ("Dataset".to_owned(), "credit".to_owned()),
        ];
        assert_eq!(
            got,
            Ok(vec![
                ("Sluice".into(), dims.clone(), "ItemsIngested".into(), 1.0),
                ("Sluice".into(), dims, "RowsQuarantined".into(), 3.0),
            ])
        );
        // The checker refuses what CloudWatch would: a metric without its value.
        let broken = line.replace("\"RowsQuarantined\":3.0", "\"Other\":3.0");
        assert!(
            extract(&broken).is_err_and(|e| e.contains("RowsQuarantined")),
            "{broken}"
        );
    }
}
