use super::Invalid;

/// A validated `page`/`limit` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Items per page, 1 to [`PageRequest::MAX_LIMIT`].
    pub limit: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

impl PageRequest {
    /// Items per page when `limit` is absent.
    pub const DEFAULT_LIMIT: u32 = 10;
    /// Largest accepted `limit`.
    pub const MAX_LIMIT: u32 = 100;

    /// Parses the optional raw `page` and `limit` query values.
    pub fn parse(page: Option<&str>, limit: Option<&str>) -> Result<Self, Invalid> {
        let page = match page {
            None => 1,
            Some(raw) => parse_bounded(raw, 1, u32::MAX).ok_or_else(|| {
                Invalid::new(
                    "invalid_page",
                    "page",
                    "page must be an integer of at least 1",
                )
            })?,
        };
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => parse_bounded(raw, 1, Self::MAX_LIMIT).ok_or_else(|| {
                Invalid::new(
                    "invalid_limit",
                    "limit",
                    "limit must be an integer from 1 to 100",
                )
            })?,
        };
        Ok(Self { page, limit })
    }

    /// How many items precede this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.limit)
    }
}

/// Number of pages for `items` at `limit` per page: `ceil(items / limit)`.
pub fn pages(items: u64, limit: u32) -> u64 {
    items.div_ceil(u64::from(limit.max(1)))
}

/// Parses a decimal integer made of ASCII digits only, within `min..=max`.
fn parse_bounded(raw: &str, min: u32, max: u32) -> Option<u32> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u32>().ok().filter(|n| (min..=max).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_first_page_of_ten() {
        assert_eq!(
            PageRequest::parse(None, None),
            Ok(PageRequest { page: 1, limit: 10 })
        );
    }

    #[test]
    fn accepts_bounds() {
        let p = PageRequest::parse(Some("4294967295"), Some("100")).unwrap();
        assert_eq!((p.page, p.limit), (u32::MAX, 100));
        assert_eq!(p.offset(), u64::from(u32::MAX - 1) * 100);
        assert_eq!(PageRequest::parse(Some("007"), Some("1")).unwrap().page, 7);
    }

    #[test]
    fn rejects_out_of_range_and_non_integers() {
        for page in ["0", "-1", "+1", "1.0", "1e3", "", " 1", "abc", "4294967296"] {
            let err = PageRequest::parse(Some(page), None).unwrap_err();
            assert_eq!((err.code, err.param), ("invalid_page", "page"), "{page:?}");
        }
        for limit in ["0", "101", "-5", "ten", "", "10 "] {
            let err = PageRequest::parse(None, Some(limit)).unwrap_err();
            assert_eq!(
                (err.code, err.param),
                ("invalid_limit", "limit"),
                "{limit:?}"
            );
        }
    }

    #[test]
    fn pages_is_ceiling_of_items_over_limit() {
        assert_eq!(pages(0, 10), 0);
        assert_eq!(pages(1, 10), 1);
        assert_eq!(pages(10, 10), 1);
        assert_eq!(pages(11, 10), 2);
        assert_eq!(pages(250, 100), 3);
    }
}
