//! Service Quotas: the account's limits ethnode's stack runs into (EBS storage per volume type).

use crate::AwsError;
use aws_config::SdkConfig;
use aws_sdk_servicequotas::Client;

const SERVICE: &str = "servicequotas";

/// Service Quotas client wrapper.
#[derive(Debug, Clone)]
pub struct Quotas {
    client: Client,
}

impl Quotas {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// The value of `service`'s quota named `name` (e.g. "Storage for General Purpose SSD (gp3) volumes,
    /// in TiB"): the account's applied value, else AWS's default. Found by name rather than by quota code,
    /// so that the check reads what the console shows.
    pub async fn value(&self, service: &str, name: &str) -> Result<Option<f64>, AwsError> {
        // ListServiceQuotas returns applied values only where one exists; the defaults list has the rest.
        let mut applied = self
            .client
            .list_service_quotas()
            .service_code(service)
            .into_paginator()
            .items()
            .send();
        while let Some(q) = applied.next().await {
            let q = q.map_err(|e| AwsError::sdk(SERVICE, "ListServiceQuotas", e))?;
            if q.quota_name() == Some(name) {
                return Ok(q.value());
            }
        }
        let mut defaults = self
            .client
            .list_aws_default_service_quotas()
            .service_code(service)
            .into_paginator()
            .items()
            .send();
        while let Some(q) = defaults.next().await {
            let q = q.map_err(|e| AwsError::sdk(SERVICE, "ListAWSDefaultServiceQuotas", e))?;
            if q.quota_name() == Some(name) {
                return Ok(q.value());
            }
        }
        Ok(None)
    }
}
