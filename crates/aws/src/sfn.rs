//! `Executions` over Step Functions: is an execution still running (for stale locks), which
//! failed, and redrive.

use aws_sdk_sfn::types::ExecutionStatus as SdkStatus;
use sluice_core::ports::{ExecutionStatus, ExecutionSummary, Executions, PortResult};

use crate::error::{code_of, port_error};

#[derive(Clone, Debug)]
pub struct SfnExecutions {
    client: aws_sdk_sfn::Client,
}

impl SfnExecutions {
    pub fn new(client: aws_sdk_sfn::Client) -> SfnExecutions {
        SfnExecutions { client }
    }
}

pub fn status_from_sdk(s: &SdkStatus) -> Option<ExecutionStatus> {
    Some(match s {
        SdkStatus::Running => ExecutionStatus::Running,
        SdkStatus::Succeeded => ExecutionStatus::Succeeded,
        SdkStatus::Failed => ExecutionStatus::Failed,
        SdkStatus::TimedOut => ExecutionStatus::TimedOut,
        SdkStatus::Aborted => ExecutionStatus::Aborted,
        SdkStatus::PendingRedrive => ExecutionStatus::PendingRedrive,
        _ => return None,
    })
}

impl Executions for SfnExecutions {
    async fn status(&self, execution_arn: &str) -> PortResult<Option<ExecutionStatus>> {
        match self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(out) => Ok(status_from_sdk(out.status())),
            Err(e) if code_of(&e) == Some("ExecutionDoesNotExist") => Ok(None),
            Err(e) => Err(port_error("states:DescribeExecution", e)),
        }
    }

    async fn list_failed(&self, state_machine_arn: &str) -> PortResult<Vec<ExecutionSummary>> {
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .status_filter(SdkStatus::Failed)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("states:ListExecutions", e))?;
            for e in page.executions() {
                out.push(ExecutionSummary {
                    arn: e.execution_arn().to_owned(),
                    name: e.name().to_owned(),
                    status: status_from_sdk(e.status()).unwrap_or(ExecutionStatus::Failed),
                });
            }
        }
        Ok(out)
    }

    async fn redrive(&self, execution_arn: &str) -> PortResult<()> {
        self.client
            .redrive_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| port_error("states:RedriveExecution", e))?;
        Ok(())
    }
}
