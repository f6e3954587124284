//! Request values whose constraints live once: each type checks its constraint where it is
//! read (`Deserialize`, answering in words what is wanted) and describes the same
//! constraint in the OpenAPI document (`PartialSchema`), from the same constants, so the
//! check and the schema cannot drift (issue 24). Fields of these types carry
//! `#[schema(inline)]`: the schema of each use is its own.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// No control character (what `char::is_control` finds: C0, DEL and C1).
const NO_CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";

fn string(min: usize, max: usize, pattern: Option<String>) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(min)).max_length(Some(max)).pattern(pattern).into()
}

fn length_words(min: usize, max: usize) -> String {
    match (min, max) {
        (a, b) if a == b => format!("must be exactly {a} characters"),
        (0, b) => format!("must be at most {b} characters"),
        (a, b) => format!("must be {a} to {b} characters"),
    }
}

fn check_length<E: serde::de::Error>(s: &str, min: usize, max: usize) -> Result<(), E> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(E::custom(length_words(min, max)));
    }
    Ok(())
}

/// Any text of `MIN` to `MAX` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MIN: usize, const MAX: usize>(pub String);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Text<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_length(&s, MIN, MAX)?;
        Ok(Self(s))
    }
}

impl<const MIN: usize, const MAX: usize> PartialSchema for Text<MIN, MAX> {
    fn schema() -> RefOr<Schema> {
        string(MIN, MAX, None)
    }
}
impl<const MIN: usize, const MAX: usize> ToSchema for Text<MIN, MAX> {}

/// A name a person reads (an event's title, a user id): `MIN` to `MAX` characters, not
/// only spaces, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name<const MIN: usize, const MAX: usize>(pub String);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Name<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_length(&s, MIN, MAX)?;
        if s.trim().is_empty() {
            return Err(D::Error::custom("must not be blank"));
        }
        if s.chars().any(char::is_control) {
            return Err(D::Error::custom("must not hold control characters"));
        }
        Ok(Self(s))
    }
}

impl<const MIN: usize, const MAX: usize> PartialSchema for Name<MIN, MAX> {
    fn schema() -> RefOr<Schema> {
        // Rust's whitespace (what `trim` removes) is ECMAScript's `\s` but for U+FEFF,
        // which ECMAScript counts as space and Rust does not: excluded from names.
        let pattern = format!(r"^[^{NO_CONTROL}\uFEFF]*[^\s{NO_CONTROL}][^{NO_CONTROL}\uFEFF]*$");
        string(MIN, MAX, Some(pattern))
    }
}
impl<const MIN: usize, const MAX: usize> ToSchema for Name<MIN, MAX> {}

impl<const MIN: usize, const MAX: usize> Name<MIN, MAX> {
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A digest in hexadecimal: exactly `LEN` hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hex<const LEN: usize>(pub String);

impl<'de, const LEN: usize> Deserialize<'de> for Hex<LEN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(D::Error::custom(format!("must be {LEN} hexadecimal digits")));
        }
        Ok(Self(s))
    }
}

impl<const LEN: usize> PartialSchema for Hex<LEN> {
    fn schema() -> RefOr<Schema> {
        string(LEN, LEN, Some(format!("^[0-9a-fA-F]{{{LEN}}}$")))
    }
}
impl<const LEN: usize> ToSchema for Hex<LEN> {}

/// An integer, from JSON or from a form's text. A field left out stays serde's
/// "missing field", which names it; anything else says what is wanted.
fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Integer;
    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("must be an integer"))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim().parse().map_err(|_| E::custom("must be an integer"))
        }
    }
    d.deserialize_any(Integer)
}

/// The id of a stored thing: an integer of at least 1 (a number, or a form's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub i64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = integer(d)?;
        if v < 1 {
            return Err(D::Error::custom("must be at least 1"));
        }
        Ok(Self(v))
    }
}

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(i64::MAX)).into()
    }
}
impl ToSchema for Id {}

/// A list of at most `MAX` ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList<const MAX: usize>(pub Vec<i64>);

impl<'de, const MAX: usize> Deserialize<'de> for IdList<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<Id>::deserialize(d).map_err(|e| {
            let said = e.to_string();
            D::Error::custom(if said.starts_with("must be") { format!("items {said}") } else { said })
        })?;
        if items.len() > MAX {
            return Err(D::Error::custom(format!("must be at most {MAX} ids")));
        }
        Ok(Self(items.into_iter().map(|i| i.0).collect()))
    }
}

impl<const MAX: usize> PartialSchema for IdList<MAX> {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new().items(Id::schema()).max_items(Some(MAX)).into()
    }
}
impl<const MAX: usize> ToSchema for IdList<MAX> {}

/// `?page_size=`: a positive integer; pages hold at most the domain's largest page
/// (larger sizes are taken as that, as Django REST framework does).
pub struct PageSize;

impl PageSize {
    /// # Errors
    /// The words of what is wanted, when `raw` is no page size.
    pub fn parse(raw: &str) -> Result<u32, String> {
        match raw.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("page_size must be an integer from 1 to {}", u32::MAX)),
        }
    }
}

impl PartialSchema for PageSize {
    fn schema() -> RefOr<Schema> {
        let max = mediabox_domain::page::MAX_PAGE_SIZE;
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(u32::MAX))
            .description(Some(format!("items per page (default 50); more than {max} are taken as {max}")))
            .into()
    }
}
impl ToSchema for PageSize {}

/// `?cursor=`: as a page's `next` or `previous` gives it (`a` or `b`, then a position).
pub struct CursorText;

impl CursorText {
    /// What every cursor matches, and nothing else.
    pub const PATTERN: &'static str = "^[ab](0|[1-9][0-9]{0,17})$";
}

impl PartialSchema for CursorText {
    fn schema() -> RefOr<Schema> {
        string(2, 19, Some(Self::PATTERN.to_owned()))
    }
}
impl ToSchema for CursorText {}

/// A count of bytes written in a header (`Upload-Length`, `Upload-Offset`, the numbers of
/// `Content-Range`): decimal digits, at most 18, no sign and no leading zero.
pub struct ByteCount;

impl ByteCount {
    /// The number's pattern, without anchors (it is part of larger patterns).
    pub const DIGITS: &'static str = "(0|[1-9][0-9]{0,17})";

    /// The number `raw` writes, if it is written as [`Self::DIGITS`] says.
    #[must_use]
    pub fn parse(raw: &str) -> Option<u64> {
        let canonical = !raw.is_empty()
            && raw.len() <= 18
            && raw.bytes().all(|b| b.is_ascii_digit())
            && (raw == "0" || !raw.starts_with('0'));
        canonical.then(|| raw.parse().ok()).flatten()
    }
}

impl PartialSchema for ByteCount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(format!("^{}$", Self::DIGITS))).into()
    }
}
impl ToSchema for ByteCount {}

/// A chunk's `Content-Range`: `bytes START-END/TOTAL` (TOTAL may be `*`), numbers as
/// [`ByteCount`] reads them.
pub struct ContentRangeText;

impl ContentRangeText {
    pub const PATTERN: &'static str = r"^bytes (0|[1-9][0-9]{0,17})-(0|[1-9][0-9]{0,17})/((0|[1-9][0-9]{0,17})|\*)$";
}

impl PartialSchema for ContentRangeText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(Self::PATTERN)).into()
    }
}
impl ToSchema for ContentRangeText {}

/// An IRI of the rest API: `PREFIX` then what `PATTERN` matches (a path of a media by
/// uuid, or of a product by id). One that names nothing of the organization is a
/// violation (422), as SPEC 6 says.
pub struct Iri<const MEDIA: bool>;

impl<const MEDIA: bool> Iri<MEDIA> {
    #[must_use]
    pub fn pattern() -> &'static str {
        if MEDIA {
            "^/rest/api/medias/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        } else {
            "^/rest/api/products/[1-9][0-9]{0,17}$"
        }
    }
}

impl<const MEDIA: bool> PartialSchema for Iri<MEDIA> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(Self::pattern())).into()
    }
}
impl<const MEDIA: bool> ToSchema for Iri<MEDIA> {}

/// Media IRIs, in order.
pub struct MediaIris;

impl PartialSchema for MediaIris {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new().items(Iri::<true>::schema()).into()
    }
}
impl ToSchema for MediaIris {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err<T: for<'de> Deserialize<'de> + std::fmt::Debug>(v: serde_json::Value) -> String {
        serde_json::from_value::<T>(v).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn each_type_refuses_what_its_schema_excludes_in_words() {
        assert_eq!(err::<Name<1, 5>>(json!("")), "must be 1 to 5 characters");
        assert_eq!(err::<Name<1, 5>>(json!("   ")), "must not be blank");
        assert_eq!(err::<Name<1, 5>>(json!("a\u{1}")), "must not hold control characters");
        assert!(serde_json::from_value::<Name<1, 5>>(json!("héllo")).is_ok(), "characters, not bytes");
        assert_eq!(err::<Hex<4>>(json!("abcg")), "must be 4 hexadecimal digits");
        assert_eq!(err::<Id>(json!(0)), "must be at least 1");
        assert_eq!(err::<Id>(json!("x")), "must be an integer");
        assert_eq!(serde_json::from_value::<Id>(json!("12")).ok(), Some(Id(12)));
        assert_eq!(err::<IdList<2>>(json!([1, 2, 3])), "must be at most 2 ids");
        assert_eq!(err::<IdList<2>>(json!([0])), "items must be at least 1");
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WithId {
            media: Id,
        }
        assert_eq!(err::<WithId>(json!({})), "missing field `media`");
        assert_eq!(PageSize::parse("0"), Err("page_size must be an integer from 1 to 4294967295".to_owned()));
        assert_eq!(PageSize::parse("100000"), Ok(100_000));
    }

    #[test]
    fn the_documented_patterns_are_the_ones_described() {
        let doc = |s: RefOr<Schema>| serde_json::to_value(s).unwrap_or_default();
        assert_eq!(doc(ContentRangeText::schema())["pattern"], ContentRangeText::PATTERN);
        assert_eq!(doc(CursorText::schema())["pattern"], CursorText::PATTERN);
        assert_eq!(doc(Hex::<32>::schema())["pattern"], "^[0-9a-fA-F]{32}$");
    }

    #[test]
    fn a_byte_count_is_read_only_as_its_pattern_writes_it() {
        assert_eq!(ByteCount::parse("0"), Some(0));
        assert_eq!(ByteCount::parse("1048576"), Some(1_048_576));
        assert_eq!(ByteCount::parse("999999999999999999"), Some(999_999_999_999_999_999));
        for bad in ["", "007", "+5", "-1", " 5", "5 ", "1e3", "0x10", "1000000000000000000"] {
            assert_eq!(ByteCount::parse(bad), None, "{bad:?}");
        }
        let range = format!(r"^bytes {d}-{d}/({d}|\*)$", d = ByteCount::DIGITS);
        assert_eq!(range, ContentRangeText::PATTERN, "Content-Range is made of byte counts");
    }

    #[test]
    fn the_cursor_pattern_matches_the_cursors_pages_give() {
        use crate::dto::{decode_cursor, encode_cursor};
        use mediabox_domain::page::Cursor;
        for c in [Cursor::After(0), Cursor::After(9_007_199_254_740_993), Cursor::Before(42)] {
            let text = encode_cursor(c);
            assert!(text.starts_with(['a', 'b']) && text[1..].bytes().all(|b| b.is_ascii_digit()), "{text}");
            assert_eq!(decode_cursor(&text), Some(c));
        }
    }
}
