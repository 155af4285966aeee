//! `Notifier` over SNS.

use sluice_core::ports::{Notifier, PortError, PortResult};

use crate::error::port_error;

#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: crate::lazy::Lazy<aws_sdk_sns::Client>,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(
        client: impl Into<crate::lazy::Lazy<aws_sdk_sns::Client>>,
        topic_arn: impl Into<String>,
    ) -> SnsNotifier {
        SnsNotifier {
            client: client.into(),
            topic_arn: topic_arn.into(),
        }
    }

    /// Finds the topic called `name` (SNS topic ARNs embed the account, which the functions do
    /// not otherwise need to know).
    pub async fn by_name(
        client: impl Into<crate::lazy::Lazy<aws_sdk_sns::Client>>,
        name: &str,
    ) -> PortResult<SnsNotifier> {
        let client = client.into();
        match find_topic(client.get(), name).await? {
            Some(arn) => Ok(SnsNotifier::new(client, arn)),
            None => Err(PortError::permanent(
                "sns:ListTopics",
                format!("no topic named {name}"),
            )),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

/// The ARN of the topic called `name`, if there is one.
pub async fn find_topic(client: &aws_sdk_sns::Client, name: &str) -> PortResult<Option<String>> {
    let mut pages = client.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| port_error("sns:ListTopics", e))?;
        for t in page.topics() {
            if let Some(arn) = t.topic_arn() {
                if arn.rsplit(':').next() == Some(name) {
                    return Ok(Some(arn.to_owned()));
                }
            }
        }
    }
    Ok(None)
}

/// An SNS subject: printable ASCII, one line, at most 100 characters.
pub fn subject_line(subject: &str) -> String {
    let clean: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    let clean = clean.trim();
    if clean.len() <= 100 {
        clean.to_owned()
    } else {
        format!("{}...", &clean[..97])
    }
}

/// One message per protocol (`MessageStructure=json`): e-mail subscribers read `text`; queues,
/// functions and everything else get `body` as JSON (`default` is required).
/// <https://docs.aws.amazon.com/sns/latest/api/API_Publish.html> (MessageStructure).
pub fn structured_message(body: &serde_json::Value, text: &str) -> PortResult<String> {
    let json = |v: &serde_json::Value| {
        serde_json::to_string(v).map_err(|e| PortError::permanent("sns:Publish", e.to_string()))
    };
    let body = json(body)?;
    json(&serde_json::json!({
        "default": body,
        "sqs": body,
        "lambda": body,
        "email": text,
    }))
}

impl Notifier for SnsNotifier {
    async fn publish(
        &self,
        subject: &str,
        body: &serde_json::Value,
        text: &str,
    ) -> PortResult<String> {
        let out = self
            .client
            .get()
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject_line(subject))
            .message_structure("json")
            .message(structured_message(body, text)?)
            .send()
            .await
            .map_err(|e| port_error("sns:Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_get_text_and_machines_get_json() {
        let body = serde_json::json!({"failed": 1});
        let m: serde_json::Value =
            serde_json::from_str(&structured_message(&body, "1 file failed\n").unwrap()).unwrap();
        assert_eq!(m["email"], "1 file failed\n");
        for k in ["default", "sqs", "lambda"] {
            let inner: serde_json::Value = serde_json::from_str(m[k].as_str().unwrap()).unwrap();
            assert_eq!(inner, body, "{k}");
        }
    }

    #[test]
    fn subjects_are_one_short_ascii_line() {
        assert_eq!(
            subject_line("Sluice: 1 file failed\nin dev"),
            "Sluice: 1 file failed in dev"
        );
        assert_eq!(subject_line("Prüfung"), "Pr fung");
        let long = "x".repeat(150);
        assert_eq!(subject_line(&long).len(), 100);
    }
}
