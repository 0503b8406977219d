//! [`spec_struct!`]: the file format's convention for optional keys, stated once.

/// Declares a struct of the experiment file whose `Option` fields are optional keys: a key left
/// out of the file is `None`, and `None` is left out again when the struct is written back
/// (resolved files and hashes). Each field written `Option<T>` gets
/// `#[serde(default, skip_serializing_if = "Option::is_none")]`; every other field and every
/// attribute (doc comments included, so the JSON Schema is what they say) is kept as written.
macro_rules! spec_struct {
    ($(#[$attr:meta])* $vis:vis struct $name:ident { $($fields:tt)* }) => {
        $crate::spec_struct::spec_struct!(@fields [$(#[$attr])* $vis struct $name] [] $($fields)*);
    };
    // An optional key.
    (@fields $head:tt [$($done:tt)*]
        $(#[$field_attr:meta])* $field_vis:vis $field:ident : Option<$ty:ty> $(, $($rest:tt)*)?
    ) => {
        $crate::spec_struct::spec_struct!(@fields $head [
            $($done)*
            $(#[$field_attr])*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            $field_vis $field: Option<$ty>,
        ] $($($rest)*)?);
    };
    // Any other field, as written.
    (@fields $head:tt [$($done:tt)*]
        $(#[$field_attr:meta])* $field_vis:vis $field:ident : $ty:ty $(, $($rest:tt)*)?
    ) => {
        $crate::spec_struct::spec_struct!(@fields $head [
            $($done)*
            $(#[$field_attr])*
            $field_vis $field: $ty,
        ] $($($rest)*)?);
    };
    (@fields [$($head:tt)*] [$($done:tt)*]) => {
        $($head)* { $($done)* }
    };
}

pub(crate) use spec_struct;
