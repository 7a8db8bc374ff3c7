//! All HTTP integration tests in one binary: each test starts its own server on an ephemeral
//! port with its own data dir and talks to it over real sockets. The metadata engine is SQLite,
//! or PostgreSQL with `IMGD_TEST_METADATA=postgres` (see `common::metadata_database`).

mod common;
#[path = "../shared/postgres.rs"]
mod postgres;

mod animation;
mod api;
mod authz;
mod connections;
mod delivery;
mod gc;
mod heif;
mod ingest;
mod ops;
mod outages;
mod process;
mod safety;
mod secrets;
mod signed;
mod tenancy;
mod variants;
