//! The API described as OpenAPI 3.0 (`GET /v1/openapi.json`), for clients and their
//! generators. Kept beside the handlers; a test checks every route is in it.

use serde_json::{json, Value};

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn name_parameter(what: &str) -> Value {
    json!({"name": "name", "in": "path", "required": true, "description": what, "schema": {"type": "string"}})
}

/// The document.
pub fn document() -> Value {
    let common = |mut responses: Value| {
        responses["401"] = error("No known bearer token.");
        responses["504"] = error("The call took longer than 30 s.");
        responses
    };
    let changing = |mut responses: Value| {
        responses["403"] = error("A read token cannot change anything.");
        responses["409"] = ok(
            "Another backup, restore or deletion runs; `running` names it.",
            "Error",
        );
        common(responses)
    };
    let string_list = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "cairn platform API", "version": crate::status_requests::server_version(),
            "description": "Backups and restores over the velero.io objects cairn-server runs. Every answer carries requestId (and the X-Request-Id header)."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "A token of the Secret cairn-api-tokens (key admin: everything; key read: GET only)."}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}, "requestId": {"type": "string"},
                    "running": {"type": "object", "properties": {"kind": {"type": "string"}, "name": {"type": "string"}, "phase": {"type": "string"}}}}},
                "Started": {"type": "object", "properties": {"name": {"type": "string"}, "backupName": {"type": "string"}, "requestId": {"type": "string"}}},
                "BackupRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "description": {"type": "string"}, "workflow": {"type": "string", "description": "A workflow ConfigMap in the server's namespace."},
                    "includedNamespaces": string_list, "excludedNamespaces": string_list, "storageLocation": {"type": "string"},
                    "ttl": {"type": "string"}, "defaultVolumesToFsBackup": {"type": "boolean"}}},
                "RestoreRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "workflow": {"type": "string"}, "namespaceMapping": {"type": "object", "additionalProperties": {"type": "string"}},
                    "includedNamespaces": string_list, "phases": {"type": "string", "description": "A phases ConfigMap."}}},
                "Step": {"type": "object", "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                    "state": {"type": "string", "enum": ["pending", "running", "succeeded", "failed", "notRun"]},
                    "started": {"type": "string"}, "ended": {"type": "string"}, "message": {"type": "string"}}},
                "Backup": {"type": "object", "properties": {
                    "name": {"type": "string"}, "phase": {"type": "string"}, "description": {"type": "string", "nullable": true},
                    "workflow": {"type": "string", "nullable": true}, "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
                    "startTimestamp": {"type": "string", "nullable": true}, "completionTimestamp": {"type": "string", "nullable": true},
                    "expiration": {"type": "string", "nullable": true}, "progress": {"type": "object", "nullable": true},
                    "warnings": {"type": "integer"}, "errors": {"type": "integer"}, "failureReason": {"type": "string", "nullable": true},
                    "validationErrors": {"type": "array", "items": {"type": "string"}, "nullable": true}, "hookStatus": {"type": "object", "nullable": true},
                    "bytes": {"type": "object", "properties": {"new": {"type": "integer", "nullable": true}, "stored": {"type": "integer", "nullable": true}}},
                    "storageLocation": {"type": "string", "nullable": true}}},
                "Restore": {"type": "object", "properties": {
                    "name": {"type": "string"}, "backupName": {"type": "string"}, "phase": {"type": "string"},
                    "workflow": {"type": "string", "nullable": true}, "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
                    "currentPhase": {"type": "string", "nullable": true}, "phases": {"type": "object", "nullable": true},
                    "startTimestamp": {"type": "string", "nullable": true}, "completionTimestamp": {"type": "string", "nullable": true},
                    "progress": {"type": "object", "nullable": true}, "warnings": {"type": "integer"}, "errors": {"type": "integer"},
                    "failureReason": {"type": "string", "nullable": true}, "validationErrors": {"type": "array", "items": {"type": "string"}, "nullable": true},
                    "hookStatus": {"type": "object", "nullable": true}}},
                "Backups": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Backup"}}, "requestId": {"type": "string"}}},
                "Restores": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Restore"}}, "requestId": {"type": "string"}}},
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/internal/backups": {
                "post": {"summary": "Start a backup", "operationId": "startBackup",
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BackupRequest"}}}},
                    "responses": changing(json!({"202": ok("Started; name is the Backup's.", "Started"), "400": error("The body or its workflow is not usable.")}))},
                "get": {"summary": "List backups, newest first", "operationId": "listBackups",
                    "responses": common(json!({"200": ok("The backups.", "Backups")}))}
            },
            "/v1/internal/backups/{name}": {
                "parameters": [name_parameter("The Backup's name.")],
                "get": {"summary": "One backup", "operationId": "getBackup",
                    "responses": common(json!({"200": ok("The backup.", "Backup"), "404": error("No such backup.")}))},
                "delete": {"summary": "Delete a backup (a DeleteBackupRequest)", "operationId": "deleteBackup",
                    "responses": changing(json!({"202": ok("Asked; name is the DeleteBackupRequest's.", "Started"), "404": error("No such backup.")}))}
            },
            "/v1/internal/backups/{name}/restore": {
                "parameters": [name_parameter("The Backup to restore.")],
                "post": {"summary": "Restore a backup", "operationId": "startRestore",
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RestoreRequest"}}}},
                    "responses": changing(json!({"202": ok("Started; name is the Restore's.", "Started"),
                        "400": error("Backup must be in Completed phase, or the body is not usable."), "404": error("No such backup.")}))}
            },
            "/v1/internal/backups/{name}/contents": {
                "parameters": [name_parameter("The Backup's name.")],
                "get": {"summary": "What a backup holds", "operationId": "getBackupContents",
                    "responses": common(json!({"200": {"description": "namespaces, counts (per kind), resources (per kind, ns/name), volumes (namespace, pod, volume, node, bytes, snapshot), bytes."},
                        "400": error("The backup is not Completed or PartiallyFailed."), "404": error("No such backup."), "502": error("The repository could not be read.")}))}
            },
            "/v1/internal/restores": {
                "get": {"summary": "List restores, newest first", "operationId": "listRestores",
                    "responses": common(json!({"200": ok("The restores.", "Restores")}))}
            },
            "/v1/internal/restores/{name}": {
                "parameters": [name_parameter("The Restore's name.")],
                "get": {"summary": "One restore", "operationId": "getRestore",
                    "responses": common(json!({"200": ok("The restore.", "Restore"), "404": error("No such restore.")}))}
            },
            "/v1/internal/storage-location": {
                "post": {"summary": "Set an S3 storage location, checked live first", "operationId": "setStorageLocation",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                        "required": ["endpoint", "bucket", "accessKey", "secretKey"], "properties": {
                        "name": {"type": "string", "default": "default"}, "endpoint": {"type": "string"}, "bucket": {"type": "string"},
                        "prefix": {"type": "string"}, "region": {"type": "string", "default": "us-east-1"}, "accessKey": {"type": "string"},
                        "secretKey": {"type": "string"}, "default": {"type": "boolean", "default": true}}}}}},
                    "responses": changing(json!({"200": {"description": "Checked and set: the Secret cairn-location-<name> and the BackupStorageLocation."},
                        "400": error("What is wrong (a missing field, an endpoint that does not answer, keys or a bucket refused, another repository password); nothing was changed.")}))}
            },
            "/v1/internal/schedules": {
                "get": {"summary": "List schedules", "operationId": "listSchedules",
                    "responses": common(json!({"200": {"description": "items: name, schedule, paused, phase, lastBackup, lastSkipped, includedNamespaces."}}))}
            },
            "/v1/internal/storage-locations": {
                "get": {"summary": "List storage locations and their last check", "operationId": "listStorageLocations",
                    "responses": common(json!({"200": {"description": "items: name, provider, bucket, prefix, default, accessMode, phase, message, lastValidationTime."}}))}
            },
            "/v1/internal/storage-locations/{name}/repository": {
                "parameters": [name_parameter("The BackupStorageLocation's name.")],
                "get": {"summary": "A location's repository health", "operationId": "getRepository",
                    "responses": common(json!({"200": {"description": "lastMaintenance, lastFullMaintenance, nextFullDue, reclaimableBytes (null until measured), packs, packBytes, indexBytes, maintenanceRunning, pendingPlans."},
                        "404": error("No such location."), "502": error("The repository could not be opened or read.")}))}
            },
            "/": {
                "get": {"summary": "The web console (HTML; it calls this API with the token its user gives)", "operationId": "console", "security": [],
                    "responses": {"200": {"description": "text/html"}}}
            },
            "/v1/openapi.json": {
                "get": {"summary": "This document", "operationId": "openapi", "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.0"}}}
            }
        }
    })
}
