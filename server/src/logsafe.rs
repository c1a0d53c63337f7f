//! Untrusted text in human-readable logs: a device id from a URL, a client's JSON error, a
//! token label. Written raw, `%0a` or an ANSI escape in it forges log lines or repaints the
//! terminal, so every such value is logged through [`untrusted`], which escapes control
//! characters and bidirectional overrides (`\n` → `\n`, ESC → `\u{1b}`). JSON logs are
//! escaped by the encoder anyway; this keeps the human format as safe.

use std::fmt::{self, Display, Write};

/// `value`, displayed with every control or direction-changing character escaped.
pub fn untrusted<T: Display>(value: T) -> Untrusted<T> {
    Untrusted(value)
}

/// See [`untrusted`].
#[derive(Clone, Copy, Debug)]
pub struct Untrusted<T>(T);

impl<T: Display> Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaper(f), "{}", self.0)
    }
}

/// Escapes what passes through it on the way to the formatter.
struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if needs_escape(c) {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Control characters (C0, DEL, C1), and the Unicode marks that reorder the text shown after
/// them (the "Trojan source" characters) or separate lines.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_kept() {
        let forged = "dev-1\n2026-01-01T00:00:00Z  INFO forged\r\x1b[31mred\u{202e}txt\u{7f}\u{85}";
        let shown = untrusted(forged).to_string();
        assert_eq!(
            shown,
            "dev-1\\n2026-01-01T00:00:00Z  INFO forged\\r\\u{1b}[31mred\\u{202e}txt\\u{7f}\\u{85}"
        );
        assert!(!shown.chars().any(needs_escape), "{shown}");
        assert_eq!(
            untrusted("plain-id_42 ünï \"quoted\"").to_string(),
            "plain-id_42 ünï \"quoted\""
        );
    }
}
