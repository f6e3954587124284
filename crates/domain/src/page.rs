//! Keyset (cursor) pagination: a page is found through an index on the position column,
//! so its cost does not grow with the collection.

/// Where a page starts: after a position (forward) or before one (backward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    After(i64),
    Before(i64),
}

/// A page request: at most `size` items from `cursor` (the start when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u32,
    pub cursor: Option<Cursor>,
}

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

impl PageRequest {
    /// A request whose size is clamped to `1..=MAX_PAGE_SIZE`.
    #[must_use]
    pub fn new(size: Option<u32>, cursor: Option<Cursor>) -> Self {
        let size = size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        Self { size, cursor }
    }
}

/// One page of items in position order, with the total and whether pages exist around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// `(position, item)` pairs, ascending by position.
    pub items: Vec<(i64, T)>,
    pub count: u64,
    pub has_next: bool,
    pub has_previous: bool,
}

impl<T> Page<T> {
    /// The cursor of the next page, when there is one.
    #[must_use]
    pub fn next_cursor(&self) -> Option<Cursor> {
        match (self.has_next, self.items.last()) {
            (true, Some((pos, _))) => Some(Cursor::After(*pos)),
            _ => None,
        }
    }
    /// The cursor of the previous page, when there is one.
    #[must_use]
    pub fn previous_cursor(&self) -> Option<Cursor> {
        match (self.has_previous, self.items.first()) {
            (true, Some((pos, _))) => Some(Cursor::Before(*pos)),
            _ => None,
        }
    }
}
