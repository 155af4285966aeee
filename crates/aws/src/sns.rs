//! `Notifier` over SNS.

use sluice_core::ports::{Notifier, PortError, PortResult};

use crate::error::port_error;

#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> SnsNotifier {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Finds the topic called `name` (SNS topic ARNs embed the account, which the functions do
    /// not otherwise need to know).
    pub async fn by_name(client: aws_sdk_sns::Client, name: &str) -> PortResult<SnsNotifier> {
        match find_topic(&client, name).await? {
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

impl Notifier for SnsNotifier {
    async fn publish(&self, subject: &str, body: &serde_json::Value) -> PortResult<String> {
        let message = serde_json::to_string_pretty(body)
            .map_err(|e| PortError::permanent("sns:Publish", e.to_string()))?;
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject_line(subject))
            .message(message)
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
