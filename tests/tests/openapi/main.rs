//! docs/openapi.json, the one document for the whole HTTP API, against the
//! code: its operations are exactly the two routers' routes, its problem
//! codes exactly the ones the code can answer, its examples and links are
//! valid, and every response it documents was produced by the real routers
//! (in-memory adapters, requests as API Gateway events through lambda_http)
//! and conforms to its schema ([`commands`], [`queries`]). Schemathesis
//! (scripts/api-contract.sh) fuzzes the same document against a running server.

mod commands;
mod contract;
mod queries;

use std::collections::BTreeSet;

use contract::{Contract, escape, repo_file};
use serde_json::Value;

#[test]
fn the_document_is_openapi_3_1_and_its_operations_are_exactly_the_routers_routes() {
    let contract = Contract::load();
    assert_eq!(contract.doc["openapi"], "3.1.0");
    let routes = |list: &[(&str, &str)]| list.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect::<BTreeSet<_>>();
    let commands = ledgerline_tests::gateway_event::documented_routes_of(&contract.doc, "command-api");
    let queries = ledgerline_tests::gateway_event::documented_routes_of(&contract.doc, "query-api");
    assert_eq!(commands, routes(command_api::ROUTES));
    assert_eq!(queries, routes(query_api::ROUTES));
    let all = ledgerline_tests::gateway_event::documented_routes(&contract.doc);
    assert_eq!(all, commands.union(&queries).cloned().collect(), "every operation is tagged with the function that serves it");
}

/// `"code"` string literals next to a status (`ApiError::new(StatusCode::X, "code", ...)`,
/// `Self::new(...)`) and the `=> "code"` arms of `DomainError::code`.
fn codes_in_source() -> BTreeSet<String> {
    let mut files = vec![repo_file("shared/src/http/problem.rs"), repo_file("shared/src/domain/error.rs")];
    for dir in ["functions/command-api/src", "functions/query-api/src", "cli/src/gateway"] {
        for entry in std::fs::read_dir(repo_file(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut codes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let after_status = text.split("StatusCode::").skip(1).filter_map(|rest| {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_').trim_start();
            rest.strip_prefix(',')?.trim_start().strip_prefix('"')?.split('"').next()
        });
        let arms = text.split("=> \"").skip(1).filter(|_| file.ends_with("error.rs")).filter_map(|rest| rest.split('"').next());
        codes.extend(
            after_status.chain(arms).filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).map(String::from),
        );
    }
    codes
}

#[test]
fn the_problem_code_enum_is_exactly_what_the_code_can_answer() {
    let contract = Contract::load();
    let documented: BTreeSet<String> = contract.doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().into())
        .collect();
    let mut answered = codes_in_source();
    for expected in ["validation_failed", "account_limit_reached", "method_not_allowed", "not_yet_consistent", "bad_gateway"] {
        assert!(answered.contains(expected), "the scan finds {expected}: {answered:?}");
    }
    // decide() refuses to open an existing account, but the router opens
    // under a fresh random id: no request can get this answer.
    assert!(answered.remove("account_already_exists"));
    assert_eq!(documented, answered, "ProblemCode in docs/openapi.json against the codes in the source");
    for code in &documented {
        let name = code.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect::<String>() + "Problem";
        assert!(contract.doc["components"]["schemas"][&name].is_object(), "a schema {name} for {code}");
    }
}

/// (where, schema pointer, example) for every example in the document.
fn examples(contract: &Contract) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let mut media = |place: String, pointer: String, content: &Value| {
        for (kind, media) in content.as_object().into_iter().flatten() {
            let schema = format!("{pointer}/content/{}/schema", escape(kind));
            for (name, example) in media["examples"].as_object().into_iter().flatten() {
                out.push((format!("{place} {kind} example {name}"), schema.clone(), contract.resolve(example)["value"].clone()));
            }
        }
    };
    for (path, operations) in contract.doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let here = format!("/paths/{}/{method}", escape(path));
            if operation["requestBody"].is_object() {
                media(format!("{method} {path} request"), format!("{here}/requestBody"), &operation["requestBody"]["content"]);
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let pointer = response["$ref"].as_str().map_or(format!("{here}/responses/{status}"), |r| r.trim_start_matches('#').into());
                media(format!("{method} {path} {status}"), pointer, &contract.resolve(response)["content"]);
            }
        }
    }
    for (name, response) in contract.doc["components"]["responses"].as_object().unwrap() {
        media(format!("response {name}"), format!("/components/responses/{name}"), &response["content"]);
    }
    // Idempotency keys have none: one key sent with two requests is refused.
    for (name, parameter) in contract.doc["components"]["parameters"].as_object().unwrap() {
        if let Some(example) = parameter.get("example") {
            out.push((format!("parameter {name}"), format!("/components/parameters/{name}/schema"), example.clone()));
        }
    }
    out
}

#[test]
fn every_example_conforms_to_its_schema() {
    let contract = Contract::load();
    let examples = examples(&contract);
    assert!(examples.len() > 40, "{} examples", examples.len());
    let mut wrong = Vec::new();
    for (place, schema, example) in &examples {
        assert!(!example.is_null(), "{place} has a value");
        wrong.extend(contract.violations(schema, example).into_iter().map(|v| format!("{place}: {v}")));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The validator does refuse: a problem with another code than the response's.
    let deposit_404 = &examples.iter().find(|(place, ..)| place.starts_with("post /accounts/{id}/deposits 404")).unwrap();
    let mut forged = deposit_404.2.clone();
    forged["code"] = "not_found".into();
    assert!(!contract.violations(&deposit_404.1, &forged).is_empty(), "{forged}");
}

#[test]
fn links_name_real_operations_parameters_and_fields() {
    let contract = Contract::load();
    let mut operations = std::collections::BTreeMap::new();
    for path in contract.doc["paths"].as_object().unwrap().values() {
        for operation in path.as_object().unwrap().values() {
            operations.insert(operation["operationId"].as_str().unwrap().to_owned(), operation);
        }
    }
    let mut checked = 0;
    for (id, operation) in &operations {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = contract.resolve(response);
            // A link's expressions point at fields of the response: its example has them.
            let example = &response["content"]["application/json"]["examples"]["example"]["value"];
            let field = |expression: &Value| {
                let pointer = expression.as_str().and_then(|e| e.strip_prefix("$response.body#")).expect("a $response.body expression");
                assert!(example.pointer(pointer).is_some_and(|v| !v.is_null()), "{id} {status}: {pointer} is in {example}");
            };
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().and_then(|t| operations.get(t)).unwrap_or_else(|| panic!("{id} {status} {name}"));
                let parameters: BTreeSet<&str> =
                    target["parameters"].as_array().unwrap().iter().map(|p| contract.resolve(p)["name"].as_str().unwrap()).collect();
                for (parameter, expression) in link["parameters"].as_object().into_iter().flatten() {
                    assert!(parameters.contains(parameter.as_str()), "{id} {status} {name}: {parameter} in {parameters:?}");
                    field(expression);
                }
                for (property, expression) in link["requestBody"].as_object().into_iter().flatten() {
                    let body = contract.resolve(&target["requestBody"]["content"]["application/json"]["schema"]);
                    assert!(body["properties"][property].is_object(), "{id} {status} {name}: {property}");
                    field(expression);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "{checked} links");
}

/// Whether `value` is valid against `components/schemas/{name}`.
fn accepts(contract: &Contract, name: &str, value: &str) -> bool {
    contract.validator(&format!("/components/schemas/{name}")).is_valid(&Value::String(value.into()))
}

#[test]
fn input_schemas_accept_exactly_what_the_code_accepts() {
    use ledgerline_shared::domain::{Currency, Reference};
    use ledgerline_shared::idempotency::IdempotencyKey;
    let contract = Contract::load();
    let mut differ = Vec::new();
    // References: every character alone (the schema's character class is
    // the code's rule, control and invisible formatting characters), and the length.
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let text = c.to_string();
        if Reference::new(text.clone()).is_ok() != accepts(&contract, "Reference", &text) {
            differ.push(format!("reference {c:?} (U+{:04X})", c as u32));
        }
    }
    for text in ["é".repeat(140), "é".repeat(141), "🏦 rent".into(), String::new()] {
        if Reference::new(text.clone()).is_ok() != accepts(&contract, "Reference", &text) {
            differ.push(format!("reference of {} characters", text.chars().count()));
        }
    }
    // Currencies: every three capital letters, and a few others.
    let letters = || (b'A'..=b'Z').map(char::from);
    let codes = letters().flat_map(|a| letters().flat_map(move |b| letters().map(move |c| format!("{a}{b}{c}"))));
    for code in codes.chain(["eur", "EURO", "", "€"].map(String::from)) {
        if code.parse::<Currency>().is_ok() != accepts(&contract, "Currency", &code) {
            differ.push(format!("currency {code:?}"));
        }
    }
    // Idempotency keys: every ASCII character alone, and the length.
    for key in (0u8..=0x7F).map(|b| char::from(b).to_string()).chain(["k".repeat(255), "k".repeat(256), String::new(), "é".into()]) {
        if IdempotencyKey::new(key.clone()).is_ok() != accepts(&contract, "IdempotencyKeyValue", &key) {
            differ.push(format!("idempotency key {key:?}"));
        }
    }
    // Account ids: the UUID spellings the code parses, and near misses.
    let id = uuid::Uuid::new_v4();
    let spellings = [
        id.hyphenated().to_string(),
        id.hyphenated().to_string().to_uppercase(),
        id.simple().to_string(),
        id.braced().to_string(),
        id.urn().to_string(),
        id.urn().to_string().to_uppercase(),
        id.urn().to_string().replacen("urn:uuid", "Urn:UUID", 1),
        id.hyphenated().to_string()[1..].into(),
        format!("{}x", id.simple()),
        format!("{{{}}}", id.simple()),
        id.hyphenated().to_string().replace('-', "_"),
        "not-a-uuid".into(),
        String::new(),
    ];
    for text in spellings {
        if uuid::Uuid::parse_str(&text).is_ok() != accepts(&contract, "AccountIdInput", &text) {
            differ.push(format!("account id {text:?}"));
        }
    }
    assert!(differ.is_empty(), "the schema and the code disagree on:\n{}", differ.join("\n"));
}
