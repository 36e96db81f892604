//! `GET /KeyfactorAPI/openapi.json`: an OpenAPI 3.0 document generated from the same endpoint
//! table the router reads, so it lists exactly what is served: the paths, their parameters,
//! the required headers, the security schemes and every status an endpoint can answer. The
//! agents' endpoints (`/Agent/…`, from `agent.rs`'s table) are in it too, marked as needing the
//! client certificate issued at registration rather than user credentials.

use serde_json::{Map, Value, json};

use crate::api::ENDPOINTS;

/// The answers every endpoint may give whatever its caller: a timeout, a body refused before
/// it is parsed (endpoints that take one), an internal error, an unavailable catalog.
fn server_responses(responses: &mut Map<String, Value>, body: bool) {
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
}

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
    let ok_schema = response_schema(method, path);
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
    server_responses(&mut responses, body);
    let mut op = json!({
        "summary": summary,
        "operationId": format!("{}{}", method.to_ascii_lowercase(), path.replace(['/', '{', '}'], "_")),
        "parameters": params,
        "responses": responses,
    });
    if body && let Some(o) = op.as_object_mut() {
        o.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": request_schema(path)}}}),
        );
    }
    op
}

/// An agent endpoint's operation: no user credentials and no `x-keyfactor-requested-with`
/// header; registration takes a one-time token in its body, everything else the client
/// certificate issued at registration (mutual TLS), which OpenAPI 3.0 cannot express as a
/// security scheme, hence `security: []` and the description.
fn agent_operation(e: &crate::agent::AgentEndpoint) -> Value {
    let mut params = vec![json!({
        "name": "x-pfxkit-agent-version", "in": "header", "required": false,
        "description": "the agent's version, recorded for `pfxkit agents list`",
        "schema": {"type": "string", "maxLength": 64}
    })];
    if e.path.contains("{id}") {
        let schema = if e.path.starts_with("/Agent/Jobs/") {
            json!({"type": "integer", "format": "int64"})
        } else {
            json!({"type": "string"})
        };
        params.push(json!({"name": "id", "in": "path", "required": true, "schema": schema}));
    }
    if e.path == "/Agent/Jobs" {
        params.push(json!({"name": "wait", "in": "query",
            "description": format!("seconds to wait for a due job (at most {}; 0: answer at once)",
                crate::agent::MAX_WAIT.as_secs()),
            "schema": {"type": "integer", "minimum": 0}}));
        params.push(json!({"name": "limit", "in": "query",
            "description": format!("jobs to claim at most (1 to {}, default 16)",
                crate::agent::MAX_CLAIM),
            "schema": {"type": "integer", "minimum": 0}}));
    }
    let ok = match (e.method, e.path) {
        ("POST", "/Agent/Register") => reference("AgentRegistration"),
        ("POST", "/Agent/Hello") => reference("AgentHello"),
        ("GET", "/Agent/Stores") => array_of("AgentStore"),
        ("GET", "/Agent/Jobs") => reference("AgentClaim"),
        ("POST", "/Agent/Jobs/{id}/Complete") => json!({"type": "object",
            "required": ["Id", "Recorded"],
            "properties": {"Id": {"type": "integer", "format": "int64"},
                "Recorded": {"type": "boolean"}}}),
        ("POST", "/Agent/Stores/{id}/Inventory") => json!({"type": "object",
            "required": ["Entries"],
            "properties": {"Entries": {"type": "integer", "minimum": 0}}}),
        _ => json!({"type": "object"}),
    };
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "Success", "content": {"application/json": {"schema": ok}}}),
    );
    responses.insert("400".into(), error_response("Bad request"));
    responses.insert(
        "401".into(),
        error_response(if e.certificate {
            "No client certificate (mutual TLS)"
        } else {
            "Unauthorized"
        }),
    );
    responses.insert(
        "403".into(),
        error_response(if e.certificate {
            "Not this agent's current, unrevoked certificate, or another machine's store"
        } else {
            "Unknown or revoked agent, or a wrong or used token"
        }),
    );
    responses.insert("404".into(), error_response("Not found"));
    if e.path == "/Agent/Jobs/{id}/Complete" {
        responses.insert(
            "409".into(),
            error_response("The lease ended (the job was given back or taken over)"),
        );
    }
    server_responses(&mut responses, e.body);
    let description = if e.certificate {
        "For agents only: needs the client certificate issued to the agent at registration \
         (`POST /Agent/Register`), presented in the TLS handshake; user credentials are not \
         accepted. Answers concern the stores of the agent's own machine only."
    } else {
        "For agents only: no credentials but the one-time token `pfxkit agents add` printed; \
         answers the client certificate every other agent endpoint needs (mutual TLS)."
    };
    let mut op = json!({
        "summary": e.summary,
        "description": description,
        "operationId": format!("{}{}", e.method.to_ascii_lowercase(), e.path.replace(['/', '{', '}'], "_")),
        "tags": ["Agent"],
        "security": [],
        "parameters": params,
        "responses": responses,
    });
    if e.body
        && let Some(o) = op.as_object_mut()
    {
        o.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": agent_request_schema(e.path)}}}),
        );
    }
    op
}

/// What an agent endpoint's body holds (property names are matched case-insensitively).
fn agent_request_schema(path: &str) -> Value {
    let string = json!({"type": "string"});
    match path {
        "/Agent/Register" => json!({"type": "object", "required": ["Name", "Token", "Csr"],
        "properties": {
            "Name": string, "Token": string,
            "Csr": {"type": "string", "format": "byte", "description": "a PKCS#10 request, DER"},
        }}),
        "/Agent/Hello" => json!({"type": "object", "properties": {"Version": string}}),
        "/Agent/Jobs/{id}/Complete" => json!({"type": "object", "required": ["Lease", "Result"],
        "properties": {
            "Lease": string,
            "Result": {"type": "string", "enum": ["Success", "Warning", "Failure"]},
            "Message": {"type": "string", "description": "kept to 4096 characters"},
            "Inventory": array_of("AgentInventoryEntry"),
        }}),
        "/Agent/Stores/{id}/Inventory" => json!({"type": "object", "required": ["Inventory"],
            "properties": {"Inventory": array_of("AgentInventoryEntry")}}),
        _ => json!({"type": "object"}),
    }
}

/// The agent endpoints' shapes, as `agent.rs` builds and reads them.
fn agent_schemas(schemas: &mut Map<String, Value>) {
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": "string", "nullable": true});
    let int = json!({"type": "integer", "format": "int64"});
    let boolean = json!({"type": "boolean"});
    let der = json!({"type": "string", "format": "byte"});
    let ders = json!({"type": "array", "items": der});
    let added = json!({
        "AgentRegistration": {
            "type": "object", "required": ["Certificates"],
            "properties": {"Certificates": {"type": "array", "items": der,
                "description": "the agent's certificate (DER), then its issuing chain"}},
        },
        "AgentStore": {
            "type": "object",
            "required": ["Id", "StoreType", "StorePath", "KeyPath", "StorePassword", "PlainKey",
                "InventoryEverySecs"],
            "properties": {
                "Id": string, "StoreType": {"type": "string", "enum": ["pkcs12", "jks", "pem"]},
                "StorePath": string, "KeyPath": nullable_string,
                "StorePassword": {"type": "string", "nullable": true,
                    "description": "an env:VAR or file:PATH reference, resolved on the agent's host"},
                "PlainKey": boolean, "InventoryEverySecs": int,
            },
        },
        "AgentHello": {
            "type": "object", "required": ["Agent", "Released", "Stores"],
            "properties": {"Agent": string, "Released": int, "Stores": array_of("AgentStore")},
        },
        "AgentJob": {
            "type": "object",
            "required": ["Id", "StoreId", "Alias", "Overwrite", "Key", "Chain", "EntryPassword",
                "Store"],
            "properties": {
                "Id": int, "StoreId": string, "Alias": nullable_string, "Overwrite": boolean,
                "Key": {"type": "string", "format": "byte",
                    "description": "the private key, PKCS#8 DER: to the lease holder only"},
                "Chain": ders, "EntryPassword": nullable_string, "Store": reference("AgentStore"),
            },
        },
        "AgentClaim": {
            "type": "object", "required": ["Lease", "Jobs"],
            "properties": {"Lease": string, "Jobs": array_of("AgentJob")},
        },
        "AgentInventoryEntry": {
            "type": "object", "required": ["Alias"],
            "properties": {"Alias": string, "Chain": ders},
        },
    });
    if let Value::Object(added) = added {
        schemas.extend(added);
    }
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": reference(name)})
}

/// What a 200 answers, per endpoint: the shapes `api.rs` builds (property names exact, as the
/// v1 client parses them).
fn response_schema(method: &str, path: &str) -> Value {
    match (method, path) {
        ("POST", "/Enrollment/PFX") => reference("EnrollmentResponse"),
        ("POST", "/Enrollment/PFX/Deploy" | "/Enrollment/PFX/Replace") => reference("StoreOutcome"),
        ("POST", "/Enrollment/Renew") => reference("RenewalResponse"),
        ("GET", "/Certificates") => array_of("Certificate"),
        ("GET", "/Certificates/{id}") => reference("Certificate"),
        ("GET", "/Certificates/Locations/{id}") => reference("LocationsResponse"),
        ("POST", "/Certificates/Download") => json!({
            "type": "object", "required": ["Content"],
            "properties": {"Content": {"type": "string", "format": "byte"}},
        }),
        ("GET", "/CertificateStores") => array_of("Store"),
        ("POST" | "GET", "/CertificateStores" | "/CertificateStores/{id}") => reference("Store"),
        ("GET", "/CertificateStores/{id}/Inventory") => array_of("InventoryEntry"),
        (
            "POST",
            "/CertificateStores/Certificates/Add" | "/CertificateStores/Certificates/Remove",
        ) => {
            json!({"type": "array", "items": {"type": "integer", "format": "int64"}})
        }
        ("GET", "/CertificateStoreTypes") => array_of("StoreType"),
        ("GET", "/CertificateStoreContainers") => array_of("Container"),
        ("POST", "/CertificateStoreContainers") => reference("Container"),
        ("GET", "/OrchestratorJobs/JobHistory" | "/OrchestratorJobs/ScheduledJobs") => {
            array_of("Job")
        }
        ("GET", "/Status/Endpoints") => json!({"type": "array", "items": {"type": "string"}}),
        _ => json!({"type": "object"}),
    }
}

/// What a request body may hold, per endpoint. Property names are matched case-insensitively
/// and unknown ones ignored (so `additionalProperties` stays open); the types are enforced
/// (a wrong type is a 400 naming the property).
fn request_schema(path: &str) -> Value {
    let string = json!({"type": "string"});
    let int = json!({"type": "integer", "format": "int64"});
    let boolean = json!({"type": "boolean"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let schedule = json!({"type": "object", "properties": {
        "Immediate": boolean,
        "ExactlyOnce": {"type": "object", "required": ["Time"], "properties": {"Time": string}},
    }});
    match path {
        "/Enrollment/PFX" => json!({"type": "object", "required": ["Subject"], "properties": {
            "Subject": string, "Password": string, "IncludeChain": boolean,
            "CustomFriendlyName": string, "Timestamp": string, "CertificateAuthority": string,
            "Template": string, "KeyType": string, "KeyLength": int, "Curve": string,
            "SANs": {"type": "object", "properties": {
                "dns": strings, "ip4": strings, "ip6": strings, "email": strings,
            }},
        }}),
        "/Enrollment/PFX/Deploy" => json!({"type": "object", "properties": {
            "CertificateId": int, "RequestId": int, "Password": string, "JobTime": string,
            "StoreIds": strings,
            "Stores": {"type": "array", "items": {"type": "object", "required": ["StoreId"],
                "properties": {"StoreId": string, "Alias": string, "Overwrite": boolean}}},
        }}),
        "/Enrollment/PFX/Replace" => {
            json!({"type": "object", "required": ["ExistingCertificateId"],
            "properties": {
                "ExistingCertificateId": int, "CertificateId": int, "RequestId": int,
                "Password": string, "JobTime": string,
            }})
        }
        "/Enrollment/Renew" => json!({"type": "object", "properties": {
            "CertificateId": int, "Thumbprint": string,
        }}),
        "/Certificates/Download" => json!({"type": "object", "properties": {
            "CertID": int, "Thumbprint": string, "IncludeChain": boolean, "ChainOrder": string,
        }}),
        "/CertificateStores" => {
            json!({"type": "object", "required": ["StorePath", "CertStoreType"],
            "properties": {
                "ClientMachine": string, "StorePath": string, "CertStoreType": int,
                "ContainerId": int, "Properties": string,
                "Password": {"type": "object", "properties": {"SecretValue": string}},
            }})
        }
        "/CertificateStores/Certificates/Add" => json!({"type": "object",
        "required": ["CertificateId", "CertificateStores"],
        "properties": {
            "CertificateId": int, "Schedule": schedule,
            "CertificateStores": {"type": "array", "items": {"type": "object",
                "required": ["CertificateStoreId"], "properties": {
                    "CertificateStoreId": string, "Alias": string, "Overwrite": boolean,
                    "EntryPassword": {"type": "object", "properties": {"SecretValue": string}},
                }}},
        }}),
        "/CertificateStores/Certificates/Remove" => json!({"type": "object",
        "required": ["CertificateStores"],
        "properties": {
            "Schedule": schedule,
            "CertificateStores": {"type": "array", "items": {"type": "object",
                "required": ["CertificateStoreId", "Alias"], "properties": {
                    "CertificateStoreId": string, "Alias": string,
                }}},
        }}),
        "/CertificateStoreContainers" => json!({"type": "object", "required": ["Name"],
            "properties": {"Name": string}}),
        _ => json!({"type": "object"}),
    }
}

/// The shapes of the answers. Required properties are those every answer carries; a property
/// that may be `null` says so; dates are ISO 8601 strings, present or absent, never `null`.
fn schemas() -> Value {
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": "string", "nullable": true});
    let int = json!({"type": "integer", "format": "int64"});
    let nullable_int = json!({"type": "integer", "format": "int64", "nullable": true});
    let boolean = json!({"type": "boolean"});
    let time = json!({"type": "string", "format": "date-time"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "Error": {
            "type": "object",
            "required": ["ErrorCode", "Message"],
            "properties": {"ErrorCode": string, "Message": string},
        },
        "EnrollmentResponse": {
            "type": "object", "required": ["CertificateInformation", "Metadata"],
            "properties": {
                "CertificateInformation": {"type": "object",
                    "required": ["SerialNumber", "IssuerDN", "Thumbprint", "KeyfactorId",
                        "KeyfactorRequestId", "Pkcs12Blob", "Password", "RequestDisposition"],
                    "properties": {
                        "SerialNumber": string, "IssuerDN": string, "Thumbprint": string,
                        "KeyfactorId": int, "KeyfactorRequestId": int,
                        "Pkcs12Blob": {"type": "string", "format": "byte"},
                        "Password": nullable_string, "RequestDisposition": string,
                        "DispositionMessage": string,
                    }},
                "Metadata": {"type": "object"},
            },
        },
        "StoreOutcome": {
            "type": "object", "required": ["SuccessfulStores", "FailedStores", "Failures"],
            "properties": {
                "SuccessfulStores": strings, "FailedStores": strings,
                "Failures": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "RenewalResponse": {
            "type": "object",
            "required": ["KeyfactorId", "KeyfactorRequestId", "Thumbprint", "SerialNumber",
                "IssuerDN", "RequestDisposition"],
            "properties": {
                "KeyfactorId": int, "KeyfactorRequestId": int, "Thumbprint": string,
                "SerialNumber": string, "IssuerDN": string, "RequestDisposition": string,
                "DispositionMessage": string,
            },
        },
        "Certificate": {
            "type": "object",
            "required": ["Id", "Thumbprint", "SerialNumber", "IssuedDN", "IssuedCN", "IssuerDN",
                "NotBefore", "NotAfter", "HasPrivateKey", "CertState", "KeyType"],
            "properties": {
                "Id": int, "Thumbprint": string, "SerialNumber": string, "IssuedDN": string,
                "IssuedCN": string, "IssuerDN": string, "NotBefore": time, "NotAfter": time,
                "HasPrivateKey": boolean,
                "CertState": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5, 6, 7, 8]},
                "KeyType": {"type": "integer", "enum": [0, 1, 2, 3, 4]},
                "KeyTypeString": string, "KeySizeInBits": int, "Curve": string,
                "LocationsCount": {"type": "array", "items": {"type": "object",
                    "required": ["Type", "Count"], "properties": {"Type": string, "Count": int}}},
                "Locations": {"type": "array", "items": {"type": "object",
                    "required": ["StoreMachine", "StorePath", "StoreType", "Alias", "ChainLevel",
                        "CertStoreId"],
                    "properties": {
                        "StoreMachine": string, "StorePath": string, "StoreType": int,
                        "Alias": string, "ChainLevel": int, "CertStoreId": string,
                    }}},
            },
        },
        "LocationsResponse": {
            "type": "object", "required": ["Details"],
            "properties": {"Details": {"type": "array", "items": {"type": "object",
                "required": ["StoreType", "StoreTypeId", "StoreCount", "Locations"],
                "properties": {
                    "StoreType": string, "StoreTypeId": int, "StoreCount": int,
                    "Locations": {"type": "array", "items": {"type": "object",
                        "required": ["StoreId", "StoreTypeId", "ClientMachine", "StorePath",
                            "Alias"],
                        "properties": {
                            "StoreId": string, "StoreTypeId": int, "ClientMachine": string,
                            "StorePath": string, "Alias": string,
                        }}},
                }}}},
        },
        "Store": {
            "type": "object",
            "required": ["Id", "ContainerId", "ClientMachine", "StorePath", "CertStoreType",
                "Approved", "CreateIfMissing", "Properties", "PasswordStored"],
            "properties": {
                "Id": string, "ContainerId": nullable_int, "ContainerName": nullable_string,
                "ClientMachine": string, "StorePath": string, "CertStoreType": int,
                "Approved": boolean, "CreateIfMissing": boolean,
                "Properties": {"type": "string", "description": "a JSON object, as a string"},
                "PasswordStored": boolean,
            },
        },
        "InventoryEntry": {
            "type": "object", "required": ["Name", "HasPrivateKey", "Certificates", "Parameters"],
            "properties": {
                "Name": string, "HasPrivateKey": boolean, "Parameters": {"type": "object"},
                "Certificates": {"type": "array", "items": {"type": "object",
                    "required": ["Id", "IssuedDN", "IssuerDN", "SerialNumber", "Thumbprint",
                        "NotBefore", "NotAfter"],
                    "properties": {
                        "Id": nullable_int, "IssuedDN": string, "IssuerDN": string,
                        "SerialNumber": string, "Thumbprint": string, "NotBefore": time,
                        "NotAfter": time,
                    }}},
            },
        },
        "StoreType": {
            "type": "object",
            "required": ["StoreType", "Name", "ShortName", "PrivateKeyAllowed",
                "CustomAliasAllowed", "PasswordOptions", "SupportedOperations"],
            "properties": {
                "StoreType": int, "Name": string, "ShortName": string, "LocalStore": boolean,
                "PrivateKeyAllowed": {"type": "integer", "enum": [0, 1, 2]},
                "CustomAliasAllowed": {"type": "integer", "enum": [0, 1, 2]},
                "PowerShell": boolean, "BlueprintAllowed": boolean, "ServerRequired": boolean,
                "PasswordOptions": {"type": "object", "properties": {
                    "EntrySupported": boolean, "StoreRequired": boolean,
                    "Style": {"type": "integer", "enum": [0, 1]},
                }},
                "SupportedOperations": {"type": "object",
                    "additionalProperties": {"type": "boolean"}},
            },
        },
        "Container": {
            "type": "object", "required": ["Id", "Name", "OverwriteSchedules"],
            "properties": {"Id": int, "Name": string, "OverwriteSchedules": boolean},
        },
        "Job": {
            "type": "object",
            "required": ["JobHistoryId", "JobId", "JobType", "Operation", "Status", "Result",
                "Message", "CertStoreId", "StorePath", "ClientMachine", "CertificateId",
                "ScheduledTime"],
            "properties": {
                "JobHistoryId": int, "JobId": int, "JobType": string, "Operation": string,
                "Status": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]},
                "Result": {"type": "integer", "enum": [0, 2, 3, 4]},
                "Message": string, "CertStoreId": string, "StorePath": string,
                "ClientMachine": string, "CertificateId": int, "Alias": nullable_string,
                "Requestor": nullable_string, "ScheduledTime": time, "OperationStart": time,
                "OperationEnd": time,
            },
        },
    })
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
    for e in crate::agent::ENDPOINTS {
        let entry = paths
            .entry(e.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(o) = entry.as_object_mut() {
            o.insert(e.method.to_ascii_lowercase(), agent_operation(e));
        }
    }
    let mut schemas = match schemas() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    agent_schemas(&mut schemas);
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
            "schemas": schemas,
        },
    })
}
