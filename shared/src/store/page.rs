//! Pages of a listing: which page to read and what one holds.

use crate::domain::PageRequest;

/// One page of results and the total they were drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Total matching items across all pages.
    pub total: u64,
    /// When more items follow: the sort key of this page's last one, which
    /// [`PageAt::After`] continues from.
    pub more_after: Option<String>,
}

/// Which page of a listing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageAt {
    /// A numbered page.
    Number(PageRequest),
    /// The `limit` items after the one with sort key `after` (from a cursor).
    After {
        /// Sort key of the last item already seen.
        after: String,
        /// Items per page.
        limit: u32,
    },
}

impl PageAt {
    /// Items per page.
    pub(super) fn limit(&self) -> u32 {
        match self {
            Self::Number(p) => p.limit,
            Self::After { limit, .. } => *limit,
        }
    }

    /// Whether the page is read without the listing's directory: the first
    /// page, or the page after a cursor.
    pub(super) fn reads_from_a_key(&self) -> bool {
        match self {
            Self::Number(p) => p.offset() == 0,
            Self::After { .. } => true,
        }
    }
}
