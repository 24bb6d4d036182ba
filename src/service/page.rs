//! Keyset pages of the management lists: the page size, the opaque cursor
//! (a position `(created_at or at, id)`), and cutting a page read with one
//! row more than asked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::usage::{nanos_to_time, time_to_nanos};

fn not_a_cursor() -> Error {
    Error::InvalidInput {
        field: "cursor",
        reason: "not a cursor returned by this API".into(),
    }
}

/// The cursor of the position `(at, id)`.
pub(crate) fn encode_cursor(at: OffsetDateTime, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", time_to_nanos(at), id))
}

/// The position a cursor names.
///
/// # Errors
/// [`Error::InvalidInput`] (field `cursor`) for anything not made by
/// [`encode_cursor`].
pub(crate) fn decode_cursor(c: &str) -> Result<(OffsetDateTime, String)> {
    if c.len() > 200 {
        return Err(not_a_cursor());
    }
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| not_a_cursor())?;
    let raw = String::from_utf8(raw).map_err(|_| not_a_cursor())?;
    let (nanos, id) = raw.split_once('.').ok_or_else(not_a_cursor)?;
    let nanos: i64 = nanos.parse().map_err(|_| not_a_cursor())?;
    Ok((nanos_to_time(nanos), id.to_owned()))
}

/// The position of an optional cursor, its id parsed by `parse` (`None`:
/// not an id of this list, so not one of its cursors).
///
/// # Errors
/// As [`decode_cursor`].
pub(crate) fn cursor_position<I>(
    cursor: Option<&str>,
    parse: impl FnOnce(&str) -> Option<I>,
) -> Result<Option<(OffsetDateTime, I)>> {
    let Some(c) = cursor else { return Ok(None) };
    let (at, id) = decode_cursor(c)?;
    let id = parse(&id).ok_or_else(not_a_cursor)?;
    Ok(Some((at, id)))
}

/// A page size: 1–100.
///
/// # Errors
/// [`Error::InvalidInput`] (field `limit`) otherwise.
pub(crate) fn page_limit(limit: usize) -> Result<usize> {
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::InvalidInput {
            field: "limit",
            reason: "must be between 1 and 100".into(),
        })
    }
}

/// Cuts `items`, read with one row more than `limit`, to `limit`; the
/// cursor of its last row when there was more, `None` on the last page.
pub(crate) fn cut_page<T>(
    items: &mut Vec<T>,
    limit: usize,
    position: impl Fn(&T) -> (OffsetDateTime, &str),
) -> Option<String> {
    if items.len() <= limit {
        return None;
    }
    items.truncate(limit);
    items.last().map(|last| {
        let (at, id) = position(last);
        encode_cursor(at, id)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cursor_names_its_position_and_nothing_else_is_one() {
        let at = time::macros::datetime!(2030-01-02 03:04:05.123456789 UTC);
        let c = encode_cursor(at, "kw_abc");
        assert_eq!(decode_cursor(&c).unwrap(), (at, "kw_abc".to_owned()));
        let parsed = cursor_position(Some(&c), |id| (id == "kw_abc").then_some(7)).unwrap();
        assert_eq!(parsed, Some((at, 7)));
        assert!(cursor_position(Some(&c), |_| None::<u8>).is_err());
        assert!(cursor_position(Some("garbage!"), |id| Some(id.to_owned())).is_err());
        assert_eq!(cursor_position(None, |_| Some(())).unwrap(), None);
    }

    #[test]
    fn a_page_read_with_one_more_row_is_cut_with_a_cursor() {
        let at = time::macros::datetime!(2030-01-02 00:00 UTC);
        let rows = |n: usize| (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>();
        let mut more = rows(3);
        let next = cut_page(&mut more, 2, |r| (at, r.as_str()));
        assert_eq!(more, rows(2));
        assert_eq!(next, Some(encode_cursor(at, "r1")));
        let mut last = rows(2);
        assert_eq!(cut_page(&mut last, 2, |r| (at, r.as_str())), None);
        assert_eq!(last, rows(2));
    }
}
