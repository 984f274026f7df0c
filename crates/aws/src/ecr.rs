//! ECR: the image repository and a registry login from the SDK's authorization token.

use crate::AwsError;
use aws_config::SdkConfig;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use base64::Engine;

const SERVICE: &str = "ecr";

/// Credentials for `docker login`.
#[derive(Clone)]
pub struct RegistryLogin {
    /// Registry endpoint, e.g. `https://123456789012.dkr.ecr.eu-central-1.amazonaws.com`.
    pub endpoint: String,
    /// User name (`AWS`).
    pub username: String,
    /// Password: secret, never logged.
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("password", &"** redacted **")
            .finish()
    }
}

/// ECR client wrapper.
#[derive(Debug, Clone)]
pub struct Ecr {
    client: Client,
}

impl Ecr {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// The repository's URI, creating it (scan on push, immutable tags) when missing; `true` if created.
    pub async fn ensure_repository(&self, name: &str) -> Result<(String, bool), AwsError> {
        match self
            .client
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
        {
            Ok(out) => {
                if let Some(uri) = out.repositories().first().and_then(|r| r.repository_uri()) {
                    return Ok((uri.to_owned(), false));
                }
            }
            Err(e) => {
                let err = AwsError::sdk(SERVICE, "DescribeRepositories", e);
                if err.code.as_deref() != Some("RepositoryNotFoundException") {
                    return Err(err);
                }
            }
        }
        let out = self
            .client
            .create_repository()
            .repository_name(name)
            // Immutable tags: a pinned release in a task definition always means the same image.
            .image_tag_mutability(ImageTagMutability::Immutable)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "CreateRepository", e))?;
        let uri = out
            .repository()
            .and_then(|r| r.repository_uri())
            .ok_or_else(|| AwsError::malformed(SERVICE, "CreateRepository", "a repository URI"))?;
        Ok((uri.to_owned(), true))
    }

    /// A registry login from GetAuthorizationToken (base64 of `user:password`).
    pub async fn login(&self) -> Result<RegistryLogin, AwsError> {
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| AwsError::sdk(SERVICE, "GetAuthorizationToken", e))?;
        let data = out.authorization_data().first().ok_or_else(|| {
            AwsError::malformed(SERVICE, "GetAuthorizationToken", "authorization data")
        })?;
        let token = data
            .authorization_token()
            .ok_or_else(|| AwsError::malformed(SERVICE, "GetAuthorizationToken", "a token"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                AwsError::malformed(SERVICE, "GetAuthorizationToken", "a base64 token")
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            AwsError::malformed(SERVICE, "GetAuthorizationToken", "user:password")
        })?;
        Ok(RegistryLogin {
            endpoint: data.proxy_endpoint().unwrap_or_default().to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The manifest of `repository:reference` (a tag, or a `sha256:` digest) and its media type, or
    /// `None` when the image does not exist. Image indexes (multi-architecture) are accepted as such.
    pub async fn image_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<(String, String)>, AwsError> {
        let id = if reference.starts_with("sha256:") {
            aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(reference)
        } else {
            aws_sdk_ecr::types::ImageIdentifier::builder().image_tag(reference)
        }
        .build();
        let out = match self
            .client
            .batch_get_image()
            .repository_name(repository)
            .image_ids(id)
            .accepted_media_types("application/vnd.oci.image.index.v1+json")
            .accepted_media_types("application/vnd.docker.distribution.manifest.list.v2+json")
            .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
            .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = AwsError::sdk(SERVICE, "BatchGetImage", e);
                if err.code.as_deref() == Some("RepositoryNotFoundException") {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        Ok(out.images().first().and_then(|i| {
            Some((
                i.image_manifest_media_type().unwrap_or_default().to_owned(),
                i.image_manifest()?.to_owned(),
            ))
        }))
    }
}
