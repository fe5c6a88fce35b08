//! The local stack's pieces that tests reuse: settings, the stream poller and
//! the import.

pub mod import;
pub mod local;
pub mod stream;
