//! Keyset pagination: `limit` ≤ 100 and an opaque cursor naming the last row of the page before.

use crate::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

pub const MAX_PAGE_SIZE: u32 = 100;

/// A request for one page, validated on construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    after: Option<Cursor>,
}

impl PageRequest {
    /// `limit` must be 1..=100; `cursor` is the `nextCursor` of the page before, if any.
    pub fn new(limit: u32, cursor: Option<&str>) -> Result<Self, StoreError> {
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(StoreError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        let after = cursor.map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }

    pub fn first(limit: u32) -> Result<Self, StoreError> {
        Self::new(limit, None)
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn after(&self) -> Option<&Cursor> {
        self.after.as_ref()
    }
}

/// One page of rows, newest first, and the cursor of the next page (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `limit + 1`: the extra row only says that another
    /// page exists, so the last page never comes back empty.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> Cursor) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|row| cursor_of(row).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// The position of a row in a `(time DESC, id DESC)` ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    /// `<unix nanoseconds>_<uuid>`: opaque to clients, cheap to check.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.unix_timestamp_nanos(), self.id.simple())
    }

    pub fn decode(raw: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Invalid("cursor is not one this server issued".into());
        if raw.len() > 64 {
            return Err(bad());
        }
        let (nanos, id) = raw.split_once('_').ok_or_else(bad)?;
        let nanos: i128 = nanos.parse().map_err(|_| bad())?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
        let id = Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self { at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "x", "1_", "_abc", "12_notauuid", &"9".repeat(80)] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn page_limits_are_enforced() {
        assert!(PageRequest::first(0).is_err());
        assert!(PageRequest::first(101).is_err());
        assert_eq!(PageRequest::first(100).unwrap().limit(), 100);
    }
}
