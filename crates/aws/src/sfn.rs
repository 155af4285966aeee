//! `Executions` over Step Functions: is an execution still running (for stale locks), which
//! failed, and redrive.

use aws_sdk_sfn::types::ExecutionRedriveStatus as SdkRedriveStatus;
use aws_sdk_sfn::types::ExecutionStatus as SdkStatus;
use aws_sdk_sfn::types::HistoryEvent as SdkEvent;
use sluice_core::ports::{
    failed_state, ExecutionState, ExecutionStatus, ExecutionSummary, Executions, FailedState,
    HistoryEvent, PortResult, RedriveStatus,
};

use crate::error::{code_of, port_error};

#[derive(Clone, Debug)]
pub struct SfnExecutions {
    client: crate::lazy::Lazy<aws_sdk_sfn::Client>,
}

impl SfnExecutions {
    pub fn new(client: impl Into<crate::lazy::Lazy<aws_sdk_sfn::Client>>) -> SfnExecutions {
        SfnExecutions {
            client: client.into(),
        }
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

pub fn redrive_status_from_sdk(s: &SdkRedriveStatus) -> Option<RedriveStatus> {
    Some(match s {
        SdkRedriveStatus::Redrivable => RedriveStatus::Redrivable,
        SdkRedriveStatus::NotRedrivable => RedriveStatus::NotRedrivable,
        SdkRedriveStatus::RedrivableByMapRun => RedriveStatus::RedrivableByMapRun,
        _ => return None,
    })
}

/// The parts of an SDK history event that finding the failed state needs.
pub fn history_event_from_sdk(e: &SdkEvent) -> HistoryEvent {
    let (error, cause) = if let Some(d) = e.execution_failed_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.lambda_function_failed_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.task_failed_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.map_run_failed_event_details() {
        (d.error(), d.cause())
    } else if let Some(d) = e.lambda_function_timed_out_event_details() {
        (d.error(), d.cause())
    } else {
        (None, None)
    };
    let index = e
        .map_iteration_started_event_details()
        .or(e.map_iteration_failed_event_details())
        .or(e.map_iteration_succeeded_event_details())
        .map(|d| d.index())
        .and_then(|i| u64::try_from(i).ok());
    HistoryEvent {
        kind: e.r#type().as_str().to_owned(),
        state: e
            .state_entered_event_details()
            .map(|d| d.name().to_owned())
            .or_else(|| e.state_exited_event_details().map(|d| d.name().to_owned())),
        index,
        error: error.map(str::to_owned),
        cause: cause.map(str::to_owned),
    }
}

impl Executions for SfnExecutions {
    async fn failed_state(&self, execution_arn: &str) -> PortResult<Option<FailedState>> {
        let described = match self
            .client
            .get()
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if code_of(&e) == Some("ExecutionDoesNotExist") => return Ok(None),
            Err(e) => return Err(port_error("states:DescribeExecution", e)),
        };
        let mut pages = self
            .client
            .get()
            .get_execution_history()
            .execution_arn(execution_arn)
            .include_execution_data(false)
            .into_paginator()
            .send();
        let mut events = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("states:GetExecutionHistory", e))?;
            events.extend(page.events().iter().map(history_event_from_sdk));
        }
        let mut found = failed_state(&events).unwrap_or_default();
        if let Some(e) = described.error() {
            found.error = e.to_owned();
        }
        if let Some(c) = described.cause() {
            found.cause = c.to_owned();
        }
        found.redrive_count = described
            .redrive_count()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        Ok(Some(found))
    }

    async fn describe(&self, execution_arn: &str) -> PortResult<Option<ExecutionState>> {
        match self
            .client
            .get()
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(out) => Ok(status_from_sdk(out.status()).map(|status| ExecutionState {
                status,
                redrive_status: out.redrive_status().and_then(redrive_status_from_sdk),
                stopped_at: out.stop_date().map(|d| d.secs()),
                redrive_count: out
                    .redrive_count()
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
            })),
            Err(e) if code_of(&e) == Some("ExecutionDoesNotExist") => Ok(None),
            Err(e) => Err(port_error("states:DescribeExecution", e)),
        }
    }

    async fn list_failed(&self, state_machine_arn: &str) -> PortResult<Vec<ExecutionSummary>> {
        let mut pages = self
            .client
            .get()
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
            .get()
            .redrive_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| port_error("states:RedriveExecution", e))?;
        Ok(())
    }
}
