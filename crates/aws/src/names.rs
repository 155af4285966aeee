//! What the deployed resources are called. One environment name (`dev`, `prod`) gives every
//! name; Terraform uses the same rule, and each name can be overridden by an environment
//! variable (`SLUICE_RAW_BUCKET`, ...) so a function reads exactly what Terraform wired.

use serde::Serialize;

/// Every environment variable the functions' configuration reads (Terraform sets each one on
/// every function; a test checks it).
pub const ENV_VARS: &[&str] = &[
    "SLUICE_ENV",
    "SLUICE_RAW_BUCKET",
    "SLUICE_LAKE_BUCKET",
    "SLUICE_EXTRACTS_BUCKET",
    "SLUICE_SPECS_TABLE",
    "SLUICE_WORK_TABLE",
    "SLUICE_LOCKS_TABLE",
    "SLUICE_SETTINGS_PATH",
    "SLUICE_TOPIC_NAME",
    "SLUICE_TOPIC_ARN",
    "SLUICE_GLUE_DATABASE",
];

/// Set on each function with a value of its own: where its secrets are
/// (`/sluice-secrets/<env>/<function>/`).
pub const SECRETS_PATH_VAR: &str = "SLUICE_SECRETS_PATH";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Names {
    pub env: String,
    pub raw_bucket: String,
    pub lake_bucket: String,
    pub extracts_bucket: String,
    pub specs_table: String,
    pub work_table: String,
    pub locks_table: String,
    /// SSM parameter path, with a trailing slash: the settings every function reads.
    pub settings_path: String,
    /// SSM path of this function's own SecureString secrets (`/sluice-secrets/<env>/<fn>/`),
    /// outside `settings_path`: a read by path covers every level below it, so secrets under
    /// the shared path would be every function's. `None` (the CLI, local runs): no secrets.
    pub secrets_path: Option<String>,
    pub topic_name: String,
    /// The topic's ARN when known (deployed functions get it; locally it is looked up by name).
    pub topic_arn: Option<String>,
    pub glue_database: String,
}

impl Names {
    /// The names for environment `env`, before any override.
    pub fn for_env(env: &str) -> Names {
        Names {
            env: env.to_owned(),
            raw_bucket: format!("sluice-{env}-raw"),
            lake_bucket: format!("sluice-{env}-lake"),
            extracts_bucket: format!("sluice-{env}-extracts"),
            specs_table: format!("sluice-{env}-specs"),
            work_table: format!("sluice-{env}-work"),
            locks_table: format!("sluice-{env}-locks"),
            settings_path: format!("/sluice/{env}/"),
            secrets_path: None,
            topic_name: format!("sluice-{env}-notifications"),
            topic_arn: None,
            glue_database: format!("sluice_{}", env.replace('-', "_")),
        }
    }

    /// `SLUICE_ENV` (default `dev`), then each `SLUICE_<NAME>` override.
    pub fn from_env() -> Names {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut n = Names::for_env(&var("SLUICE_ENV").unwrap_or_else(|| "dev".to_owned()));
        let fields: [(&str, &mut String); 9] = [
            ("SLUICE_RAW_BUCKET", &mut n.raw_bucket),
            ("SLUICE_LAKE_BUCKET", &mut n.lake_bucket),
            ("SLUICE_EXTRACTS_BUCKET", &mut n.extracts_bucket),
            ("SLUICE_SPECS_TABLE", &mut n.specs_table),
            ("SLUICE_WORK_TABLE", &mut n.work_table),
            ("SLUICE_LOCKS_TABLE", &mut n.locks_table),
            ("SLUICE_SETTINGS_PATH", &mut n.settings_path),
            ("SLUICE_TOPIC_NAME", &mut n.topic_name),
            ("SLUICE_GLUE_DATABASE", &mut n.glue_database),
        ];
        for (k, slot) in fields {
            if let Some(v) = var(k) {
                *slot = v;
            }
        }
        n.topic_arn = var("SLUICE_TOPIC_ARN");
        n.secrets_path =
            var(SECRETS_PATH_VAR).map(|p| if p.ends_with('/') { p } else { format!("{p}/") });
        if !n.settings_path.ends_with('/') {
            n.settings_path.push('/');
        }
        n
    }

    /// Where a dataset's curated files live, as Glue wants it.
    pub fn table_location(&self, dataset: &str) -> String {
        format!("s3://{}/data/{dataset}/", self.lake_bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_environment() {
        let n = Names::for_env("prod-eu");
        assert_eq!(n.raw_bucket, "sluice-prod-eu-raw");
        assert_eq!(n.glue_database, "sluice_prod_eu");
        assert_eq!(n.settings_path, "/sluice/prod-eu/");
        assert_eq!(
            n.table_location("loans"),
            "s3://sluice-prod-eu-lake/data/loans/"
        );
    }
}
