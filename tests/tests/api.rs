//! The platform API (issue 16) with a real HTTP client, against the control plane on the
//! tests' API server: 202 / 409 / 400 / 404 / 401 / 403, request ids, the operations'
//! objects and their progress, and the OpenAPI document.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use base64::Engine as _;
use cairn_tests::control_plane::{simulated_cluster, with_control_plane};
use cairn_tests::eventually;
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";

fn workflow(name: &str, script: &str) -> Value {
    let text = format!(
        "backup:\n  - name: prepare\n    job: {{template: {{spec: {{containers: [{{name: p, image: tools, command: [sh, -c, {script:?}]}}]}}}}}}\n    failureReason: prehook-failed\n  - name: kubernetes\n    objects: {{}}\n"
    );
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "velero"},
        "data": {"workflow.yaml": text}})
}

struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, v, _) = self.call(method, path, Some(ADMIN), body);
        (s, v)
    }

    fn ended(&self, path: &str) -> Value {
        eventually(120, path, || {
            let (s, v) = self.admin("GET", path, None);
            assert_eq!(s, 200, "{v}");
            matches!(
                v["phase"].as_str(),
                Some("Completed" | "PartiallyFailed" | "Failed" | "FailedValidation")
            )
            .then_some(v)
        })
    }
}

/// The tests' cluster with a simulated node, API tokens, a ConfigMap to back up and two
/// workflows; `f` runs while the API serves it (at the client's base) and the control
/// plane runs.
fn with_api(f: impl FnOnce(&Client, &cairn_tests::apiserver::ApiServer)) {
    let (nodes, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = simulated_cluster(&["node-a"], nodes.path(), store.path());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    server.seed(&[
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cairn-api-tokens", "namespace": "velero"},
            "data": {"admin": b64(ADMIN), "read": b64(READ)}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}, "data": {"k": "v"}}),
        workflow("slow", "sleep 2"),
        workflow("failing", "exit 3"),
    ]);
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(work.path());
    let cluster = repo_k8s::cluster::Cluster::connect(Some(&kubeconfig), None).unwrap();
    let api = Arc::new(cairn_server::api::Api::new(cluster, "velero"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stop = AtomicBool::new(false);
    let c = Client {
        base: format!("http://{addr}"),
        http: reqwest::blocking::Client::new(),
    };
    std::thread::scope(|s| {
        let _stop = cairn_tests::StopOnDrop(&stop);
        s.spawn(|| cairn_server::api::serve(addr, api, &stop).unwrap());
        eventually(30, "the API listens", || {
            std::net::TcpStream::connect(addr).ok()
        });
        with_control_plane(&server, &["node-a"], |_| f(&c, &server));
    });
}

#[test]
fn the_platform_api_starts_reads_and_refuses_as_documented() {
    with_api(|c, server| {
        // Who may call.
        let (s, v, h) = c.call("GET", "/v1/internal/backups", None, None);
        assert_eq!(s, 401, "{v}");
        assert_eq!(h["www-authenticate"], "Bearer");
        assert!(
            v["error"].as_str().unwrap().contains("cairn-api-tokens"),
            "{v}"
        );
        assert_eq!(
            c.call(
                "GET",
                "/v1/internal/backups",
                Some("not-a-token-at-all-123"),
                None
            )
            .0,
            401
        );
        let (s, v, _) = c.call("GET", "/v1/internal/backups", Some(READ), None);
        assert_eq!((s, &v["items"]), (200, &json!([])), "{v}");
        let (s, v, _) = c.call("POST", "/v1/internal/backups", Some(READ), Some(json!({})));
        assert_eq!(s, 403, "{v}");
        // The document needs no token and names every call.
        let (s, doc, _) = c.call("GET", "/v1/openapi.json", None, None);
        assert_eq!(s, 200);
        for path in [
            "/v1/internal/backups",
            "/v1/internal/backups/{name}",
            "/v1/internal/backups/{name}/restore",
            "/v1/internal/restores",
            "/v1/internal/restores/{name}",
            "/v1/internal/backups/{name}/contents",
            "/v1/internal/schedules",
            "/v1/internal/storage-locations",
            "/v1/internal/storage-locations/{name}/repository",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
        // Bad bodies.
        let (s, v) = c.admin("POST", "/v1/internal/backups", Some(json!({"bogus": 1})));
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains("bogus"), "{v}");
        let (s, v) = c.admin(
            "POST",
            "/v1/internal/backups",
            Some(json!({"workflow": "nope"})),
        );
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains("no ConfigMap"), "{v}");
        let big = json!({"description": "x".repeat(100_000)});
        assert_eq!(c.admin("POST", "/v1/internal/backups", Some(big)).0, 413);
        let (s, v) = c.admin("GET", "/v1/nothing", None);
        assert_eq!(s, 404, "{v}");

        // A backup, and a second one refused while it runs.
        let req = c.http.post(format!("{}/v1/internal/backups", c.base)).bearer_auth(ADMIN)
                .header("X-Request-Id", "req-123")
                .json(&json!({"description": "nightly", "workflow": "slow", "includedNamespaces": ["shop"]}))
                .send().unwrap();
        assert_eq!(req.status().as_u16(), 202);
        assert_eq!(req.headers()["x-request-id"], "req-123");
        let v: Value = req.json().unwrap();
        assert_eq!(v["requestId"], "req-123");
        let first = v["name"].as_str().unwrap().to_string();
        let (s, v) = c.admin("POST", "/v1/internal/backups", Some(json!({})));
        assert_eq!(s, 409, "{v}");
        assert_eq!(v["running"]["name"], first.as_str(), "{v}");
        assert!(v["error"].as_str().unwrap().contains(&first), "{v}");
        let b = c.ended(&format!("/v1/internal/backups/{first}"));
        assert_eq!(b["phase"], "Completed", "{b}");
        assert_eq!(b["description"], "nightly");
        assert_eq!(b["steps"].as_array().unwrap().len(), 2, "{b}");
        assert!(b["bytes"]["new"].as_u64().unwrap() > 0, "{b}");
        assert!(b["startTimestamp"].is_string() && b["completionTimestamp"].is_string());
        let object = server
            .get("velero.io/v1", "Backup", Some("velero"), &first)
            .unwrap();
        assert_eq!(
            object["metadata"]["annotations"]["cairn.io/request-id"], "req-123",
            "one source of truth"
        );

        // A failed backup cannot be restored; a missing one is 404.
        let (_, v) = c.admin(
            "POST",
            "/v1/internal/backups",
            Some(json!({"workflow": "failing"})),
        );
        let failed = v["name"].as_str().unwrap().to_string();
        let b = c.ended(&format!("/v1/internal/backups/{failed}"));
        assert_eq!(
            (b["phase"].as_str(), b["failureReason"].as_str()),
            (Some("Failed"), Some("prehook-failed")),
            "{b}"
        );
        let (s, v) = c.admin(
            "POST",
            &format!("/v1/internal/backups/{failed}/restore"),
            None,
        );
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("Backup must be in Completed phase"),
            "{v}"
        );
        assert_eq!(
            c.admin("POST", "/v1/internal/backups/nope/restore", None).0,
            404
        );
        assert_eq!(c.admin("GET", "/v1/internal/backups/nope", None).0, 404);
        assert_eq!(c.admin("GET", "/v1/internal/restores/nope", None).0, 404);

        // A restore into another namespace.
        let (s, v) = c.admin(
            "POST",
            &format!("/v1/internal/backups/{first}/restore"),
            Some(json!({"namespaceMapping": {"shop": "shop-copy"}})),
        );
        assert_eq!(s, 202, "{v}");
        let restore = v["name"].as_str().unwrap().to_string();
        let r = c.ended(&format!("/v1/internal/restores/{restore}"));
        assert_eq!(r["phase"], "Completed", "{r}");
        assert_eq!(r["backupName"], first.as_str());
        assert!(server
            .get("v1", "ConfigMap", Some("shop-copy"), "cfg")
            .is_some());
        let (_, list) = c.admin("GET", "/v1/internal/restores", None);
        assert_eq!(list["items"].as_array().unwrap().len(), 1);

        // Deleting: a DeleteBackupRequest, then the backup is gone.
        let (s, v) = c.admin("DELETE", &format!("/v1/internal/backups/{first}"), None);
        assert_eq!(s, 202, "{v}");
        eventually(60, "the backup deleted", || {
            (c.admin("GET", &format!("/v1/internal/backups/{first}"), None)
                .0
                == 404)
                .then_some(())
        });
        assert_eq!(c.admin("DELETE", "/v1/internal/backups/nope", None).0, 404);
    });
}

/// The web console in a real headless browser (Debian's Chromium), with no internet: sign
/// in, start a backup, watch it complete, restore it into another namespace, watch that
/// complete; the storage location and its repository's health show. Screenshots are kept
/// in `target/test-artifacts/console/`.
#[test]
fn the_console_backs_up_and_restores_in_a_browser() {
    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/console");
    // Everything the page needs is in it: no address outside this server.
    for absolute in ["http://", "https://", "//cdn"] {
        assert!(
            !cairn_server::api::CONSOLE.contains(absolute),
            "the console must work without internet: {absolute}"
        );
    }
    with_api(|c, server| {
        let mut b = cairn_tests::browser::Browser::start();
        b.open(&format!("{}/", c.base));
        b.screenshot(&shots.join("1-sign-in.png"));
        // A wrong token is refused and says so.
        b.eval("document.getElementById('token').value = 'wrong-token-0123456789'; document.getElementById('login-form').requestSubmit(); true");
        b.wait_for(
            30,
            "the refusal",
            "document.getElementById('message').textContent.includes('refused')",
        );
        b.eval(&format!("document.getElementById('token').value = '{ADMIN}'; document.getElementById('login-form').requestSubmit(); true"));
        b.wait_for(
            30,
            "the location's row",
            "document.getElementById('locations').textContent.includes('default')",
        );
        b.wait_for(
            60,
            "the repository's health",
            "document.getElementById('locations').textContent.includes('reclaimable')",
        );
        b.eval("document.getElementById('b-description').value = 'from the console'; document.getElementById('b-namespaces').value = 'shop'; document.getElementById('backup-form').requestSubmit(); true");
        b.wait_for(
            30,
            "the start message",
            "document.getElementById('message').textContent.includes('started')",
        );
        let name = b.eval("document.getElementById('message').textContent.split(' ')[1]");
        let name = name.as_str().unwrap().to_string();
        b.wait_for(120, "the backup Completed in the table", &format!(
            "(() => {{ const r = document.querySelector('[data-backup=\"{name}\"]'); return !!r && r.textContent.includes('Completed'); }})()"));
        b.screenshot(&shots.join("2-backup-completed.png"));
        b.eval(&format!(
            "document.querySelector('[data-contents=\"{name}\"]').click(); true"
        ));
        b.wait_for(
            30,
            "the contents",
            "document.getElementById('contents').textContent.includes('v1/ConfigMap')",
        );
        b.screenshot(&shots.join("3-backup-contents.png"));
        assert_eq!(
            c.admin("GET", &format!("/v1/internal/backups/{name}"), None)
                .1["description"],
            "from the console"
        );
        // Restore it into another namespace.
        b.eval(&format!(
            "document.querySelector('[data-restore=\"{name}\"]').click(); true"
        ));
        b.wait_for(
            10,
            "the restore form",
            "!document.getElementById('restore-panel').hidden",
        );
        b.eval("document.getElementById('r-mapping').value = 'shop=shop-console'; document.getElementById('restore-form').requestSubmit(); true");
        b.wait_for(
            30,
            "the restore started",
            "document.getElementById('message').textContent.startsWith('Restore')",
        );
        b.wait_for(120, "the restore Completed in the table",
            "(() => { const r = document.querySelector('[data-restore-row]'); return !!r && r.textContent.includes('Completed'); })()");
        b.screenshot(&shots.join("4-restore-completed.png"));
        assert!(server
            .get("v1", "ConfigMap", Some("shop-console"), "cfg")
            .is_some());
    });
}

/// `POST /v1/internal/storage-location` (S3, on the test server): every problem is a 400
/// saying what is wrong and that nothing changed; a location that answers is set (its
/// credentials Secret and the BackupStorageLocation), and the controller finds it
/// Available.
#[test]
fn a_storage_location_is_checked_live_before_it_is_set() {
    let Some(endpoint) = cairn_tests::s3_endpoint() else {
        return;
    };
    cairn_tests::s3_bucket(&endpoint, "api-location");
    with_api(|c, server| {
        let path = "/v1/internal/storage-location";
        let (s, v) = c.admin("POST", path, Some(json!({"bucket": "b"})));
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"], "missing: endpoint, accessKey, secretKey");
        let set = |endpoint: &str, bucket: &str| {
            json!({"name": "offsite", "endpoint": endpoint, "bucket": bucket, "prefix": "cluster-a",
                "accessKey": "test", "secretKey": "test", "default": false})
        };
        let (s, v) = c.admin("POST", path, Some(set(&endpoint, "no-such-bucket")));
        assert_eq!(s, 400, "{v}");
        let why = v["error"].as_str().unwrap();
        assert!(
            why.contains("listing the bucket failed") && why.ends_with("nothing was changed"),
            "{why}"
        );
        assert!(server
            .get(
                "velero.io/v1",
                "BackupStorageLocation",
                Some("velero"),
                "offsite"
            )
            .is_none());
        let (s, v) = c.admin("POST", path, Some(set("ftp://nowhere", "b")));
        assert_eq!(s, 400, "{v}");
        let (s, v) = c.admin("POST", path, Some(set(&endpoint, "api-location")));
        assert_eq!(s, 200, "{v}");
        let bsl = server
            .get(
                "velero.io/v1",
                "BackupStorageLocation",
                Some("velero"),
                "offsite",
            )
            .unwrap();
        assert_eq!(bsl["spec"]["config"]["s3Url"], endpoint.as_str());
        assert!(server
            .get("v1", "Secret", Some("velero"), "cairn-location-offsite")
            .is_some());
        eventually(60, "the location Available", || {
            let (_, l) = c.admin("GET", "/v1/internal/storage-locations", None);
            l["items"]
                .as_array()?
                .iter()
                .any(|x| x["name"] == "offsite" && x["phase"] == "Available")
                .then_some(())
        });
        // A read token may not.
        let (s, _, _) = c.call(
            "POST",
            path,
            Some(READ),
            Some(set(&endpoint, "api-location")),
        );
        assert_eq!(s, 403);
    });
}
