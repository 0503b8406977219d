//! The form "a keyword, one item, or a non-empty list of items" (`heads = "each"`, `heads = 3`,
//! `heads = [0, 3]`) that several keys of the experiment file share, here and in the spec.
//!
//! [`keyword_or_list!`](crate::keyword_or_list!) implements [`KeywordOrList`] for such an enum
//! from its keywords, its list variant and its messages, and its `Serialize`, `Deserialize` and
//! `JsonSchema` through the functions here, so every such key parses, fails and documents itself
//! alike; each item type says once, as a [`ListItem`], where it may stand alone.

use std::fmt;
use std::marker::PhantomData;

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::de::value::{I64Deserializer, MapAccessDeserializer, StrDeserializer, U64Deserializer};
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The paths the macro's expansion names, so that its users need no extra imports.
#[doc(hidden)]
pub use {schemars, serde};

/// How a [`KeywordOrList`] value is written.
pub enum Written<'a, T> {
    /// One of the keywords.
    Keyword(&'static str),
    /// The list (a single item is written as a list of one).
    List(&'a [T]),
}

/// The forms besides a list in which one item may stand alone, read by the item's own
/// `Deserialize`; in the others a string that is no keyword is an unknown value, and an integer or
/// a table is of the wrong type.
#[derive(Clone, Copy, Debug)]
pub struct Alone {
    /// A string that is no keyword.
    pub strings: bool,
    /// An integer.
    pub integers: bool,
    /// A table.
    pub tables: bool,
}

impl Alone {
    /// Only lists hold items.
    pub const NOWHERE: Alone = Alone {
        strings: false,
        integers: false,
        tables: false,
    };
}

/// What a [`KeywordOrList`] lists: its schema, and where one item may stand alone.
pub trait ListItem: DeserializeOwned + Serialize {
    /// Where one item may stand alone.
    const ALONE: Alone = Alone::NOWHERE;

    /// The schema of one item.
    fn schema(generator: &mut SchemaGenerator) -> Schema;
}

/// Head indices: non-negative integers, only in lists.
impl ListItem for u32 {
    fn schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 0 })
    }
}

/// A value written as one of a few keywords, one item or a non-empty list of items (a single item
/// reads as a list of one).
pub trait KeywordOrList: Sized {
    /// What the list holds.
    type Item: ListItem;
    /// The name of the schema definition.
    const SCHEMA_NAME: &'static str;
    /// The schema's title.
    const TITLE: &'static str;
    /// The schema's description.
    const DESCRIPTION: &'static str;
    /// The keywords, in the order the schema and unknown-value errors list them.
    const KEYWORDS: &'static [&'static str];
    /// What a value of the wrong type is reported not to be.
    const EXPECTING: &'static str;
    /// The error for an empty list.
    const EMPTY_LIST: &'static str;
    /// The value of a keyword, or `None` if `keyword` is none of [`Self::KEYWORDS`].
    fn from_keyword(keyword: &str) -> Option<Self>;
    /// The value of a non-empty list.
    fn from_list(items: Vec<Self::Item>) -> Self;
    /// How the value is written.
    fn written(&self) -> Written<'_, Self::Item>;

    /// One item written as a string that is no keyword.
    fn one_from_str<E: de::Error>(v: &str) -> Result<Self::Item, E> {
        if Self::Item::ALONE.strings {
            Self::Item::deserialize(StrDeserializer::<E>::new(v))
        } else {
            Err(E::unknown_variant(v, Self::KEYWORDS))
        }
    }

    /// One item written as an integer.
    fn one_from_i64<E: de::Error>(v: i64) -> Result<Self::Item, E> {
        if Self::Item::ALONE.integers {
            Self::Item::deserialize(I64Deserializer::<E>::new(v))
        } else {
            Err(E::invalid_type(Unexpected::Signed(v), &Self::EXPECTING))
        }
    }

    /// One item written as a non-negative integer (by deserializers other than the spec's).
    fn one_from_u64<E: de::Error>(v: u64) -> Result<Self::Item, E> {
        if Self::Item::ALONE.integers {
            Self::Item::deserialize(U64Deserializer::<E>::new(v))
        } else {
            Err(E::invalid_type(Unexpected::Unsigned(v), &Self::EXPECTING))
        }
    }

    /// One item written as a table.
    fn one_from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self::Item, A::Error> {
        if Self::Item::ALONE.tables {
            Self::Item::deserialize(MapAccessDeserializer::new(map))
        } else {
            Err(de::Error::invalid_type(Unexpected::Map, &Self::EXPECTING))
        }
    }
}

/// `Serialize`: the keyword as a string, or the list.
pub fn serialize<T: KeywordOrList, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    match value.written() {
        Written::Keyword(keyword) => s.serialize_str(keyword),
        Written::List(items) => items.serialize(s),
    }
}

/// `Deserialize`: a keyword, one item or a non-empty list.
pub fn deserialize<'de, T: KeywordOrList, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(KeywordOrListVisitor(PhantomData))
}

struct KeywordOrListVisitor<T>(PhantomData<T>);

impl<'de, T: KeywordOrList> Visitor<'de> for KeywordOrListVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match T::from_keyword(v) {
            Some(value) => Ok(value),
            None => T::one_from_str(v).map(|item| T::from_list(vec![item])),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::one_from_i64(v).map(|item| T::from_list(vec![item]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::one_from_u64(v).map(|item| T::from_list(vec![item]))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::one_from_map(map).map(|item| T::from_list(vec![item]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<T::Item>()? {
            items.push(item);
        }
        if items.is_empty() {
            return Err(de::Error::custom(T::EMPTY_LIST));
        }
        Ok(T::from_list(items))
    }
}

/// `JsonSchema`: `anyOf` the keywords, one item and a non-empty array of items.
pub fn json_schema<T: KeywordOrList>(generator: &mut SchemaGenerator) -> Schema {
    let keywords = match T::KEYWORDS {
        [keyword] => json_schema!({ "const": keyword }),
        keywords => json_schema!({ "enum": keywords }),
    };
    let one = T::Item::schema(generator);
    json_schema!({
        "title": T::TITLE,
        "description": T::DESCRIPTION,
        "anyOf": [
            keywords,
            one,
            { "type": "array", "items": one, "minItems": 1 }
        ]
    })
}

/// Implements [`KeywordOrList`], `Serialize`, `Deserialize` and `JsonSchema` for an enum of
/// keyword variants and one list variant.
///
/// `HeadSweep: "each" => Each, "all" => All, [u32] => List;` names each keyword's spelling and
/// variant and the list's item and variant; the items after it are the rest of the
/// [`KeywordOrList`] impl: the messages, and any `one_from_*` of the type's own.
#[macro_export]
macro_rules! keyword_or_list {
    (
        $name:ident: $($spelling:literal => $keyword:ident,)+ [$item:ty] => $list:ident;

        $($rest:tt)*
    ) => {
        impl $crate::keyword_or_list::KeywordOrList for $name {
            type Item = $item;
            const KEYWORDS: &'static [&'static str] = &[$($spelling),+];

            fn from_keyword(keyword: &str) -> Option<Self> {
                match keyword {
                    $($spelling => Some($name::$keyword),)+
                    _ => None,
                }
            }

            fn from_list(items: Vec<$item>) -> Self {
                $name::$list(items)
            }

            fn written(&self) -> $crate::keyword_or_list::Written<'_, $item> {
                match self {
                    $($name::$keyword => $crate::keyword_or_list::Written::Keyword($spelling),)+
                    $name::$list(items) => $crate::keyword_or_list::Written::List(items),
                }
            }

            $($rest)*
        }

        impl $crate::keyword_or_list::serde::Serialize for $name {
            fn serialize<S: $crate::keyword_or_list::serde::Serializer>(
                &self,
                s: S,
            ) -> Result<S::Ok, S::Error> {
                $crate::keyword_or_list::serialize(self, s)
            }
        }

        impl<'de> $crate::keyword_or_list::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::keyword_or_list::serde::Deserializer<'de>>(
                d: D,
            ) -> Result<Self, D::Error> {
                $crate::keyword_or_list::deserialize(d)
            }
        }

        impl $crate::keyword_or_list::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                <$name as $crate::keyword_or_list::KeywordOrList>::SCHEMA_NAME.into()
            }

            fn json_schema(
                generator: &mut $crate::keyword_or_list::schemars::SchemaGenerator,
            ) -> $crate::keyword_or_list::schemars::Schema {
                $crate::keyword_or_list::json_schema::<$name>(generator)
            }
        }
    };
}
