//! A change set as a person reads it: what is added, changed, removed, and — loudly — what is replaced.

use ethnode_aws::ResourceChange;

/// How much a line should worry the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Plain change.
    Info,
    /// A replacement that costs little (a new security group id, a new role).
    Warn,
    /// A replacement that costs a re-sync or an outage.
    Danger,
}

/// Resources whose replacement throws away chain data or takes every node down at once.
fn costly(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "AWS::AutoScaling::AutoScalingGroup" => Some(
            "every node is replaced: its chain volume is deleted and the new one starts from ChainSnapshotId (or re-syncs from scratch, which takes days)",
        ),
        "AWS::ECS::Cluster" | "AWS::ECS::Service" => {
            Some("every node's task is stopped and started again")
        }
        "AWS::Route53::HostedZone" => Some(
            "the zone gets new name servers (public) or a new id: callers resolving the old one lose the node",
        ),
        "AWS::EC2::SecurityGroup" => Some(
            "a new group id: stacks that imported the old AccessSecurityGroup export must be updated first",
        ),
        _ => None,
    }
}

/// One line per change, most severe first, plus a verdict line when anything costly is replaced.
pub fn summarize(changes: &[ResourceChange]) -> Vec<(Severity, String)> {
    let mut lines: Vec<(Severity, String)> = changes
        .iter()
        .map(|c| {
            let replacement = c.replacement.as_deref();
            let (sev, what) = match (c.action.as_str(), replacement) {
                ("Modify", Some("True")) => (
                    if costly(&c.resource_type).is_some() {
                        Severity::Danger
                    } else {
                        Severity::Warn
                    },
                    "REPLACE".to_string(),
                ),
                ("Modify", Some("Conditional")) => (
                    if costly(&c.resource_type).is_some() {
                        Severity::Danger
                    } else {
                        Severity::Warn
                    },
                    "MAY REPLACE".to_string(),
                ),
                ("Remove", _) => (
                    if costly(&c.resource_type).is_some() {
                        Severity::Danger
                    } else {
                        Severity::Warn
                    },
                    "remove".to_string(),
                ),
                (a, _) => (Severity::Info, a.to_lowercase()),
            };
            let mut line = format!("{what:<11} {:<28} {}", c.logical_id, c.resource_type);
            if !c.scope.is_empty() {
                line.push_str(&format!(" ({})", c.scope.join(", ")));
            }
            if sev == Severity::Danger
                && let Some(why) = costly(&c.resource_type)
            {
                line.push_str(&format!("\n            !! {why}"));
            }
            (sev, line)
        })
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.0));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: &str, id: &str, ty: &str, repl: Option<&str>) -> ResourceChange {
        ResourceChange {
            action: action.into(),
            logical_id: id.into(),
            resource_type: ty.into(),
            replacement: repl.map(Into::into),
            scope: vec!["Properties".into()],
        }
    }

    #[test]
    fn replacements_of_costly_resources_come_first_and_loud() {
        let lines = summarize(&[
            change(
                "Modify",
                "LaunchTemplate",
                "AWS::EC2::LaunchTemplate",
                Some("False"),
            ),
            change(
                "Modify",
                "AutoScalingGroup",
                "AWS::AutoScaling::AutoScalingGroup",
                Some("True"),
            ),
            change("Modify", "TaskRole", "AWS::IAM::Role", Some("True")),
            change("Add", "AlarmTopic", "AWS::SNS::Topic", None),
        ]);
        assert_eq!(lines[0].0, Severity::Danger);
        assert!(
            lines[0].1.starts_with("REPLACE     AutoScalingGroup"),
            "{}",
            lines[0].1
        );
        assert!(lines[0].1.contains("re-syncs from scratch"));
        assert_eq!(lines[1].0, Severity::Warn);
        assert!(lines[1].1.contains("TaskRole"));
        assert!(
            lines
                .iter()
                .any(|(s, l)| *s == Severity::Info && l.starts_with("modify      LaunchTemplate"))
        );
        assert!(
            lines
                .iter()
                .any(|(s, l)| *s == Severity::Info && l.starts_with("add         AlarmTopic"))
        );
    }
}
