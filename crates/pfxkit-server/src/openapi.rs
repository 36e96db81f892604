//! `GET /KeyfactorAPI/openapi.json`: an OpenAPI 3.0 document generated from the same endpoint
//! table the router reads, so it lists exactly what is served: the paths, their parameters,
//! the required headers, the security schemes and every status an endpoint can answer.

use serde_json::{Map, Value, json};

use crate::api::ENDPOINTS;

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn paged(path: &str) -> bool {
    matches!(
        path,
        "/Certificates"
            | "/CertificateStores"
            | "/CertificateStoreContainers"
            | "/OrchestratorJobs/JobHistory"
            | "/OrchestratorJobs/ScheduledJobs"
    )
}

fn operation(method: &str, path: &str, summary: &str, body: bool) -> Value {
    let mut params = vec![json!({
        "name": "x-keyfactor-requested-with", "in": "header", "required": true,
        "schema": {"type": "string", "enum": ["APIClient"]}
    })];
    for segment in path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let schema = if path.starts_with("/CertificateStores/") {
                json!({"type": "string"})
            } else {
                json!({"type": "integer", "format": "int64", "minimum": 0})
            };
            params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
    }
    if paged(path) {
        params.push(json!({"name": "pq.pageReturned", "in": "query", "schema": {"type": "integer", "minimum": 1}}));
        params.push(json!({"name": "pq.returnLimit", "in": "query", "schema": {"type": "integer", "minimum": 0}}));
    }
    if path == "/Certificates" {
        params.push(json!({"name": "pq.queryString", "in": "query", "schema": {"type": "string"}}));
    }
    if path.starts_with("/Certificates") && method == "GET" {
        params.push(
            json!({"name": "includeLocations", "in": "query", "schema": {"type": "boolean"}}),
        );
    }
    if path == "/Enrollment/PFX" {
        params.push(json!({"name": "x-certificateformat", "in": "header",
            "schema": {"type": "string", "enum": ["PFX", "STORE", "Replace"]}}));
    }
    if path == "/Certificates/Download" {
        params.push(json!({"name": "x-certificateformat", "in": "header",
            "schema": {"type": "string", "enum": ["PEM", "DER", "P7B"]}}));
    }
    let ok_schema = if paged(path)
        || path == "/Status/Endpoints"
        || path.ends_with("/Inventory")
        || path == "/CertificateStoreTypes"
        || path.starts_with("/CertificateStores/Certificates/")
    {
        json!({"type": "array", "items": {}})
    } else {
        json!({"type": "object"})
    };
    let mut ok = json!({
        "description": "Success",
        "content": {"application/json": {"schema": ok_schema}}
    });
    if paged(path)
        && let Some(o) = ok.as_object_mut()
    {
        o.insert(
            "headers".into(),
            json!({"X-Total-Count": {"schema": {"type": "integer"}}}),
        );
    }
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    responses.insert("400".into(), error_response("Bad request"));
    responses.insert("401".into(), error_response("No or bad credentials"));
    responses.insert("403".into(), error_response("Not permitted"));
    responses.insert("404".into(), error_response("Not found"));
    responses.insert("405".into(), error_response("Method not allowed"));
    responses.insert("408".into(), error_response("Request timeout"));
    if body {
        responses.insert("413".into(), error_response("Body too large"));
        responses.insert("415".into(), error_response("Body not JSON"));
    }
    responses.insert(
        "500".into(),
        error_response("Internal error (never for bad input)"),
    );
    responses.insert("503".into(), error_response("Catalog unavailable"));
    let mut op = json!({
        "summary": summary,
        "operationId": format!("{}{}", method.to_ascii_lowercase(), path.replace(['/', '{', '}'], "_")),
        "parameters": params,
        "responses": responses,
    });
    if body && let Some(o) = op.as_object_mut() {
        o.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}}),
        );
    }
    op
}

/// The document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let entry = paths
            .entry(e.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(o) = entry.as_object_mut() {
            o.insert(
                e.method.to_ascii_lowercase(),
                operation(e.method, e.path, e.summary, e.body),
            );
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "pfxkit — Keyfactor-compatible API",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "servers": [{"url": "/KeyfactorAPI"}],
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["ErrorCode", "Message"],
                    "properties": {
                        "ErrorCode": {"type": "string"},
                        "Message": {"type": "string"},
                    },
                },
            },
        },
    })
}
