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
    /// Create the ECR repository if missing, log in with the SDK's token, tag and push.
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
                build(&a)?;
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
                run(
                    Command::new("docker").args(["tag", &local_tag(&a), &target]),
                    "docker tag",
                )?;
                run(
                    Command::new("docker").args(["push", &target]),
                    "docker push",
                )?;
                println!("Pushed. Set in ethnode.toml:\n  [deploy]\n  image = \"{target}\"");
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
