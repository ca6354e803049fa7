//! The real `portcullis` binary, as one test binary: the site as a person uses it, serving and
//! shutting down, its security events and probes, the command line, the administrator's
//! commands, the `redis` profile on a real `redis-server`, the metrics as Prometheus reads them,
//! interoperability with a real Flask app, and the production shape: two processes on
//! PostgreSQL and Redis behind a real nginx terminating HTTPS.

mod admin_cli;
mod behind_tls_proxy;
mod cli;
mod events;
mod flask_interop;
mod hosts;
mod limits;
mod metrics;
mod probes;
mod redis_profile;
mod sentinel_failover;
mod serve;
mod site;
mod support;
