//! The local stack's pieces that tests reuse: settings and the stream poller.

pub mod local;
pub mod stream;
