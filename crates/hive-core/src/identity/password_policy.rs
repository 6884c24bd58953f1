//! The password policy (SECURITY-RULES.md, NIST SP 800-63B): 12 to 128 characters of any
//! kind, no composition rules, no truncation or normalisation of what is stored, and guessable
//! passwords refused at signup, reset and change. What is guessable is zxcvbn's estimate
//! (Dropbox's algorithm with its frequency lists of leaked passwords, names and words), told
//! the account's own words too.

use zxcvbn::Score;

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

/// zxcvbn's scores run 0 to 4; 3 is "safely unguessable" (about 10^8 guesses and more), the
/// least a password that an online attack may meet must have.
const MIN_SCORE: Score = Score::Three;

/// Why a password is refused; the message is safe to show (it never quotes the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordRejection {
    TooShort,
    TooLong,
    /// Too easy to guess: common, a pattern, or made of the account's own words. One refusal
    /// for all of them; `advice` is zxcvbn's plain-text warning and suggestions, if any.
    Guessable {
        advice: String,
    },
}

const GUESSABLE: &str =
    "the password is too easy to guess; a few unrelated, uncommon words make a strong one";

impl PasswordRejection {
    pub fn message(&self) -> String {
        match self {
            Self::TooShort => "the password must be at least 12 characters long".to_owned(),
            Self::TooLong => "the password must be at most 128 characters long".to_owned(),
            Self::Guessable { advice } if advice.is_empty() => GUESSABLE.to_owned(),
            Self::Guessable { advice } => format!("{GUESSABLE} ({advice})"),
        }
    }
}

/// The words of an account and its instance that a password must not lean on: zxcvbn counts
/// them as the cheapest dictionary.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountWords<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    /// The instance's host name (from `AUTH_URL`).
    pub instance: &'a str,
}

impl AccountWords<'_> {
    /// Each value, the email's local part, and each of their parts (split at anything but a
    /// letter or digit) apart and run together, lower case: "alice.smith@example.com" gives
    /// "alice.smith", "alice", "smith", "alicesmith", "example" too.
    fn inputs(&self) -> Vec<String> {
        let local_part = self.email.split('@').next().unwrap_or_default();
        let mut words = Vec::new();
        for value in [
            self.email,
            local_part,
            self.display_name,
            self.instance,
            "hive",
        ] {
            let value = value.trim().to_lowercase();
            let parts: Vec<&str> = value
                .split(|c: char| !c.is_alphanumeric())
                .filter(|part| !part.is_empty())
                .collect();
            words.extend(
                parts
                    .iter()
                    .filter(|part| part.chars().count() >= 3)
                    .map(|part| (*part).to_owned()),
            );
            words.push(parts.concat());
            words.push(value);
        }
        words.retain(|word| !word.is_empty());
        words.sort();
        words.dedup();
        words
    }
}

/// Checks `password` for the account `words`.
pub fn check(password: &str, words: &AccountWords<'_>) -> Result<(), PasswordRejection> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRejection::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordRejection::TooLong);
    }
    // The email anywhere in the password, whatever surrounds it: the first word an attacker
    // who knows the account tries.
    let email = words.email.trim().to_lowercase();
    if !email.is_empty() && password.to_lowercase().contains(&email) {
        return Err(PasswordRejection::Guessable {
            advice: String::new(),
        });
    }
    let inputs = words.inputs();
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if estimate.score() >= MIN_SCORE {
        return Ok(());
    }
    let advice = estimate
        .feedback()
        .map(|feedback| {
            let warning = feedback.warning().map(|warning| warning.to_string());
            let suggestions = feedback.suggestions().iter().map(ToString::to_string);
            warning
                .into_iter()
                .chain(suggestions)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Err(PasswordRejection::Guessable { advice })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: AccountWords<'static> = AccountWords {
        email: "alice.smith@example.com",
        display_name: "Alice Smith",
        instance: "agents.example.org",
    };

    fn guessable(password: &str, account: &AccountWords<'_>) -> bool {
        matches!(
            check(password, account),
            Err(PasswordRejection::Guessable { .. })
        )
    }

    #[test]
    fn length_is_counted_in_characters_without_truncation() {
        assert_eq!(
            check("sh0rt pass", &ALICE),
            Err(PasswordRejection::TooShort)
        );
        // 12 characters, 23 bytes: long enough.
        assert_eq!(check("жёлтый фрукт", &ALICE), Ok(()));
        let longest = "cobalt mauve walnut lantern oyster tundra saffron lantern quince lantern \
                       oyster meadow meadow oyster ladder oyster meadow lanter";
        assert_eq!(longest.chars().count(), MAX_CHARS);
        assert_eq!(check(longest, &ALICE), Ok(()));
        assert_eq!(
            check(&format!("{longest}n"), &ALICE),
            Err(PasswordRejection::TooLong)
        );
    }

    /// Passwords of 12 characters and more from public top-10,000 lists of leaked passwords,
    /// and the patterns people build them from.
    #[test]
    fn common_leaked_passwords_of_twelve_characters_and_more_are_refused() {
        for weak in [
            // In the lists as they are; the old hand-written rules let these through.
            "motherfucker",
            "leavemealone",
            "sonyericsson",
            "unbelievable",
            "scandinavian",
            "Mailcreated5240",
            "ghjcnjgfhjkm",
            "manchesterunited",
            // Patterns, with the usual swaps and suffixes.
            "password1234",
            "Password123!",
            "P@ssw0rd2024!",
            "iloveyou2024",
            "123456789012",
            "qwertyuiop12",
            "1q2w3e4r5t6y",
            "1qaz2wsx3edc",
            "qazwsxedcrfv",
            "aaaaaaaaaaaa",
            "abcabcabcabc",
            "passwordpassword",
            "gfhjkmgfhjkm",
            "administrator1",
        ] {
            assert!(guessable(weak, &ALICE), "{weak} was accepted");
        }
    }

    #[test]
    fn strong_passwords_pass() {
        for strong in [
            "v9$Kq2!mZp7#wL4e",
            "Tq8mW3zRk1Ls9vXa",
            "mauve-otter-ladder-quince",
            "gravel lantern oyster tundra",
        ] {
            assert_eq!(check(strong, &ALICE), Ok(()), "{strong}");
        }
    }

    #[test]
    fn the_account_and_instance_words_are_refused() {
        for leaning in [
            "my alice.smith@example.com pw",
            "alice.smith2024!",
            "AliceSmith1990!",
            "alicesmith!2025",
            "agents.example.org1",
        ] {
            assert!(guessable(leaning, &ALICE), "{leaning} was accepted");
        }
        // A rare name is a strong password for anyone but its owner.
        let quillon = AccountWords {
            email: "quillon.vartabedian@zephyrine.io",
            display_name: "Quillon Vartabedian",
            instance: "hive.zephyrine.io",
        };
        for own in ["Vartabedian2026!", "quillonvartabedian"] {
            assert!(guessable(own, &quillon), "{own} was accepted");
            assert_eq!(check(own, &ALICE), Ok(()), "{own}");
        }
    }

    /// A common password, the account's email and its name are one refusal, whose first words
    /// are the same and which never quotes the password; zxcvbn's advice follows them.
    #[test]
    fn every_guessable_refusal_opens_with_the_same_words_and_never_quotes_the_password() {
        for weak in [
            "password1234",
            "my alice.smith@example.com pw",
            "AliceSmith1990!",
        ] {
            let Err(rejection) = check(weak, &ALICE) else {
                panic!("{weak} was accepted");
            };
            let message = rejection.message();
            assert!(message.starts_with(GUESSABLE), "{message}");
            assert!(
                !message.to_lowercase().contains(&weak.to_lowercase()),
                "{message}"
            );
        }
        let Err(rejection) = check("password1234", &ALICE) else {
            panic!("password1234 was accepted");
        };
        assert!(
            rejection
                .message()
                .contains("This is a very common password."),
            "{}",
            rejection.message()
        );
    }
}
