//! Setters and getters for the private fields of a struct users build (`ListenerConfig`,
//! `Backoff`): `field(self, value) -> Self` to build from `Default` in a chain, and
//! `get_field(&self)` to read, the way tokio-postgres' `Config` and sqlx's options name theirs. A
//! field added later is then one more pair of methods, never a breaking change.

/// For each `/// doc  field, get_field: T;` a setter taking `T` (with the field's doc) and a
/// getter returning a copy; `field, get_field: T => &V;` makes the setter take `impl Into<T>` and
/// the getter return `&V` (e.g. `String => &str`).
macro_rules! accessors {
    ($ty:ident { $( $(#[doc = $doc:literal])* $field:ident, $get:ident : $t:ty $(=> &$view:ty)? ;)+ }) => {
        impl $ty {
            $(
                $crate::accessors::accessors!(@set [$(doc = $doc)*] $field, $t $(, $view)?);
                $crate::accessors::accessors!(@get $field, $get, $t $(, $view)?);
            )+
        }
    };
    (@set [$($attr:meta)*] $field:ident, $t:ty) => {
        $(#[$attr])*
        pub fn $field(mut self, value: $t) -> Self {
            self.$field = value;
            self
        }
    };
    (@set [$($attr:meta)*] $field:ident, $t:ty, $view:ty) => {
        $(#[$attr])*
        pub fn $field(mut self, value: impl Into<$t>) -> Self {
            self.$field = value.into();
            self
        }
    };
    (@get $field:ident, $get:ident, $t:ty) => {
        #[doc = concat!("The `", stringify!($field), "` setting (see [`Self::", stringify!($field), "`]).")]
        pub fn $get(&self) -> $t {
            self.$field
        }
    };
    (@get $field:ident, $get:ident, $t:ty, $view:ty) => {
        #[doc = concat!("The `", stringify!($field), "` setting (see [`Self::", stringify!($field), "`]).")]
        pub fn $get(&self) -> &$view {
            &self.$field
        }
    };
}
pub(crate) use accessors;
