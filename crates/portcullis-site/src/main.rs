//! The Portcullis site.
fn main() {}
