//! The real `portcullis` binary, as one test binary: the site as a person uses it, serving and
//! shutting down, the command line, the administrator's commands, the `redis` profile on a real
//! `redis-server`, and interoperability with a real Flask app.

mod admin_cli;
mod cli;
mod flask_interop;
mod hosts;
mod limits;
mod redis_profile;
mod sentinel_failover;
mod serve;
mod site;
mod support;
