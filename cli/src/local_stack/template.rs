//! What `template.yaml` says about how AWS runs each function, read so the
//! local stack fails the way AWS fails: each function's `Timeout` (an
//! invocation running longer is a failure, and the schedule goes on), and
//! the Kafka event source's `MaximumRetryAttempts`.
//!
//! The template is our own file, built into the binary; these few keys are
//! read line by line rather than with a YAML library (the CloudFormation
//! tags `!Ref`, `!Sub` would need one that knows them). The unit tests
//! below fail if the template's shape changes under them.

use std::collections::HashMap;
use std::time::Duration;

/// The template this binary was built with.
pub const TEMPLATE: &str = include_str!("../../../template.yaml");

/// Per function (by binary name, as `cargo lambda watch` knows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionLimits {
    timeouts: HashMap<String, Duration>,
    default_timeout: Duration,
    /// The projector event source's `MaximumRetryAttempts`.
    pub projector_max_retries: u32,
}

impl FunctionLimits {
    pub fn from_template(text: &str) -> Self {
        let mut timeouts = HashMap::new();
        let mut default_timeout = Duration::from_secs(3); // Lambda's own default
        let mut projector_max_retries = None;
        // The binary and Timeout of the resource being read; one without
        // a Timeout of its own takes the global one.
        let mut binary: Option<String> = None;
        let mut timeout: Option<u64> = None;
        let mut section = "";
        let mut in_globals_function = false;
        let flush = |binary: &mut Option<String>, timeout: &mut Option<u64>, timeouts: &mut HashMap<String, Duration>| {
            if let (Some(name), Some(seconds)) = (binary.take(), timeout.take()) {
                timeouts.insert(name, Duration::from_secs(seconds));
            }
            *timeout = None;
        };
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if indent == 0 {
                flush(&mut binary, &mut timeout, &mut timeouts);
                section = trimmed.trim_end_matches(':');
                continue;
            }
            if section == "Globals" {
                if indent == 2 {
                    in_globals_function = trimmed == "Function:";
                } else if in_globals_function
                    && indent == 4
                    && let Some(seconds) = value_of(trimmed, "Timeout").and_then(|v| v.parse().ok())
                {
                    default_timeout = Duration::from_secs(seconds);
                }
            } else if section == "Resources" {
                if indent == 2 {
                    flush(&mut binary, &mut timeout, &mut timeouts);
                } else if let Some(name) = value_of(trimmed, "Binary") {
                    binary = Some(name.to_owned());
                } else if indent == 6
                    && let Some(seconds) = value_of(trimmed, "Timeout").and_then(|v| v.parse().ok())
                {
                    timeout = Some(seconds);
                } else if let Some(retries) = value_of(trimmed, "MaximumRetryAttempts").and_then(|v| v.parse().ok()) {
                    // The schedules' RetryPolicy sits deeper (8+); the event sources' at 6.
                    if indent == 6 {
                        projector_max_retries = Some(retries);
                    }
                }
            }
        }
        flush(&mut binary, &mut timeout, &mut timeouts);
        Self { timeouts, default_timeout, projector_max_retries: projector_max_retries.unwrap_or(3) }
    }

    /// The template's limits, as built into this binary.
    pub fn built_in() -> Self {
        Self::from_template(TEMPLATE)
    }

    /// How long one invocation of `function` may run in AWS.
    pub fn timeout(&self, function: &str) -> Duration {
        self.timeouts.get(function).copied().unwrap_or(self.default_timeout)
    }
}

/// `value` of a `key: value` line.
fn value_of<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_timeouts_and_retries_are_read() {
        let limits = FunctionLimits::built_in();
        assert_eq!(limits.timeout("outbox-publisher"), Duration::from_secs(70));
        assert_eq!(limits.timeout("projector"), Duration::from_secs(60));
        assert_eq!(limits.timeout("reconciler"), Duration::from_secs(60));
        // The HTTP functions take the global Timeout.
        assert_eq!(limits.timeout("command-api"), Duration::from_secs(15));
        assert_eq!(limits.timeout("query-api"), Duration::from_secs(15));
        assert_eq!(limits.projector_max_retries, 10);
    }

    #[test]
    fn a_small_template_reads_the_same_way() {
        let text = "Globals:\n  Function:\n    Timeout: 9\nResources:\n  A:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: a\n    Properties:\n      Timeout: 30\n  B:\n    Metadata:\n      BuildProperties:\n        Binary: b\n    Properties:\n      CodeUri: .\n  Source:\n    Properties:\n      MaximumRetryAttempts: 4\n";
        let limits = FunctionLimits::from_template(text);
        assert_eq!((limits.timeout("a"), limits.timeout("b")), (Duration::from_secs(30), Duration::from_secs(9)));
        assert_eq!(limits.projector_max_retries, 4);
    }
}
