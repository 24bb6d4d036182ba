//! The OpenAPI 3.1 document of the management API (`GET /openapi.json`).
//! Hand-written; a test keeps its paths and methods equal to the routes.

use serde_json::{Value, json};

fn err(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } })
}

fn q(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema })
}

/// `q` of `GET /apikeys`: empty (no filter) or 3–200 characters
/// (`service::validate::key_search`).
fn key_search() -> Value {
    use crate::service::validate::{MAX_NAME, MIN_KEY_SEARCH};
    json!({
        "type": "string",
        "maxLength": MAX_NAME,
        "pattern": format!(r"^$|^[\s\S]{{{MIN_KEY_SEARCH},}}$"),
        "description": format!("Name contains (case-insensitive), at least {MIN_KEY_SEARCH} characters")
    })
}

fn common() -> Value {
    json!({
        "400": err("Malformed request or authentication headers"),
        "401": err("Missing or invalid credentials (WWW-Authenticate: Bearer)"),
        "403": err("Missing permission (error=\"insufficient_scope\"), account not allowed, the key has permissions the caller does not hold (permission_not_held), or it would be less restricted than the caller's key (restriction_not_held, field named)"),
        "429": err("Too many failed attempts (Retry-After)"),
        "503": err("Store unavailable (Retry-After)")
    })
}

fn with_common(mut responses: Value) -> Value {
    if let (Some(r), Value::Object(c)) = (responses.as_object_mut(), common()) {
        for (k, v) in c {
            r.entry(k).or_insert(v);
        }
    }
    responses
}

fn body(schema: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

/// The paths of `/apps…`.
fn app_paths() -> Value {
    json!({
            "/apps": {
                "post": {
                    "operationId": "createApp", "summary": "Create an application (writeApiKeys)",
                    "requestBody": body("NewApp"),
                    "responses": with_common(json!({ "201": ok("The application", "App"), "413": err("Body over 64 KiB"), "415": err("Not application/json"), "422": err("Invalid value (field named)") }))
                },
                "get": {
                    "operationId": "listApps", "summary": "List applications (readApiKeys)",
                    "parameters": [
                        q("q", json!({ "type": "string" })),
                        q("status", json!({ "type": "string", "enum": ["active", "inactive"] })),
                        q("limit", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })),
                        q("cursor", json!({ "type": "string" }))
                    ],
                    "responses": with_common(json!({ "200": ok("A page of applications", "AppPage"), "422": err("Invalid status, limit or cursor") }))
                }
            },
            "/apps/{id}": {
                "parameters": [ id_param() ],
                "get": { "operationId": "getApp", "summary": "An application with its key counts (readApiKeys)", "responses": with_common(json!({ "200": ok("The application", "App"), "404": err("No such application in this account") })) },
                "patch": {
                    "operationId": "updateApp", "summary": "Change an application; status inactive stops all its keys and sessions at once (writeApiKeys, and every permission of its keys to change the status)",
                    "requestBody": body("AppUpdate"),
                    "responses": with_common(json!({ "200": ok("The application; effective_by when it was switched off", "UpdatedApp"), "404": err("No such application"), "409": err("It holds a protected key"), "413": err("Body over 64 KiB"), "415": err("Not application/json"), "422": err("Invalid value (field named)") }))
                },
                "delete": {
                    "operationId": "deleteApp", "summary": "Delete an application; with cascade=true its keys too, each with its own audit event (writeApiKeys)",
                    "parameters": [ q("cascade", json!({ "type": "boolean", "default": false })) ],
                    "responses": with_common(json!({ "200": ok("Deleted", "DeletedApp"), "404": err("No such application"), "409": err("It still has keys (app_has_keys) or holds a protected key") }))
                }
            }
    })
}

/// The paths of `/accounts…`.
fn account_paths() -> Value {
    json!({
        "/accounts": {
            "post": {
                "operationId": "createAccount", "summary": "Create a customer account, a child of the acting account, with permissions within its own and the caller's (writeAccounts)",
                "requestBody": body("NewAccount"),
                "responses": with_common(json!({ "201": ok("The account", "Account"), "413": err("Body over 64 KiB"), "415": err("Not application/json"), "422": err("Invalid value (field named)") }))
            },
            "get": {
                "operationId": "listAccounts", "summary": "List the acting account's child accounts (readAccounts)",
                "parameters": [
                    q("q", json!({ "type": "string" })),
                    q("status", json!({ "type": "string", "enum": ["active", "inactive"] })),
                    q("limit", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })),
                    q("cursor", json!({ "type": "string" }))
                ],
                "responses": with_common(json!({ "200": ok("A page of accounts", "AccountPage"), "422": err("Invalid status, limit or cursor") }))
            }
        },
        "/accounts/{id}": {
            "parameters": [ id_param() ],
            "get": { "operationId": "getAccount", "summary": "The acting account or one of its children (readAccounts)", "responses": with_common(json!({ "200": ok("The account", "Account"), "404": err("No such account, or not a child") })) },
            "patch": {
                "operationId": "updateAccount", "summary": "Rename a child account, narrow or widen its permissions (every key of it follows within W), switch it off or on (writeAccounts, and every permission it has)",
                "requestBody": body("AccountUpdate"),
                "responses": with_common(json!({ "200": ok("The account; effective_by when something was revoked", "UpdatedAccount"), "404": err("No such child account"), "413": err("Body over 64 KiB"), "415": err("Not application/json"), "422": err("Invalid value (field named)") }))
            }
        }
    })
}

/// The paths of `/allowlist…`.
fn allowlist_paths() -> Value {
    json!({
        "/allowlist": {
            "get": { "operationId": "listOrigins", "summary": "The browser origins that may call the management API; the first entry, orig_self, is the server's own origin and cannot be deleted (readApiKeys, top-level account)", "responses": with_common(json!({ "200": ok("The entries", "OriginList") })) },
            "post": {
                "operationId": "addOrigin", "summary": "Allow a browser origin, scheme://host[:port] (writeApiKeys, top-level account)",
                "requestBody": body("NewOrigin"),
                "responses": with_common(json!({ "201": ok("The entry", "AllowedOrigin"), "413": err("Body over 64 KiB"), "415": err("Not application/json"), "422": err("Not an origin, or already listed") }))
            }
        },
        "/allowlist/{id}": {
            "parameters": [ id_param() ],
            "delete": { "operationId": "removeOrigin", "summary": "Remove an origin (writeApiKeys, top-level account)", "responses": with_common(json!({ "200": { "description": "Removed" }, "404": err("No such entry"), "409": err("The protected default entry") })) }
        }
    })
}

/// The schemas of `/allowlist…`.
fn allowlist_schemas() -> Value {
    json!({
        "AllowedOrigin": { "type": "object", "required": ["id", "origin", "protected", "created_at"], "properties": { "id": { "type": "string" }, "origin": { "type": "string" }, "protected": { "type": "boolean" }, "created_at": { "type": ["string", "null"], "format": "date-time" } } },
        "NewOrigin": { "type": "object", "additionalProperties": false, "required": ["origin"], "properties": { "origin": { "type": "string" } } },
        "OriginList": { "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/AllowedOrigin" } } } }
    })
}

/// The schemas of `/accounts…`.
fn account_schemas() -> Value {
    json!({
        "Account": {
            "type": "object", "required": ["id", "name", "parent", "permissions", "status", "created_at", "last_used_at"],
            "properties": {
                "id": { "type": "string" }, "name": { "type": "string" }, "parent": { "type": ["string", "null"] },
                "permissions": { "type": "array", "items": { "type": "string" } },
                "status": { "type": "string", "enum": ["active", "inactive"] },
                "created_at": { "type": "string", "format": "date-time" },
                "last_used_at": { "type": ["string", "null"], "format": "date-time", "description": "Latest successful verification of any of its keys, as of the last usage flush" }
            }
        },
        "NewAccount": { "type": "object", "additionalProperties": false, "required": ["name", "permissions"], "properties": { "name": { "type": "string" }, "permissions": { "type": "array", "items": { "type": "string" } } } },
        "AccountUpdate": { "type": "object", "additionalProperties": false, "properties": { "name": { "type": "string" }, "permissions": { "type": "array", "items": { "type": "string" } }, "status": { "type": "string", "enum": ["active", "inactive"] } } },
        "UpdatedAccount": { "allOf": [ { "$ref": "#/components/schemas/Account" }, { "type": "object", "properties": { "effective_by": { "type": "string", "format": "date-time" } } } ] },
        "AccountPage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/Account" } }, "next_cursor": { "type": ["string", "null"] } } }
    })
}

/// The schemas of `/apps…`.
fn app_schemas() -> Value {
    json!({
                "App": {
                    "type": "object",
                    "required": ["id", "account_id", "title", "description", "status", "created_at", "updated_at", "active_keys", "inactive_keys", "protected", "last_used_at"],
                    "properties": {
                        "id": { "type": "string" }, "account_id": { "type": "string" }, "title": { "type": "string" }, "description": { "type": "string" },
                        "status": { "type": "string", "enum": ["active", "inactive"] },
                        "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" },
                        "active_keys": { "type": "integer", "minimum": 0 }, "inactive_keys": { "type": "integer", "minimum": 0 }, "protected": { "type": "boolean", "description": "It holds a protected key" },
                        "last_used_at": { "type": ["string", "null"], "format": "date-time", "description": "Latest successful verification of any of its keys, as of the last usage flush" }
                    }
                },
                "NewApp": { "type": "object", "additionalProperties": false, "required": ["title"], "properties": { "title": { "type": "string" }, "description": { "type": "string" } } },
                "AppUpdate": { "type": "object", "additionalProperties": false, "properties": { "title": { "type": "string" }, "description": { "type": "string" }, "status": { "type": "string", "enum": ["active", "inactive"] } } },
                "UpdatedApp": { "allOf": [ { "$ref": "#/components/schemas/App" }, { "type": "object", "properties": { "effective_by": { "type": "string", "format": "date-time" } } } ] },
                "DeletedApp": { "type": "object", "required": ["id", "status", "deleted_keys", "effective_by"], "properties": { "id": { "type": "string" }, "status": { "const": "deleted" }, "deleted_keys": { "type": "array", "items": { "type": "string" } }, "effective_by": { "type": "string", "format": "date-time" } } },
                "AppPage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/App" } }, "next_cursor": { "type": ["string", "null"] } } }
    })
}

/// Moves every entry of the object `from` into the object at `to`.
fn merge(to: Option<&mut Value>, from: Value) {
    if let (Some(Value::Object(to)), Value::Object(from)) = (to, from) {
        to.extend(from);
    }
}

/// The document.
pub(crate) fn document() -> Value {
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "keyward management API", "version": env!("CARGO_PKG_VERSION") },
        "security": [ { "apiKey": [], "apiSecret": [] }, { "bearer": [] } ],
        "paths": {
            "/apikeys": {
                "post": {
                    "operationId": "createKey", "summary": "Issue a key (writeApiKeys); the secret is shown once",
                    "requestBody": body("NewKey"),
                    "responses": with_common(json!({ "201": ok("The key and its secret", "IssuedKey"), "413": err("Body over 64 KiB"), "415": err("Not application/json"), "422": err("Invalid value (field named)") }))
                },
                "get": {
                    "operationId": "listKeys", "summary": "List keys (readApiKeys)",
                    "parameters": [
                        q("q", key_search()),
                        q("status", json!({ "type": "string", "enum": ["active", "inactive"] })),
                        q("application", json!({ "type": "string" })),
                        q("app_id", json!({ "type": "string" })),
                        q("limit", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })),
                        q("cursor", json!({ "type": "string" }))
                    ],
                    "responses": with_common(json!({ "200": ok("A page of keys", "KeyPage"), "422": err("Invalid limit or cursor, or a search shorter than 3 characters") }))
                }
            },
            "/apikeys/{id}": {
                "parameters": [ id_param() ],
                "get": { "operationId": "getKey", "summary": "A key (readApiKeys)", "responses": with_common(json!({ "200": ok("The key", "ApiKey"), "404": err("No such key in this account") })) },
                "patch": {
                    "operationId": "updateKey", "summary": "Change a key (writeApiKeys)",
                    "requestBody": body("KeyUpdate"),
                    "responses": with_common(json!({ "200": ok("The key; effective_by when something was revoked", "UpdatedKey"), "404": err("No such key"), "409": err("Protected key (only the application itself changes it), or concurrent change"), "413": err("Body over 64 KiB"), "415": err("Not application/json"), "422": err("Invalid value (field named)") }))
                },
                "delete": { "operationId": "deleteKey", "summary": "Delete a key (writeApiKeys)", "responses": with_common(json!({ "200": ok("Deleted", "Deleted"), "404": err("No such key"), "409": err("Protected key (only the application itself deletes it)") })) }
            },
            "/apikeys/{id}/rotate": {
                "parameters": [ id_param() ],
                "post": {
                    "operationId": "rotateKey", "summary": "New secret, old one valid for the grace period (writeApiKeys)",
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Rotate" } } } },
                    "responses": with_common(json!({ "200": ok("The key and its new secret", "RotatedKey"), "404": err("No such key"), "409": err("Protected key (only the application itself rotates it), or concurrent change"), "422": err("Invalid grace period") }))
                }
            },
            "/apikeys/{id}/events": {
                "parameters": [ id_param() ],
                "get": {
                    "operationId": "keyEvents", "summary": "Audit events of a key, newest first (readApiKeys)",
                    "parameters": [ q("limit", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })), q("cursor", json!({ "type": "string" })) ],
                    "responses": with_common(json!({ "200": ok("A page of events", "EventPage"), "404": err("No such key in this account (deleted keys' events remain)"), "422": err("Invalid limit or cursor") }))
                }
            },
            "/usage": {
                "get": {
                    "operationId": "usageReport", "summary": "The account's keys, applications, or itself and its child accounts (group_by) by volume (every outcome: successes, failures, rate_limited, usage_exceeded; most first), each with its display name, totals and a series; includes this instance's unflushed counts (readApiKeys)",
                    "parameters": [ q("from", json!({ "type": "string", "format": "date-time" })), q("to", json!({ "type": "string", "format": "date-time" })), q("granularity", json!({ "type": "string", "enum": ["hour", "day"], "default": "hour" })), q("origin", json!({ "type": "string" })), q("category", json!({ "type": "string" })), q("group_by", json!({ "type": "string", "enum": ["key", "app", "account"], "default": "key" })), q("limit", json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 })), q("cursor", json!({ "type": "string" })) ],
                    "responses": with_common(json!({ "200": ok("A page of groups with their usage", "UsageReport"), "422": err("Invalid range, granularity, label, group_by, limit or cursor") }))
                }
            },
            "/apikeys/{id}/usage": {
                "parameters": [ id_param() ],
                "get": {
                    "operationId": "keyUsage", "summary": "Hourly successes, failures, rate_limited and usage_exceeded by origin and category (readApiKeys)",
                    "parameters": [ q("from", json!({ "type": "string", "format": "date-time" })), q("to", json!({ "type": "string", "format": "date-time" })), q("origin", json!({ "type": "string" })) ],
                    "responses": with_common(json!({ "200": ok("Usage", "Usage"), "404": err("No such key"), "422": err("Invalid from, to or origin") }))
                }
            },
            "/auth/login": {
                "post": {
                    "operationId": "login", "summary": "Open a session with a key (headers, or JSON {key, secret}; not both: 400)",
                    "security": [ { "apiKey": [], "apiSecret": [] }, {} ],
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Login" } } } },
                    "responses": with_common(json!({ "200": ok("A bearer session token", "Session") }))
                }
            },
            "/auth/logout": {
                "post": { "operationId": "logout", "summary": "End the bearer session", "security": [ { "bearer": [] } ], "responses": with_common(json!({ "204": { "description": "The token no longer works" } })) }
            },
            "/auth/whoami": {
                "get": { "operationId": "whoami", "summary": "The authenticated principal", "responses": with_common(json!({ "200": ok("The principal", "Whoami") })) }
            },
            "/openapi.json": {
                "get": { "operationId": "openapi", "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1 document", "content": { "application/json": {} } } } }
            }
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" },
                "apiSecret": { "type": "apiKey", "in": "header", "name": "x-api-secret" },
                "bearer": { "type": "http", "scheme": "bearer", "description": "A session token from /auth/login, or the single-string key" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "message"], "properties": { "error": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } },
                "ApiKey": {
                    "type": "object",
                    "required": ["id", "account_id", "name", "description", "application", "app_id", "permissions", "status", "protected", "created_at", "updated_at", "expires_at", "last_used_at", "allowed_cidrs", "allowed_origins", "metadata"],
                    "properties": {
                        "id": { "type": "string" }, "account_id": { "type": "string" }, "name": { "type": "string" },
                        "description": { "type": "string" }, "application": { "type": ["string", "null"] },
                        "app_id": { "type": ["string", "null"] },
                        "permissions": { "type": "array", "items": { "type": "string" } },
                        "status": { "type": "string", "enum": ["active", "inactive"] }, "protected": { "type": "boolean" },
                        "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" },
                        "expires_at": { "type": ["string", "null"], "format": "date-time" }, "last_used_at": { "type": ["string", "null"], "format": "date-time" },
                        "allowed_cidrs": { "type": "array", "items": { "type": "string" } },
                        "allowed_origins": { "type": "array", "items": { "type": "string" }, "description": "Browser origins that may use the key (empty: any): exact scheme://host[:port] origins or https://*.example.com subdomain patterns, matched against Origin (or, without it, the Referer's origin)" },
                        "metadata": { "type": "object" }
                    }
                },
                "IssuedKey": { "allOf": [ { "$ref": "#/components/schemas/ApiKey" }, { "type": "object", "required": ["secret", "key"], "properties": { "secret": { "type": "string" }, "key": { "type": "string", "description": "The single-string form of id and secret, shown once" } } } ] },
                "UpdatedKey": { "allOf": [ { "$ref": "#/components/schemas/ApiKey" }, { "type": "object", "properties": { "effective_by": { "type": "string", "format": "date-time" } } } ] },
                "RotatedKey": { "allOf": [ { "$ref": "#/components/schemas/ApiKey" }, { "type": "object", "required": ["secret", "key", "previous_secret_expires_at", "effective_by"], "properties": { "secret": { "type": "string" }, "key": { "type": "string" }, "previous_secret_expires_at": { "type": ["string", "null"], "format": "date-time" }, "effective_by": { "type": "string", "format": "date-time" } } } ] },
                "NewKey": {
                    "type": "object", "additionalProperties": false, "required": ["name", "permissions"],
                    "properties": {
                        "name": { "type": "string" }, "description": { "type": "string" }, "application": { "type": ["string", "null"] },
                        "app_id": { "type": ["string", "null"] },
                        "permissions": { "type": "array", "items": { "type": "string" } }, "expires_at": { "type": ["string", "null"], "format": "date-time" },
                        "allowed_cidrs": { "type": "array", "items": { "type": "string" } },
                        "allowed_origins": { "type": "array", "items": { "type": "string" }, "description": "Browser origins that may use the key (empty: any): exact scheme://host[:port] origins or https://*.example.com subdomain patterns, matched against Origin (or, without it, the Referer's origin)" },
                        "metadata": { "type": "object" }
                    }
                },
                "KeyUpdate": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "name": { "type": "string" }, "description": { "type": "string" }, "application": { "type": ["string", "null"] },
                        "app_id": { "type": ["string", "null"], "description": "Moves the key to this application of its account (null: out of any)" },
                        "permissions": { "type": "array", "items": { "type": "string" } }, "expires_at": { "type": ["string", "null"], "format": "date-time" },
                        "status": { "type": "string", "enum": ["active", "inactive"] },
                        "allowed_cidrs": { "type": "array", "items": { "type": "string" } },
                        "allowed_origins": { "type": "array", "items": { "type": "string" }, "description": "Browser origins that may use the key (empty: any): exact scheme://host[:port] origins or https://*.example.com subdomain patterns, matched against Origin (or, without it, the Referer's origin)" },
                        "metadata": { "type": "object" }
                    }
                },
                "Rotate": { "type": "object", "additionalProperties": false, "properties": { "grace_period_seconds": { "type": "integer", "minimum": 0 } } },
                "Deleted": { "type": "object", "required": ["id", "status", "effective_by"], "properties": { "id": { "type": "string" }, "status": { "const": "deleted" }, "effective_by": { "type": "string", "format": "date-time" } } },
                "KeyPage": { "type": "object", "required": ["items", "next_cursor", "total"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/ApiKey" } }, "next_cursor": { "type": ["string", "null"] }, "total": { "type": ["integer", "null"], "description": "How many keys match the filter, when that is cheap to count; always null today (counting a filter is a walk of its whole index range)" } } },
                "UsageReport": usage_report_schema(),
                "Usage": {
                    "type": "object", "required": ["key_id", "from", "to", "items"],
                    "properties": {
                        "key_id": { "type": "string" }, "from": { "type": "string", "format": "date-time" }, "to": { "type": "string", "format": "date-time" },
                        "items": { "type": "array", "items": { "type": "object", "properties": { "hour": { "type": "string", "format": "date-time" }, "origin": { "type": "string" }, "category": { "type": "string" }, "successes": { "type": "integer" }, "failures": { "type": "integer" }, "rate_limited": { "type": "integer" }, "usage_exceeded": { "type": "integer" } } } }
                    }
                },
                "Login": { "type": "object", "additionalProperties": false, "required": ["key", "secret"], "properties": { "key": { "type": "string" }, "secret": { "type": "string" } } },
                "Session": { "type": "object", "required": ["token", "token_type", "expires_at", "expires_in"], "properties": { "token": { "type": "string" }, "token_type": { "const": "Bearer" }, "expires_at": { "type": "string", "format": "date-time" }, "expires_in": { "type": "integer" } } },
                "Whoami": { "type": "object", "required": ["account_id", "key_id", "session_id", "permissions"], "properties": { "account_id": { "type": "string" }, "key_id": { "type": ["string", "null"], "description": "null for a person the host application signed in" }, "session_id": { "type": ["string", "null"] }, "permissions": { "type": "array", "items": { "type": "string" } }, "person": { "type": "object", "description": "The person the host application signed in (HostUser); absent for a key", "required": ["id", "name"], "properties": { "id": { "type": "string" }, "name": { "type": "string" } } } } }
            }
        }
    });
    merge(doc.pointer_mut("/paths"), app_paths());
    merge(doc.pointer_mut("/components/schemas"), app_schemas());
    merge(doc.pointer_mut("/paths"), account_paths());
    merge(doc.pointer_mut("/components/schemas"), account_schemas());
    merge(doc.pointer_mut("/paths"), allowlist_paths());
    merge(doc.pointer_mut("/components/schemas"), allowlist_schemas());
    merge(doc.pointer_mut("/paths"), event_paths());
    merge(doc.pointer_mut("/components/schemas"), event_schemas());
    crate::http::ratelimit::document_limits(&mut doc);
    super::openapi_fields::document_fields(&mut doc);
    doc
}

/// The filters of `GET /events` and `GET /events/stream`.
fn event_filters() -> Vec<Value> {
    vec![
        q(
            "key_id",
            json!({ "type": "string", "minLength": 1, "description": "Events about this key (404 when it is not, and never was, a key of the accounts read)" }),
        ),
        q(
            "app_id",
            json!({ "type": "string", "minLength": 1, "description": "Events about this application: its own and its keys'" }),
        ),
        q(
            "account_id",
            json!({ "type": "string", "minLength": 1, "description": "The events of this direct child account instead (readAccounts)" }),
        ),
        q(
            "children",
            json!({ "type": "boolean", "default": false, "description": "Also the events of the account's direct children (readAccounts)" }),
        ),
        q(
            "action",
            json!({ "type": "string", "enum": [
            "account_created", "account_updated", "account_deactivated", "account_activated",
            "key_created", "key_updated", "key_deactivated", "key_activated", "key_rotated", "key_deleted", "key_rehashed",
            "app_created", "app_updated", "app_deactivated", "app_activated", "app_deleted",
            "origin_allowed", "origin_removed", "login", "logout", "login_failed", "management_refused"
        ] }),
        ),
        q(
            "actor",
            json!({ "type": "string", "pattern": "^(system|key|session|user|key:.+|user:.+)$", "description": "`system`, `key`, `session` or `user` (every actor of the kind), `key:<key id>` (that key, directly or through its sessions), `user:<user id>` (that person)" }),
        ),
        q(
            "from",
            json!({ "type": "string", "format": "date-time", "description": "Events at or after this instant" }),
        ),
        q(
            "to",
            json!({ "type": "string", "format": "date-time", "description": "Events before this instant" }),
        ),
    ]
}

/// `/events` and `/events/stream`.
fn event_paths() -> Value {
    let mut list = event_filters();
    list.push(q(
        "limit",
        json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 50 }),
    ));
    list.push(q("cursor", json!({ "type": "string", "minLength": 1 })));
    let mut stream = event_filters();
    stream.push(json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string", "pattern": "^[0-9]{1,20}$" }, "description": "Resume after the event with this `id:`: every matching event committed after it follows" }));
    json!({
        "/events": {
            "get": {
                "operationId": "listEvents", "summary": "The activity log of the acting account (or a child, or it and its children), newest first (readApiKeys)",
                "parameters": list,
                "responses": with_common(json!({ "200": ok("A page of events", "EventPage"), "404": err("No such key, or account, for this caller (deleted keys' events remain)"), "422": err("Invalid filter, limit or cursor (field named)") }))
            }
        },
        "/events/stream": {
            "get": {
                "operationId": "streamEvents",
                "summary": "The activity log live, as Server-Sent Events (readApiKeys; works with an Authorization header through fetch)",
                "description": "Each event is one message: `id: <position>` then `data: <the event as GET /events lists it, one line>`, then a blank line. Comment lines (`: keep-alive`) come every 15 s. Send `Last-Event-ID` with the last `id:` seen to resume: every matching event committed after it follows, from the store (nothing is missed across reconnections or instances). The stream ends after the propagation window (`: reconnect`); reconnect with `Last-Event-ID`. A reader slower than 10 s per chunk is dropped and resumes the same way.",
                "parameters": stream,
                "responses": with_common(json!({
                    "200": { "description": "The event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                    "404": err("No such key, or account, for this caller"),
                    "422": err("Invalid filter or Last-Event-ID (field named)")
                }))
            }
        }
    })
}

/// `AuditEvent` and `EventPage`.
fn event_schemas() -> Value {
    json!({
        "AuditEvent": {
            "type": "object", "required": ["id", "at", "action", "account_id", "key_id", "session_id", "app_id", "actor", "client_ip", "details"],
            "properties": {
                "id": { "type": "string" }, "at": { "type": "string", "format": "date-time" }, "action": { "type": "string" },
                "account_id": { "type": "string" }, "key_id": { "type": ["string", "null"] }, "session_id": { "type": ["string", "null"] },
                "app_id": { "type": ["string", "null"] },
                "actor": { "type": "object", "required": ["kind"], "properties": {
                    "kind": { "type": "string", "enum": ["system", "key", "session", "user"] },
                    "key_id": { "type": ["string", "null"] }, "session_id": { "type": ["string", "null"] }, "account_id": { "type": ["string", "null"] },
                    "user_id": { "type": ["string", "null"] }, "user_name": { "type": ["string", "null"] }
                } },
                "client_ip": { "type": ["string", "null"] },
                "details": { "type": "object", "description": "What changed: `changed` (field names) with `before` and `after` values of non-secret fields; `count`, `cause` and `minute` for aggregated refusals (login_failed, management_refused)" }
            }
        },
        "EventPage": { "type": "object", "required": ["items", "next_cursor"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/AuditEvent" } }, "next_cursor": { "type": ["string", "null"] } } }
    })
}

/// The `GET /usage` response (its own `json!`: the document's one is at
/// the macro's recursion limit).
fn usage_report_schema() -> Value {
    json!({ "type": "object", "required": ["from", "to", "group_by", "items", "next_cursor"], "properties": { "from": { "type": "string", "format": "date-time" }, "to": { "type": "string", "format": "date-time" }, "group_by": { "type": "string", "enum": ["key", "app", "account"] }, "items": { "type": "array", "items": { "type": "object", "required": ["id", "name", "successes", "failures", "series"], "properties": { "id": { "type": "string" }, "name": { "type": ["string", "null"] }, "successes": { "type": "integer" }, "failures": { "type": "integer" }, "series": { "type": "array", "items": { "type": "object", "required": ["at", "successes", "failures"], "properties": { "at": { "type": "string", "format": "date-time" }, "successes": { "type": "integer" }, "failures": { "type": "integer" }, "rate_limited": { "type": "integer" }, "usage_exceeded": { "type": "integer" } } } } } } }, "next_cursor": { "type": ["string", "null"] } } })
}
