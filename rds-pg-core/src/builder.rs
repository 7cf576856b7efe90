//! The chained setters of the option types (`ConnectOptions::host`, `RestoreOptions::jobs`, …),
//! written once as a table instead of one hand-written method each.

/// Defines chained setters `pub fn NAME(mut self, value) -> Self` that store `value` in the field
/// of the same name, one line per setter after its documentation:
///
/// - `NAME = TYPE`: takes a `TYPE` and stores it;
/// - `NAME = into TYPE`: takes `impl Into<TYPE>` and stores it;
/// - `NAME = some TYPE`: takes a `TYPE` and stores `Some(value)`;
/// - `NAME = some_into TYPE`: takes `impl Into<TYPE>` and stores `Some(value.into())`.
///
/// ```ignore
/// impl DumpOptions {
///     setters! {
///         /// Sets the archive format.
///         format = DumpFormat;
///         /// Looks for `pg_dump` in `dir` only.
///         tools_dir = some_into PathBuf;
///     }
/// }
/// ```
macro_rules! setters {
    () => {};
    ($(#[$doc:meta])* $name:ident = into $ty:ty; $($rest:tt)*) => {
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$name = value.into();
            self
        }
        $crate::builder::setters! { $($rest)* }
    };
    ($(#[$doc:meta])* $name:ident = some_into $ty:ty; $($rest:tt)*) => {
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$name = Some(value.into());
            self
        }
        $crate::builder::setters! { $($rest)* }
    };
    ($(#[$doc:meta])* $name:ident = some $ty:ty; $($rest:tt)*) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = Some(value);
            self
        }
        $crate::builder::setters! { $($rest)* }
    };
    ($(#[$doc:meta])* $name:ident = $ty:ty; $($rest:tt)*) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
        $crate::builder::setters! { $($rest)* }
    };
}

pub(crate) use setters;
