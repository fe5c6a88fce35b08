//! Matching a request path against a route's path template.

/// Path parameters captured by a route.
pub type PathParams = Vec<(String, String)>;

/// The parameters of `path` when it matches `template` (`/customer/{customerID}`:
/// a `{name}` segment matches one non-empty segment, percent-decoded).
pub fn match_template(template: &str, path: &str) -> Option<PathParams> {
    let mut params = Vec::new();
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {
                params.push((w.trim_matches(['{', '}']).to_owned(), percent_decode(g)?));
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// Decodes `%XX` escapes in a path segment (a `%` not followed by two hex digits
/// stays as it is); `None` when the result is not valid UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literal_segments_and_captures_parameters() {
        assert_eq!(
            match_template("/customer/{customerID}/members", "/customer/a%20b/members"),
            Some(vec![("customerID".to_owned(), "a b".to_owned())])
        );
        assert_eq!(match_template("/customers", "/customers"), Some(vec![]));
        assert_eq!(match_template("/customers", "/customers/"), None);
        assert_eq!(match_template("/customer/{customerID}", "/customer/"), None);
        assert_eq!(
            match_template("/customer/{customerID}", "/customer/%FF"),
            None
        );
    }

    #[test]
    fn decodes_percent_escapes() {
        // Escapes of multi-byte characters, and `%` without two hex digits kept as is.
        assert_eq!(percent_decode("%C3%A9t%c3%a9").as_deref(), Some("été"));
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%C3"), None);
    }
}
