//! Backends of custodian.
