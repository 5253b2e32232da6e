//! The route table: which function serves a method and path, as API
//! Gateway's HTTP API matches routes. The tables are the functions' own
//! `ROUTES` (the same ones `template.yaml` is checked against), so the
//! gateway cannot drift from the routers.

use serde_json::{Map, Value};

use super::Function;

/// A matched route: the function, API Gateway's `routeKey`
/// (`POST /accounts/{id}/deposits`) and the path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub function: Function,
    pub route_key: String,
    pub path_parameters: Map<String, Value>,
}

/// Every route: the command API's (POST) and the query API's (GET).
pub fn table() -> impl Iterator<Item = (Function, &'static str, &'static str)> {
    let commands = command_api::ROUTES.iter().map(|(method, path)| (Function::CommandApi, *method, *path));
    let queries = query_api::ROUTES.iter().map(|(method, path)| (Function::QueryApi, *method, *path));
    commands.chain(queries)
}

/// The route for `method` and `path`, if any. A `{name}` segment matches
/// one non-empty segment; literal segments win over parameters, as in API
/// Gateway (`/accounts/{id}` never shadows a literal route).
pub fn find(method: &str, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let mut best: Option<(usize, Route)> = None;
    for (function, route_method, template) in table() {
        if !route_method.eq_ignore_ascii_case(method) {
            continue;
        }
        let Some((literals, parameters)) = matches(template, &segments) else { continue };
        if best.as_ref().is_none_or(|(score, _)| literals > *score) {
            let route = Route { function, route_key: format!("{route_method} {template}"), path_parameters: parameters };
            best = Some((literals, route));
        }
    }
    best.map(|(_, route)| route)
}

/// The methods some route serves at `path` (for a 405's `Allow`), sorted.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let Some(segments) = path.strip_prefix('/').map(|p| p.split('/').collect::<Vec<_>>()) else { return vec![] };
    let mut methods: Vec<&'static str> =
        table().filter(|(_, _, template)| matches(template, &segments).is_some()).map(|(_, method, _)| method).collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// Whether `template` matches the path `segments`: how many literal
/// segments it matched, and its parameters.
fn matches(template: &str, segments: &[&str]) -> Option<(usize, Map<String, Value>)> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut parameters = Map::new();
    let mut literals = 0;
    let matched = parts.iter().zip(segments).all(|(part, segment)| {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            parameters.insert(name.to_owned(), Value::String((*segment).to_owned()));
            !segment.is_empty()
        } else {
            literals += 1;
            part == segment
        }
    });
    matched.then_some((literals, parameters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_go_to_the_command_api_and_gets_to_the_query_api() {
        let deposit = find("POST", "/accounts/abc/deposits").unwrap();
        assert_eq!(deposit.function, Function::CommandApi);
        assert_eq!(deposit.route_key, "POST /accounts/{id}/deposits");
        assert_eq!(deposit.path_parameters["id"], "abc");
        assert_eq!(find("POST", "/transfers").unwrap().route_key, "POST /transfers");

        let account = find("GET", "/accounts/abc").unwrap();
        assert_eq!(account.function, Function::QueryApi);
        assert_eq!(account.route_key, "GET /accounts/{id}");
        assert_eq!(find("GET", "/accounts").unwrap().function, Function::QueryApi);
        assert_eq!(find("GET", "/accounts/abc/transactions").unwrap().route_key, "GET /accounts/{id}/transactions");
    }

    #[test]
    fn every_route_of_both_functions_is_reachable() {
        for (function, method, template) in table() {
            let path = template.replace("{id}", "0b7e2f3a-5c1d-4e8f-9a6b-2d3c4e5f6a7b");
            let route = find(method, &path).unwrap_or_else(|| panic!("{method} {template} does not route"));
            assert_eq!((route.function, route.route_key), (function, format!("{method} {template}")));
        }
    }

    #[test]
    fn unknown_methods_and_paths_do_not_route() {
        assert_eq!(find("DELETE", "/accounts/abc"), None);
        assert_eq!(find("GET", "/transfers"), None);
        assert_eq!(find("POST", "/accounts/abc"), None);
        assert_eq!(find("GET", "/accounts//transactions"), None);
        assert_eq!(find("GET", "/nowhere"), None);
        assert_eq!(find("GET", ""), None);
    }
}
