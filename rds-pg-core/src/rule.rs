//! The macro behind the rule enums of `fleet check` ([`crate::inventory::Rule`]) and
//! `rds-pg audit` ([`crate::audit::Rule`]): each rule a variant with a stable id and a severity.

/// Declares `pub enum Rule` with `ALL`, `id`, `severity` and `from_id`, after a header of docs:
/// the enum's, `ALL`'s, `id`'s and `severity`'s (in that order), then the rules as
/// `/// docs  Variant = "id", Severity;`. A `Severity` type with the named variants must be in
/// scope.
macro_rules! rule_enum {
    (
        enum = $enum_doc:literal, all = $all_doc:literal, id = $id_doc:literal,
        severity = $severity_doc:literal;
        $( $(#[$doc:meta])* $variant:ident = $id:literal, $severity:ident; )*
    ) => {
        #[doc = $enum_doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Rule {
            $( $(#[$doc])* $variant, )*
        }

        impl Rule {
            #[doc = $all_doc]
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            #[doc = $id_doc]
            pub fn id(&self) -> &'static str {
                match self { $(Rule::$variant => $id,)* }
            }

            #[doc = $severity_doc]
            pub fn severity(&self) -> Severity {
                match self { $(Rule::$variant => Severity::$severity,)* }
            }

            /// The rule with id `id`.
            pub fn from_id(id: &str) -> Option<Rule> {
                match id { $($id => Some(Rule::$variant),)* _ => None }
            }
        }
    };
}

pub(crate) use rule_enum;
