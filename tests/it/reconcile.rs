//! placeholder

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![]
}
