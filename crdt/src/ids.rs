//! Fresh cell ids.
//!
//! Ids are random UUIDs in their hyphenated form, like the ones jupyter_ydoc and JupyterLab
//! generate. Randomness comes from the standard library's per-process random hash keys: ids need
//! to be unique, not secret, and this keeps the crate free of a random-number dependency.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new random UUID (version 4 layout), e.g. `3f2b8c1e-5d4a-4b6f-9e2d-1a0b3c4d5e6f`.
pub(crate) fn fresh_cell_id() -> String {
    let state = RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = state.hash_one((n, 0u8));
    let low = state.hash_one((n, 1u8));
    let bits = (u128::from(high) << 64 | u128::from(low)) & !(0xf000 << 64) & !(0xc000 << 48);
    let bits = bits | (0x4000 << 64) | (0x8000 << 48);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_uuid_shaped_and_distinct() {
        let ids: HashSet<String> = (0..1000).map(|_| fresh_cell_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 36);
            assert!(crate::schema::is_valid_cell_id(id));
            assert_eq!(&id[14..15], "4", "{id}");
            assert!("89ab".contains(&id[19..20]), "{id}");
        }
    }
}
