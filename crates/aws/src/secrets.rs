//! `SecretStore` over Secrets Manager: the load step reads its targets' connections here.

use sluice_core::ports::{PortError, PortResult, SecretStore};

use crate::error::port_error;

#[derive(Debug, Clone)]
pub struct SecretsManagerSecrets {
    client: crate::lazy::Lazy<aws_sdk_secretsmanager::Client>,
}

impl SecretsManagerSecrets {
    pub fn new(
        client: impl Into<crate::lazy::Lazy<aws_sdk_secretsmanager::Client>>,
    ) -> SecretsManagerSecrets {
        SecretsManagerSecrets {
            client: client.into(),
        }
    }
}

impl SecretStore for SecretsManagerSecrets {
    async fn secret_string(&self, id: &str) -> PortResult<String> {
        let out = self
            .client
            .get()
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| port_error(&format!("GetSecretValue {id}"), e))?;
        out.secret_string.ok_or_else(|| {
            PortError::permanent(
                format!("GetSecretValue {id}"),
                "the secret has no SecretString (a binary secret cannot hold a connection)",
            )
        })
    }
}
