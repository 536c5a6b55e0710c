//! cairn-server's control plane, as a library that tests drive in-process: what the server
//! does with Velero's objects in its namespace. `main.rs` parses arguments and wires.

pub mod credentials;
