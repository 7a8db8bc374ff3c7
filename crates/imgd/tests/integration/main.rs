//! All HTTP integration tests in one binary: each test starts its own server on an ephemeral
//! port with its own data dir and talks to it over real sockets.

mod common;

mod api;
mod delivery;
mod ingest;
mod ops;
mod process;
mod variants;
