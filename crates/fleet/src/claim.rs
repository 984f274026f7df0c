//! "One node at a time": a claim the whole stack sees, so that nodes launched together (whose automatic
//! snapshots fall due together) never take their clients down at the same time.
//!
//! The claim is the SSM parameter `/ethnode/<stack>/snapshot-claim`, holding `<owner> <expires-ms>`.
//! Creating a parameter that does not exist is atomic in SSM (PutParameter without Overwrite fails with
//! ParameterAlreadyExists), so of two nodes only one gets it. An expired claim (its holder died) is
//! deleted and created anew; two nodes doing that at once could both succeed in turn, so the claim is
//! read back after a moment and only the one whose value stands holds it.

use crate::FleetError;
use ethnode_aws::Ssm;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The SSM parameter of a stack's snapshot claim.
pub fn claim_parameter(stack: &str) -> String {
    format!("/ethnode/{stack}/snapshot-claim")
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A held claim; [`Claim::release`] gives it back (an unreleased one expires).
#[derive(Debug)]
pub struct Claim {
    name: String,
    value: String,
}

impl Claim {
    /// Tries to take the stack's claim for `owner` for `ttl`; `None` when another node holds it.
    /// `settle` is how long to wait before reading the claim back.
    pub async fn take(
        ssm: &Ssm,
        stack: &str,
        owner: &str,
        ttl: Duration,
        settle: Duration,
    ) -> Result<Option<Self>, FleetError> {
        let name = claim_parameter(stack);
        let value = format!("{owner} {}", now_ms() + ttl.as_millis());
        if !ssm.create(&name, &value).await? {
            let held = ssm.get(&name).await?.unwrap_or_default();
            let expires: u128 = held
                .rsplit(' ')
                .next()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            if expires > now_ms() {
                return Ok(None);
            }
            // Its holder is gone: clear it and race for it like everyone else.
            ssm.delete(&name).await?;
            if !ssm.create(&name, &value).await? {
                return Ok(None);
            }
        }
        tokio::time::sleep(settle).await;
        Ok((ssm.get(&name).await?.as_deref() == Some(value.as_str()))
            .then_some(Self { name, value }))
    }

    /// The other node that holds the claim, as written in it, if any.
    pub async fn holder(ssm: &Ssm, stack: &str) -> Result<Option<String>, FleetError> {
        Ok(ssm
            .get(&claim_parameter(stack))
            .await?
            .and_then(|v| v.split(' ').next().map(str::to_owned)))
    }

    /// Gives the claim back, if it is still ours.
    pub async fn release(self, ssm: &Ssm) -> Result<(), FleetError> {
        if ssm.get(&self.name).await?.as_deref() == Some(self.value.as_str()) {
            ssm.delete(&self.name).await?;
        }
        Ok(())
    }
}
