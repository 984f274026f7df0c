//! `ethnode image build|push`: the node image (agent + pinned Reth and Lighthouse) and its ECR repository.

use super::Globals;
use clap::{Args, Subcommand};
use ethnode_aws::Ecr;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCmd {
    /// Build the image from deploy/docker/Dockerfile (run from the repository root).
    Build(ImageArgs),
    /// Create the ECR repository if missing, log in with the SDK's token, then build for every
    /// `--platforms` entry and push one multi-architecture image (an image index).
    Push(ImageArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImageArgs {
    /// Image tag (ECR tags are immutable: a new release needs a new tag).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,

    /// ECR repository name.
    #[arg(long, default_value = "ethnode")]
    repository: String,

    /// Platforms `push` builds (docker buildx): both, so Graviton (arm64) and x86 instances run it;
    /// `ethnode doctor` checks the pushed index carries the instance type's architecture.
    #[arg(long, default_value = "linux/amd64,linux/arm64")]
    platforms: String,
}

/// Fails plainly when no Docker engine answers.
fn docker_engine() -> anyhow::Result<()> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            anyhow::bail!(
                "no Docker engine reachable (`docker info`: {}). Building and pushing the image needs one: run this where Docker runs (a workstation or a CI runner)",
                err.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no answer")
                    .trim()
            )
        }
        Err(e) => anyhow::bail!(
            "no Docker engine reachable: cannot run `docker` ({e}). Install Docker, or run this where it is installed"
        ),
    }
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd.status().map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

impl ImageCmd {
    pub(crate) async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("warn");
        match self {
            ImageCmd::Build(a) => {
                docker_engine()?;
                build(&a)?;
            }
            ImageCmd::Push(a) => {
                let (config, _) = g.load_config()?;
                let sdk = ethnode_aws::sdk_config(config.aws.region.as_deref()).await;
                let ecr = Ecr::new(&sdk);
                let (uri, created) = ecr.ensure_repository(&a.repository).await?;
                println!(
                    "ECR repository {uri} {}",
                    if created {
                        "created (scan on push, immutable tags)"
                    } else {
                        "exists"
                    }
                );
                let login = ecr.login().await?;
                docker_engine()?;
                let mut docker_login = Command::new("docker")
                    .args([
                        "login",
                        "--username",
                        &login.username,
                        "--password-stdin",
                        &login.endpoint,
                    ])
                    .stdin(Stdio::piped())
                    .spawn()?;
                if let Some(mut stdin) = docker_login.stdin.take() {
                    std::io::Write::write_all(&mut stdin, login.password.as_bytes())?;
                }
                anyhow::ensure!(
                    docker_login.wait()?.success(),
                    "docker login to {} failed",
                    login.endpoint
                );
                let target = format!("{uri}:{}", a.tag);
                // A multi-platform build cannot be loaded into the local engine: buildx pushes it.
                run(
                    Command::new("docker").args([
                        "buildx",
                        "build",
                        "--platform",
                        &a.platforms,
                        "-f",
                        "deploy/docker/Dockerfile",
                        "-t",
                        &target,
                        "--push",
                        ".",
                    ]),
                    "docker buildx build --push",
                )?;
                // Pin by digest: an immutable tag could still be deleted and pushed again.
                let digest = Command::new("docker")
                    .args([
                        "buildx",
                        "imagetools",
                        "inspect",
                        &target,
                        "--format",
                        "{{.Manifest.Digest}}",
                    ])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .filter(|d| d.starts_with("sha256:"));
                let pinned = digest.map_or(target.clone(), |d| format!("{uri}@{d}"));
                println!(
                    "Pushed ({}). Set in ethnode.toml:\n  [deploy]\n  image = \"{pinned}\"",
                    a.platforms
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn local_tag(a: &ImageArgs) -> String {
    format!("{}:{}", a.repository, a.tag)
}

fn build(a: &ImageArgs) -> anyhow::Result<()> {
    let dockerfile = Path::new("deploy/docker/Dockerfile");
    anyhow::ensure!(
        dockerfile.is_file() && Path::new("Cargo.toml").is_file(),
        "run from the ethnode repository root: the image builds the agent from source (deploy/docker/Dockerfile)"
    );
    run(
        Command::new("docker").args([
            "build",
            "-f",
            "deploy/docker/Dockerfile",
            "-t",
            &local_tag(a),
            ".",
        ]),
        "docker build",
    )
}
