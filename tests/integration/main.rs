//! Integration tests of the custodian facade against real PostgreSQL, MariaDB and SQLite.
//! Every scenario runs on all three backends (see `common::on_all_backends!`).

#[macro_use]
pub mod common;
pub mod bank;
pub mod entities;
pub mod model;

mod access;
mod access_denials;
mod access_guard;
pub mod audit;
mod audit_guard;
mod audit_writes;
mod audited_round_trips;
pub mod backup;
mod backup_logical;
mod build_features;
mod cache;
mod cache_processes;
mod cascades;
mod cli;
mod cluster;
mod cluster_rig;
mod commit_outcome;
mod config;
mod coordinate;
mod coordinate_backup;
mod coordinate_recovery;
mod coordinate_rig;
mod crud;
pub mod crypto;
mod encrypted;
mod errors;
mod example;
pub mod faults;
mod fidelity;
mod galera;
mod health;
mod inlined_records;
pub mod instrumentation_chain;
mod lifecycle;
mod migrate_diff;
mod observe;
mod observe_binds;
mod observe_capture;
mod observe_plans;
mod pitr;
mod pool;
mod progress;
mod proxy;
mod relations;
mod returning;
mod round_trips;
mod schema;
mod schema_advice;
mod server_session;
mod set_fast_path;
mod set_hooks;
mod set_updates;
mod shredding;
mod slow_plan_advice;
mod tamper;
mod transactions;
mod types;
mod validation;

/// The compliance example, compiled into the suite so it runs on every backend.
#[path = "../../examples/compliance_reporting.rs"]
pub mod compliance_example;
