//! node-agent as a library: the data mover that `node-agent serve` runs on every node
//! ([`data_mover`]) and what the `restore-wait` init container runs ([`restore_wait`]),
//! driven in-process by the tests. `main.rs` parses arguments and wires.

pub mod data_mover;
pub mod restore_wait;
pub mod snapshot_mover;
