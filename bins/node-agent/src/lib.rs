//! node-agent as a library: the data mover that `node-agent serve` runs on every node
//! ([`data_mover`]), driven in-process by the tests. `main.rs` parses arguments and wires.

pub mod data_mover;
