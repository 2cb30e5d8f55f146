//! The app server's integration tests: one binary, every test starting its
//! own app on port 0. Real Postgres and Redis come from `yelb-testkit`.

// Tests fail loudly on purpose: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

mod helpers;

mod failures;
mod limits;
mod modern_api;
mod ops;
mod original_api;
mod process;
mod replicas;
mod stage;
