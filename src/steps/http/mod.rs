//! The HTTP kinds, one file each (`check.rs` for `http.check`), on the client they share in
//! `client.rs` (TLS, `via` tunnels, sending, status and body expectations); `sigv4.rs` signs
//! an `http.request` with an AWS access key pair.

pub mod check;
pub mod client;
pub mod request;
pub mod sigv4;

pub use check::HttpCheck;
/// Also read by `psql` for its CA and client certificates.
pub(crate) use client::read_pem;
