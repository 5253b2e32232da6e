//! No secret reaches a function's configuration: template.yaml gives each
//! function the ARN of its secrets, which it fetches at cold start through
//! the Parameters and Secrets extension (`shared/src/secrets.rs`), and the
//! IAM permission to read exactly those secrets.

const TEMPLATE: &str = include_str!("../../template.yaml");

/// Every `NAME: value` line under an `Environment:` → `Variables:` block.
fn environment_variables(template: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    // The indentation of the `Variables:` line we are under, if any.
    let mut variables_indent: Option<usize> = None;
    let mut environment_indent: Option<usize> = None;
    for line in template.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if variables_indent.is_some_and(|v| indent <= v) {
            variables_indent = None;
        }
        if environment_indent.is_some_and(|e| indent <= e) {
            environment_indent = None;
        }
        match (environment_indent, variables_indent, trimmed) {
            (_, _, "Environment:") => environment_indent = Some(indent),
            (Some(_), None, "Variables:") => variables_indent = Some(indent),
            (_, Some(_), variable) => {
                let (name, value) = variable.split_once(':').expect("NAME: value");
                found.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            _ => {}
        }
    }
    found
}

/// The text of each entry indented by two spaces (a parameter, a resource).
fn top_level_blocks(template: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in template.lines() {
        let starts_entry = line.starts_with("  ") && !line.starts_with("   ") && !line.trim_start().starts_with('#');
        if starts_entry || blocks.is_empty() {
            blocks.push(String::new());
        }
        let block = blocks.last_mut().expect("one block at least");
        block.push_str(line);
        block.push('\n');
    }
    blocks
}

#[test]
fn no_function_environment_holds_a_secret() {
    let variables = environment_variables(TEMPLATE);
    let names: Vec<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
    // The reader above finds what it must, so an empty list cannot pass.
    for expected in ["LEDGERLINE_DATABASE_SECRET_ARN", "LEDGERLINE_CURSOR_SECRET_ARN", "LEDGERLINE_EVENTS_TOPIC", "REDIS_URL"] {
        assert!(names.contains(&expected), "{expected} not found among {names:?}");
    }
    for (name, value) in &variables {
        assert!(!value.contains("{{resolve:"), "{name} resolves a secret into the environment: {value}");
        let secret_like = ["DATABASE_URL", "PASSWORD", "TOKEN", "SECRET"].iter().any(|word| name.contains(word));
        assert!(!secret_like || name.ends_with("_SECRET_ARN"), "{name} looks like a secret in plaintext");
    }
    assert!(!TEMPLATE.contains("{{resolve:secretsmanager"), "no dynamic reference puts a secret's value into the stack");
}

#[test]
fn every_function_that_holds_a_secret_arn_may_read_that_secret() {
    // Resource by resource: the secret parameters named in its environment
    // are the ones its GetSecretValue policy names.
    let mut checked = 0;
    for block in top_level_blocks(TEMPLATE).iter().filter(|block| block.contains("Type: AWS::Serverless::Function")) {
        let name = block.lines().next().unwrap_or_default().trim().trim_end_matches(':').to_owned();
        for (variable, value) in environment_variables(block) {
            if !variable.ends_with("_SECRET_ARN") {
                continue;
            }
            let parameter = value.trim_start_matches("!Ref ").to_owned();
            let policy = format!("AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: !Ref {parameter}");
            assert!(block.contains(&policy), "{name} reads {parameter} ({variable}) but may not");
            checked += 1;
        }
    }
    assert_eq!(checked, 5, "the command API, publisher, projector, reconciler (database) and query API (cursor)");
}
