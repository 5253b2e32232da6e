//! docs/openapi.json as a checker of real answers: for a (method, path
//! template, status) the document must describe, the status, the content
//! type, the required headers and their values, and the body are checked
//! against what the document declares, and every checked triple is recorded
//! so a test can insist that it drove every documented response.
//!
//! Schemas are validated with the `jsonschema` crate (draft 2020-12, the
//! dialect of OpenAPI 3.1, with `format` asserted), built without its
//! default features: they fetch remote and file references, and every
//! reference here is inside the document. A hand-written validator would
//! have had to cover `$ref`, `allOf`/`oneOf`, `if`/`then`/`else`, `const`,
//! `pattern` and formats correctly; a conformant one costs a few crates in
//! this test-only package and nothing in the functions.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use jsonschema::{Draft, Validator};
use ledgerline_tests::gateway_event::RouterAnswer;
use serde_json::{Value, json};

pub fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A (METHOD, path template, status) the document describes.
pub type Response = (String, String, u16);

pub struct Contract {
    pub doc: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<Validator>>>,
    seen: Mutex<BTreeSet<Response>>,
}

/// `~` and `/` escaped for a JSON pointer.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Contract {
    pub fn load() -> Self {
        let text = std::fs::read_to_string(repo_file("docs/openapi.json")).expect("docs/openapi.json");
        Self { doc: serde_json::from_str(&text).expect("docs/openapi.json is JSON"), validators: Mutex::default(), seen: Mutex::default() }
    }

    /// Follows `$ref`s inside the document until `value` is no reference.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(target) = value.get("$ref").and_then(Value::as_str) {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("only local references: {target}"));
            value = self.doc.pointer(pointer).unwrap_or_else(|| panic!("{target} points at nothing"));
        }
        value
    }

    /// The pointer of `value` when it is a reference, else `here`.
    fn location(value: &Value, here: String) -> String {
        value.get("$ref").and_then(Value::as_str).map_or(here, |target| target.trim_start_matches('#').to_owned())
    }

    /// A validator for the schema at `pointer`: the whole document is the
    /// root resource, so its `#/components/...` references resolve.
    pub fn validator(&self, pointer: &str) -> std::sync::Arc<Validator> {
        let mut validators = self.validators.lock().unwrap();
        validators
            .entry(pointer.to_owned())
            .or_insert_with(|| {
                assert!(self.doc.pointer(pointer).is_some(), "no schema at {pointer}");
                let mut root = self.doc.clone();
                // A URI fragment: `{id}` in a path is percent-encoded there.
                let fragment = pointer.replace('%', "%25").replace('{', "%7B").replace('}', "%7D");
                root["$ref"] = json!(format!("#{fragment}"));
                let validator = jsonschema::options()
                    .with_draft(Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
                std::sync::Arc::new(validator)
            })
            .clone()
    }

    /// What `instance` breaks of the schema at `pointer`.
    pub fn violations(&self, pointer: &str, instance: &Value) -> Vec<String> {
        self.validator(pointer).iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect()
    }

    /// Every documented response of the operations tagged `tag`.
    pub fn documented(&self, tag: &str) -> BTreeSet<Response> {
        let mut out = BTreeSet::new();
        for (path, operations) in self.doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                if !operation["tags"].as_array().is_some_and(|tags| tags.iter().any(|t| t == tag)) {
                    continue;
                }
                for status in operation["responses"].as_object().unwrap().keys() {
                    out.insert((method.to_uppercase(), path.clone(), status.parse().expect("numeric statuses only")));
                }
            }
        }
        out
    }

    /// The responses checked so far.
    pub fn seen(&self) -> BTreeSet<Response> {
        self.seen.lock().unwrap().clone()
    }

    /// Checks `answer` to `method path` (a template such as
    /// `/accounts/{id}`) against the document; panics with every violation.
    pub fn check(&self, method: &str, path: &str, answer: &RouterAnswer) {
        let problems = self.problems(method, path, answer);
        let body = String::from_utf8_lossy(&answer.body);
        assert!(problems.is_empty(), "{method} {path} answered {} {body}:\n  {}", answer.status, problems.join("\n  "));
        self.seen.lock().unwrap().insert((method.to_owned(), path.to_owned(), answer.status));
    }

    fn problems(&self, method: &str, path: &str, answer: &RouterAnswer) -> Vec<String> {
        let operation_pointer = format!("/paths/{}/{}", escape(path), method.to_lowercase());
        let Some(operation) = self.doc.pointer(&operation_pointer) else {
            return vec![format!("{method} {path} is not in the document")];
        };
        let status = answer.status.to_string();
        let Some(declared) = operation["responses"].get(&status) else {
            return vec![format!("status {status} is not documented")];
        };
        let response = self.resolve(declared);
        let response_pointer = Self::location(declared, format!("{operation_pointer}/responses/{status}"));
        let mut problems = self.header_problems(response, answer);
        let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match response.get("content").and_then(Value::as_object) {
            None if answer.body.is_empty() => {}
            None => problems.push("a body where the document declares none".into()),
            Some(content) => match content.get(essence) {
                None => problems.push(format!("content type {content_type:?}, documented: {:?}", content.keys().collect::<Vec<_>>())),
                // A text body (CSV) is checked as the string it is.
                Some(_) if essence.starts_with("text/") => {
                    let schema = format!("{response_pointer}/content/{}/schema", escape(essence));
                    problems.extend(self.violations(&schema, &Value::String(String::from_utf8_lossy(&answer.body).into_owned())));
                }
                Some(_) => match serde_json::from_slice::<Value>(&answer.body) {
                    Err(e) => problems.push(format!("the body is not JSON: {e}")),
                    Ok(body) => {
                        let schema = format!("{response_pointer}/content/{}/schema", escape(essence));
                        problems.extend(self.violations(&schema, &body));
                    }
                },
            },
        }
        problems
    }

    /// Required headers present, and every documented header that is present
    /// valid against its schema (integers parsed first, as headers are text).
    fn header_problems(&self, response: &Value, answer: &RouterAnswer) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(headers) = response.get("headers").and_then(Value::as_object) else { return problems };
        for (name, declared) in headers {
            let header = self.resolve(declared);
            let Some(value) = answer.headers.get(name.as_str()).map(|v| v.to_str().unwrap_or("<not text>").to_owned()) else {
                if header["required"] == true {
                    problems.push(format!("the required header {name} is missing"));
                }
                continue;
            };
            let schema_pointer = Self::location(declared, String::new());
            assert!(!schema_pointer.is_empty(), "headers are declared in components/headers ({name})");
            let schema = self.resolve(&header["schema"]);
            let instance = match schema["type"].as_str() {
                Some("integer") => value.parse::<i64>().map_or(json!(value), |n| json!(n)),
                _ => json!(value),
            };
            problems
                .extend(self.violations(&format!("{schema_pointer}/schema"), &instance).into_iter().map(|p| format!("header {name}: {p}")));
        }
        problems
    }
}
