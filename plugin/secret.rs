//! Values that must never reach a log: bearer tokens, PINs, TURN passwords and shared secrets.
use std::fmt;

/// A secret string. `Debug` shows only whether it is set; the value is read with [`Secret::expose`], at the one
/// place that sends it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(
            if self.0.is_empty() {
                "<none>"
            } else {
                "<redacted>"
            },
            f,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_whether_it_is_set_never_the_value() {
        assert_eq!(format!("{:?}", Secret::from("hunter2")), "\"<redacted>\"");
        assert_eq!(format!("{:?}", Secret::default()), "\"<none>\"");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
        }
        let shown = format!(
            "{:?}",
            Holder {
                token: "abc123".into()
            }
        );
        assert!(!shown.contains("abc123"), "{shown}");
        assert_eq!(Secret::from("abc123").expose(), "abc123");
    }
}
