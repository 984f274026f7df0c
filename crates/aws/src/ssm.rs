//! SSM Parameter Store: the stack's current chain snapshot (a String parameter the stack creates) and the
//! API keys of reference providers (SecureStrings, encrypted with the AWS managed key `aws/ssm`).

use crate::AwsError;
use aws_config::SdkConfig;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;

const SERVICE: &str = "ssm";

/// SSM client wrapper.
#[derive(Debug, Clone)]
pub struct Ssm {
    client: Client,
}

impl Ssm {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// A parameter's value (SecureStrings decrypted), or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<String>, AwsError> {
        match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_owned)),
            Err(e) => {
                let err = AwsError::sdk(SERVICE, "GetParameter", e);
                if err.code.as_deref() == Some("ParameterNotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Writes (overwrites) a plain String parameter that already exists.
    pub async fn overwrite(&self, name: &str, value: &str) -> Result<(), AwsError> {
        self.client
            .put_parameter()
            .name(name)
            .value(value)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "PutParameter", e))?;
        Ok(())
    }

    /// Creates or overwrites a SecureString (encrypted with the account's `aws/ssm` key).
    pub async fn put_secret(&self, name: &str, value: &str) -> Result<(), AwsError> {
        self.client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .description("ethnode: a value of ${VAR} in a reference URL, read at run time")
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "PutParameter", e))?;
        Ok(())
    }

    /// Creates a String parameter only if it does not exist yet (atomic in SSM); `false` when it did.
    pub async fn create(&self, name: &str, value: &str) -> Result<bool, AwsError> {
        match self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = AwsError::sdk(SERVICE, "PutParameter", e);
                if err.code.as_deref() == Some("ParameterAlreadyExists") {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Deletes a parameter; one already gone counts as deleted.
    pub async fn delete(&self, name: &str) -> Result<(), AwsError> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = AwsError::sdk(SERVICE, "DeleteParameter", e);
                if err.code.as_deref() == Some("ParameterNotFound") {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}
