use chrono::{DateTime, SecondsFormat, Utc};

/// A UTC instant; printed as RFC 3339 with `Z`.
pub type Timestamp = DateTime<Utc>;

/// The current instant.
pub fn now() -> Timestamp {
    Utc::now()
}

/// RFC 3339 with whole seconds and `Z`: fixed width, so it sorts as text.
pub fn to_seconds(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with milliseconds and `Z`: fixed width, so it sorts as text.
pub fn to_millis(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
