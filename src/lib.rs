//! Switchboard: a gRPC control plane for contact-center agent desktops and media routing.
//!
//! `api` (thin tonic handlers) -> `engine` (the one writer) -> `domain` (pure rules), with
//! `store` (the journal) and `watch` (revisioned fan-out) beside the engine.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod engine;
pub mod grpc_code;
pub mod lifecycle;
pub mod metrics;
pub mod pb;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod watch;
pub mod web;
