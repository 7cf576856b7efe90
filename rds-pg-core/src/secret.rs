//! Passwords that never show up in `Debug`, logs or SQL text: [`Password`] and [`ScramVerifier`].

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

/// The characters of a generated password: letters and digits only, so it needs no escaping in a
/// URL, a pgpass line, a shell word or an env file.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a generated password (about 238 bits of entropy).
pub const GENERATED_PASSWORD_LEN: usize = 40;

/// A password held in a [`SecretString`]: zeroized on drop, `[redacted]` in `Debug` and `Display`.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(SecretString::from(password.into()))
    }

    /// Generates a password of [`GENERATED_PASSWORD_LEN`] characters from the OS CSPRNG.
    ///
    /// # Errors
    /// Fails only when the operating system's random source fails.
    pub fn generate() -> Result<Self> {
        let mut out = String::with_capacity(GENERATED_PASSWORD_LEN);
        let mut buf = [0u8; 64];
        // Rejection sampling keeps the distribution uniform: 62 * 4 = 248 is the largest multiple
        // of the alphabet size that fits in a byte.
        let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
        while out.len() < GENERATED_PASSWORD_LEN {
            getrandom::fill(&mut buf).map_err(|e| {
                Error::io(
                    "reading the OS random source",
                    std::io::Error::other(e.to_string()),
                )
            })?;
            for &b in &buf {
                if b < limit && out.len() < GENERATED_PASSWORD_LEN {
                    out.push(ALPHABET[(b as usize) % ALPHABET.len()] as char);
                }
            }
            zeroize::Zeroize::zeroize(&mut buf);
        }
        Ok(Password::new(out))
    }

    /// The cleartext, for the one place that needs it (a login, a pgpass line written for the user).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// A SCRAM-SHA-256 verifier for this password, computed on the client with a random salt.
    ///
    /// `CREATE ROLE … PASSWORD '<verifier>'` stores it as-is, so the cleartext never reaches the
    /// server or its statement log.
    pub fn scram_verifier(&self) -> ScramVerifier {
        ScramVerifier(SecretString::from(
            postgres_protocol::password::scram_sha_256(self.expose().as_bytes()),
        ))
    }

    /// Whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl From<SecretString> for Password {
    fn from(s: SecretString) -> Self {
        Password(s)
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password::new(s)
    }
}

impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        // Not constant-time: passwords are compared only in tests and configuration merging.
        self.expose() == other.expose()
    }
}

impl Eq for Password {}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A SCRAM-SHA-256 verifier (`SCRAM-SHA-256$4096:salt$stored:server`).
///
/// Not the password, but enough for an offline guessing attack, so it is redacted in `Debug`,
/// `Display` and in the SQL a dry run shows.
#[derive(Clone)]
pub struct ScramVerifier(SecretString);

impl ScramVerifier {
    /// The verifier text, for the SQL statement that sets it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for ScramVerifier {
    fn eq(&self, other: &Self) -> bool {
        // Plans compare their changes; a verifier carries a random salt, so two are equal only
        // when they are the same verifier.
        self.expose() == other.expose()
    }
}

impl Eq for ScramVerifier {}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScramVerifier([redacted])")
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The password an operation is about to set, decided before any planning: the caller's, or one
/// generated for the operation. Its SCRAM verifier (random salt) is computed once, the first time
/// a plan needs it, and the same verifier is used however often the operation plans again (it
/// plans once more under its locks), so plans built from the same inputs are the same.
#[derive(Clone)]
pub struct NewPassword {
    password: Password,
    generated: bool,
    verifier: std::sync::Arc<std::sync::OnceLock<ScramVerifier>>,
}

impl NewPassword {
    /// The caller's password.
    pub fn given(password: Password) -> Self {
        NewPassword {
            password,
            generated: false,
            verifier: Default::default(),
        }
    }

    /// A password generated for the operation ([`Password::generate`]).
    ///
    /// # Errors
    /// Fails only when the operating system's random source fails.
    pub fn generate() -> Result<Self> {
        Ok(NewPassword {
            generated: true,
            ..NewPassword::given(Password::generate()?)
        })
    }

    /// The caller's password when there is one, else a generated one.
    ///
    /// # Errors
    /// As [`NewPassword::generate`].
    pub fn given_or_generated(password: Option<Password>) -> Result<Self> {
        match password {
            Some(p) => Ok(NewPassword::given(p)),
            None => NewPassword::generate(),
        }
    }

    /// The password.
    pub fn password(&self) -> &Password {
        &self.password
    }

    /// Whether rds-pg generated it (so the operation's report hands it back once).
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// Its SCRAM-SHA-256 verifier, computed on first use.
    pub fn verifier(&self) -> &ScramVerifier {
        self.verifier.get_or_init(|| self.password.scram_verifier())
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPassword")
            .field("password", &self.password)
            .field("generated", &self.generated)
            .finish()
    }
}

/// Characters SASLprep (RFC 4013, table B.1 of RFC 3454) maps to nothing.
const MAPPED_TO_NOTHING: &[char] = &[
    '\u{00AD}', '\u{034F}', '\u{1806}', '\u{180B}', '\u{180C}', '\u{180D}', '\u{200B}', '\u{200C}',
    '\u{200D}', '\u{2060}', '\u{FE00}', '\u{FE01}', '\u{FE02}', '\u{FE03}', '\u{FE04}', '\u{FE05}',
    '\u{FE06}', '\u{FE07}', '\u{FE08}', '\u{FE09}', '\u{FE0A}', '\u{FE0B}', '\u{FE0C}', '\u{FE0D}',
    '\u{FE0E}', '\u{FE0F}', '\u{FEFF}',
];

/// Refuses a password PostgreSQL would not store as given: empty, with NUL, or made only of
/// characters SASLprep maps to nothing (its SCRAM verifier is the empty password's, which the
/// server clears, leaving a role nobody can log in as).
///
/// # Errors
/// [`crate::Error::InvalidInput`] saying why; never the password.
pub(crate) fn check_new_password(password: &Password) -> crate::Result<()> {
    let p = password.expose();
    let refuse = |why: &str| Err(crate::Error::InvalidInput(format!("the password {why}")));
    if p.is_empty() {
        return refuse("must not be empty");
    }
    if p.contains('\0') {
        return refuse("must not contain NUL");
    }
    if p.chars().all(|c| MAPPED_TO_NOTHING.contains(&c)) {
        return refuse(
            "is empty once SASLprep removes the characters it maps to nothing (soft hyphen, \
             zero-width and variation characters, U+FEFF), and PostgreSQL refuses an empty password",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_postgresql_would_not_store_are_refused() {
        for bad in ["", "a\0b", "\u{FEFF}", "\u{00AD}\u{200B}", "\u{FE0F}"] {
            let e = check_new_password(&Password::new(bad)).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
        for good in ["x", " ", "\u{FEFF}x", "pässwörd", "\u{00A0}"] {
            check_new_password(&Password::new(good)).unwrap();
        }
    }

    #[test]
    fn generated_passwords_are_long_url_safe_and_distinct() {
        let a = Password::generate().unwrap();
        let b = Password::generate().unwrap();
        assert_eq!(a.expose().len(), GENERATED_PASSWORD_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn generated_passwords_use_the_whole_alphabet() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(Password::generate().unwrap().expose().bytes());
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn debug_and_display_redact() {
        let p = Password::new("hunter2-secret");
        assert_eq!(format!("{p:?}"), "Password([redacted])");
        assert_eq!(p.to_string(), "[redacted]");
        let v = p.scram_verifier();
        assert!(!format!("{v:?}").contains("SCRAM"));
        assert_eq!(v.to_string(), "[redacted]");
        assert!(!format!("{:?}", Some(&p)).contains("hunter2"));
    }

    #[test]
    fn a_new_password_hashes_once_and_keeps_its_verifier() {
        let p = NewPassword::given(Password::new("Given-pw"));
        let first = p.verifier().expose().to_owned();
        assert_eq!(
            p.clone().verifier().expose(),
            first,
            "clones share the verifier"
        );
        assert!(!p.is_generated());
        let g = NewPassword::given_or_generated(None).unwrap();
        assert!(g.is_generated());
        assert!(!format!("{g:?}").contains(g.password().expose()));
    }

    #[test]
    fn scram_verifier_has_the_server_format_and_no_cleartext() {
        let p = Password::new("s3cr'et\\$$ünï");
        let v = p.scram_verifier();
        assert!(
            v.expose().starts_with("SCRAM-SHA-256$4096:"),
            "{}",
            v.expose()
        );
        assert!(!v.expose().contains(p.expose()));
        // A fresh salt each time.
        assert_ne!(v.expose(), p.scram_verifier().expose());
    }
}
