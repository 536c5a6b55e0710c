//! The pods `exec` subresource, as the API server offers it over a WebSocket
//! (`v5.channel.k8s.io` or `v4.channel.k8s.io`, what kube-rs and kubectl speak): each
//! message starts with its channel (1 stdout, 2 stderr, 3 the final Status as JSON).
//!
//! The stand-in runs the command on this machine, in the pod's directory of its simulated
//! node (`<nodes_dir>/<node>/pods/<uid>`, where its volumes are) or else in a temporary
//! directory, and returns its output and exit code. It is not a container: the command
//! sees this machine's files, with the pod's directory as its working directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::State;

/// What to run, from the request's query (`command=…&command=…&container=…`).
struct Request {
    command: Vec<String>,
    container: Option<String>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse(query: &str) -> Request {
    let mut r = Request {
        command: Vec::new(),
        container: None,
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "command" => r.command.push(decode(v)),
            "container" => r.container = Some(decode(v)),
            _ => {}
        }
    }
    r
}

fn refuse(code: StatusCode, message: String) -> Response {
    let reason = if code == StatusCode::NOT_FOUND {
        "NotFound"
    } else {
        "BadRequest"
    };
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

/// Answers an exec request for pod `ns/name`.
pub fn handle(
    state: Arc<Mutex<State>>,
    ws: WebSocketUpgrade,
    ns: String,
    name: String,
    query: String,
) -> Response {
    let req = parse(&query);
    let cwd = {
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        let key = (String::new(), "pods".to_string(), ns.clone(), name.clone());
        let Some(pod) = st.objects.get(&key) else {
            return refuse(StatusCode::NOT_FOUND, format!("pods {name:?} not found"));
        };
        let pod = &pod.value;
        let containers: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        if let Some(c) = &req.container {
            if !containers.contains(&c.as_str()) {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("container {c} is not valid for pod {name}"),
                );
            }
        }
        if req.command.is_empty() {
            return refuse(
                StatusCode::BAD_REQUEST,
                "you must specify at least one command for the container".into(),
            );
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        pod["spec"]["nodeName"]
            .as_str()
            .and_then(|n| st.pods_dir(n))
            .map(|d| d.join(uid))
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir)
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |mut socket| async move {
            let command = req.command.clone();
            let ran = tokio::task::spawn_blocking(move || run(&command, cwd)).await;
            let (stdout, stderr, code) = match ran {
                Ok(Ok(out)) => out,
                Ok(Err(e)) => (Vec::new(), e.into_bytes(), 126),
                Err(e) => (Vec::new(), e.to_string().into_bytes(), 126),
            };
            let channel = |n: u8, bytes: &[u8]| {
                let mut m = vec![n];
                m.extend_from_slice(bytes);
                Message::Binary(m.into())
            };
            if !stdout.is_empty() {
                let _ = socket.send(channel(1, &stdout)).await;
            }
            if !stderr.is_empty() {
                let _ = socket.send(channel(2, &stderr)).await;
            }
            let status = if code == 0 {
                json!({"metadata": {}, "status": "Success"})
            } else {
                json!({"metadata": {}, "status": "Failure",
                    "message": format!("command terminated with non-zero exit code: error executing command {:?}, exit code {code}", req.command),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
            };
            let _ = socket.send(channel(3, status.to_string().as_bytes())).await;
            // A normal closure: kubectl reads the error stream to its end, and a close
            // without a code is an error to it.
            let normal = axum::extract::ws::CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            };
            let _ = socket.send(Message::Close(Some(normal))).await;
        })
}

/// Runs the command; its stdout, stderr and exit code.
fn run(command: &[String], cwd: PathBuf) -> Result<(Vec<u8>, Vec<u8>, i32), String> {
    let out = std::process::Command::new(&command[0])
        .args(&command[1..])
        .current_dir(&cwd)
        .output()
        .map_err(|e| format!("exec: {:?}: {e}", command[0]))?;
    Ok((out.stdout, out.stderr, out.status.code().unwrap_or(128)))
}
