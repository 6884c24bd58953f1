//! The password policy (SECURITY-RULES.md, NIST SP 800-63B): 12 to 128 characters of any
//! kind, no composition rules, no truncation or normalisation of what is stored, and common or
//! guessable passwords refused at signup, reset and change.

use std::collections::HashSet;
use std::sync::LazyLock;

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

/// Stems of common passwords, shipped with the binary.
static COMMON_STEMS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Rows and orders people walk along when they invent a password.
const RUNS: [&str; 6] = [
    // Digits wrap around: "123456789012".
    "12345678901234567890123456789012345678901234567890",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1q2w3e4r5t6y7u8i9o0p",
];

/// The US keyboard, unshifted, row by row; each row sits half a key right of the one above.
const KEYBOARD: [&str; 4] = ["1234567890-=", "qwertyuiop[]", "asdfghjkl;'", "zxcvbnm,./"];

/// A repeated unit this short is guessable however often it repeats ("gfhjkmgfhjkm").
const SHORT_UNIT: usize = 8;

/// Why a password is refused; the message is safe to show (it never quotes the password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRejection {
    TooShort,
    TooLong,
    Common,
    ContainsAccountName,
}

impl PasswordRejection {
    pub fn message(self) -> &'static str {
        match self {
            Self::TooShort => "the password must be at least 12 characters long",
            Self::TooLong => "the password must be at most 128 characters long",
            Self::Common => {
                "the password is too common or guessable; a few unrelated words make a strong one"
            }
            Self::ContainsAccountName => "the password must not contain the account's email",
        }
    }
}

/// Checks `password` for the account `email` (context-specific words are refused too).
pub fn check(password: &str, email: &str) -> Result<(), PasswordRejection> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRejection::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordRejection::TooLong);
    }
    let lower = password.to_lowercase();
    let email = email.to_lowercase();
    let local_part = email.split('@').next().unwrap_or_default();
    if !email.is_empty() && lower.contains(&email) {
        return Err(PasswordRejection::ContainsAccountName);
    }
    if is_guessable(&lower) {
        return Err(PasswordRejection::Common);
    }
    let core = stem(&lower);
    if is_guessable(&core) {
        return Err(PasswordRejection::Common);
    }
    let local_stem = stem(local_part);
    if local_stem.chars().count() >= 4 && core == local_stem {
        return Err(PasswordRejection::ContainsAccountName);
    }
    Ok(())
}

/// The lower-cased password without leading and trailing digits, symbols and spaces, with
/// common character swaps undone.
fn stem(lower: &str) -> String {
    let trimmed = lower.trim_matches(|c: char| !c.is_alphabetic());
    // A core that keeps its swaps can still start or end in one ("@dmin1" → "@dmin").
    let trimmed = if trimmed.is_empty() { lower } else { trimmed };
    trimmed
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' | '!' => 'i',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            '7' => 't',
            other => other,
        })
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_' && *c != '.')
        .collect()
}

fn is_guessable(candidate: &str) -> bool {
    if candidate.is_empty() {
        return true;
    }
    if COMMON_STEMS.contains(candidate) || is_run(candidate) {
        return true;
    }
    if is_walk_chain(candidate) || is_interleaved(candidate) {
        return true;
    }
    // A short unit, or a common stem, repeated: "abcabcabcabc", "passwordpassword".
    repeated_unit(candidate).is_some_and(|unit| {
        unit.chars().count() < SHORT_UNIT || COMMON_STEMS.contains(unit) || is_run(unit)
    })
}

fn key_position(key: char) -> Option<(i32, i32)> {
    KEYBOARD.iter().zip(0..).find_map(|(row, r)| {
        row.chars()
            .zip(0..)
            .find(|(k, _)| *k == key)
            .map(|(_, c)| (r, c))
    })
}

/// The same key, or keys that touch on the keyboard (sideways or diagonally between rows).
fn touching(a: char, b: char) -> bool {
    let (Some((ra, ca)), Some((rb, cb))) = (key_position(a), key_position(b)) else {
        return false;
    };
    matches!(
        (rb - ra, cb - ca),
        (0, -1..=1) | (-1, 0) | (-1, 1) | (1, 0) | (1, -1)
    )
}

fn is_walk(keys: &[char]) -> bool {
    keys.windows(2).all(|pair| touching(pair[0], pair[1]))
}

/// Whether the whole candidate is a chain of keyboard walks of 3 or more keys each:
/// "1qaz2wsx3edc", "qwerasdfzxcv", "123456789qwe".
fn is_walk_chain(candidate: &str) -> bool {
    let keys: Vec<char> = candidate.chars().collect();
    // ends[i]: keys[..i] splits into walks.
    let mut ends = vec![false; keys.len() + 1];
    ends[0] = true;
    for end in 3..=keys.len() {
        ends[end] = (0..=end - 3).any(|start| ends[start] && is_walk(&keys[start..end]));
    }
    keys.len() >= 3 && ends[keys.len()]
}

/// Two walks or runs taken in turns: "q1w2e3r4t5y6".
fn is_interleaved(candidate: &str) -> bool {
    let keys: Vec<char> = candidate.chars().collect();
    if keys.len() < 8 {
        return false;
    }
    let half = |offset: usize| -> String { keys.iter().skip(offset).step_by(2).collect() };
    [half(0), half(1)].iter().all(|part| {
        let part_keys: Vec<char> = part.chars().collect();
        is_run(part) || is_walk(&part_keys)
    })
}

/// Whether `candidate` (4+ characters) runs along a keyboard row or an alphabet, either way.
fn is_run(candidate: &str) -> bool {
    if candidate.chars().count() < 4 {
        return false;
    }
    RUNS.iter().any(|run| {
        run.contains(candidate) || run.chars().rev().collect::<String>().contains(candidate)
    })
}

/// The shortest unit whose repetition is `candidate`, if it repeats at least twice.
fn repeated_unit(candidate: &str) -> Option<&str> {
    let len = candidate.len();
    (1..=len / 2)
        .filter(|unit| len.is_multiple_of(*unit) && candidate.is_char_boundary(*unit))
        .map(|unit| &candidate[..unit])
        .find(|unit| unit.repeat(len / unit.len()) == candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "alice.smith@example.com";

    #[test]
    fn length_is_counted_in_characters_without_truncation() {
        assert_eq!(check("short pass", EMAIL), Err(PasswordRejection::TooShort));
        // 12 characters, 24 bytes: long enough.
        assert_eq!(check("жёлтый фрукт", EMAIL), Ok(()));
        let long = "correct horse ".repeat(10);
        assert_eq!(check(&long[..128], EMAIL), Ok(()));
        assert_eq!(
            check(&"x7Fq9-".repeat(22), EMAIL),
            Err(PasswordRejection::TooLong)
        );
    }

    #[test]
    fn common_and_guessable_passwords_are_refused() {
        for weak in [
            "password1234",
            "Password123!",
            "P@ssw0rd2024!",
            "iloveyou2024",
            "123456789012",
            "qwertyuiop12",
            "1q2w3e4r5t6y",
            "aaaaaaaaaaaa",
            "abcabcabcabc",
            "passwordpassword",
            "  letmein!!  ",
            "zyxwvutsrqpo",
            "administrator1",
            "000000000000",
            "1qaz2wsx3edc",
            "qwerasdfzxcv",
            "123456789qwe",
            "zxcasdqwe123",
            "q1w2e3r4t5y6",
            "123456654321",
            "gfhjkmgfhjkm",
        ] {
            assert_eq!(check(weak, EMAIL), Err(PasswordRejection::Common), "{weak}");
        }
    }

    #[test]
    fn strong_passwords_pass() {
        for strong in [
            "correct horse battery staple",
            "ThreeUnrelatedWords!",
            "v9$Kq2!mZp7#",
            "mountain-lantern-fig",
            "qwerty hides in a sentence here",
        ] {
            assert_eq!(check(strong, EMAIL), Ok(()), "{strong}");
        }
    }

    #[test]
    fn the_account_name_is_refused() {
        assert_eq!(
            check("my alice.smith@example.com pw", EMAIL),
            Err(PasswordRejection::ContainsAccountName)
        );
        assert_eq!(
            check("alice.smith2024!", EMAIL),
            Err(PasswordRejection::ContainsAccountName)
        );
    }

    #[test]
    fn the_shipped_list_is_loaded() {
        assert!(COMMON_STEMS.len() > 200);
        assert!(COMMON_STEMS.contains("password"));
        assert!(!COMMON_STEMS.iter().any(|s| s.starts_with('#')));
    }
}
