//! Integration tests: the real `ethnode` binary against real anvil, moto and a fake IMDSv2 server.
//!
//! One test binary (foundry's layout) so that the harness is compiled once. Every test binds its own
//! free loopback ports and temp dirs, so tests run in parallel without clashing.

// Helpers are `pub` for the sibling test modules; nothing outside this binary sees them.
#![allow(unreachable_pub)]

mod agent;
mod cli;
mod deploy;
mod ethereumjs;
mod gateway;
mod gateway_feeds;
mod harness;
mod imds;
mod monitor;
mod readiness;
mod route53;
mod secrets;
mod snapshots;
