//! Money as the billing pages show it and read it: integer minor units of a currency, written
//! with the currency's decimals (ISO 4217's exponent: none for the zero-decimal currencies,
//! three for the dinars and rials that have them, else two), and amounts typed in major units
//! read back into minor units. Integers only: no amount is ever a float.

pub use hive_proto::billing::currency_decimals as decimals;
use hive_proto::billing::decimal_of;

/// The currency's code as the pages show it (`USD`).
pub fn code(currency: &str) -> String {
    currency.to_ascii_uppercase()
}

/// `minor` as a decimal number of major units, without the code (`12.34`, `-0.05`, `1234`).
pub fn major(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    decimal_of(sign, minor.unsigned_abs(), currency)
}

/// `12.34 USD`.
pub fn money(minor: i64, currency: &str) -> String {
    format!("{} {}", major(minor, currency), code(currency))
}

/// `+12.34 USD` / `-0.05 USD`: a ledger's signed amount (zero unsigned).
pub fn signed(minor: i64, currency: &str) -> String {
    let sign = match minor.signum() {
        1 => "+",
        -1 => "-",
        _ => "",
    };
    format!(
        "{} {}",
        decimal_of(sign, minor.unsigned_abs(), currency),
        code(currency)
    )
}

/// An amount typed in major units (`12`, `12.5`, `12.50`) as minor units, or why it is not
/// one: digits, and at most the currency's decimals after one point. Never negative.
pub fn parse_major(text: &str, currency: &str) -> Result<i64, String> {
    let text = text.trim();
    let places = decimals(currency);
    let rule = if places == 0 {
        format!("{} has no decimals: type a whole number", code(currency))
    } else {
        format!(
            "type digits, with at most {places} after a point (for example 12.{})",
            "5".repeat(places as usize)
        )
    };
    if text.is_empty() {
        return Err("Type an amount.".to_owned());
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) if places > 0 => (whole, fraction),
        Some(_) => return Err(format!("{text:?} is not an amount: {rule}.")),
        None => (text, ""),
    };
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || fraction.len() > places as usize
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(format!("{text:?} is not an amount: {rule}."));
    }
    let too_large = || format!("{text} {} is too large.", code(currency));
    let scale = 10i64.pow(places);
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    // "5" after the point of a 2-decimal currency is 50 minor units.
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        let padded = format!("{fraction:0<width$}", width = places as usize);
        padded.parse().map_err(|_| too_large())?
    };
    whole
        .checked_mul(scale)
        .and_then(|minor| minor.checked_add(fraction))
        .ok_or_else(too_large)
}

/// A count with thousands separated (`1,234,567`), as tokens are shown.
pub fn count(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (n, digit) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_with_the_currencys_decimals() {
        assert_eq!(money(1234, "usd"), "12.34 USD");
        assert_eq!(money(5, "eur"), "0.05 EUR");
        assert_eq!(money(-5, "usd"), "-0.05 USD");
        assert_eq!(money(0, "usd"), "0.00 USD");
        assert_eq!(money(1234, "jpy"), "1234 JPY");
        assert_eq!(money(-70, "krw"), "-70 KRW");
        assert_eq!(money(1234, "kwd"), "1.234 KWD");
        assert_eq!(money(5, "bhd"), "0.005 BHD");
        assert_eq!(signed(500, "usd"), "+5.00 USD");
        assert_eq!(signed(-1, "usd"), "-0.01 USD");
        assert_eq!(signed(0, "usd"), "0.00 USD");
        // Beyond what a float holds exactly.
        assert_eq!(money(i64::MAX, "usd"), "92233720368547758.07 USD");
        assert_eq!(money(i64::MIN, "usd"), "-92233720368547758.08 USD");
        assert_eq!(money(9_007_199_254_740_993, "usd"), "90071992547409.93 USD");
        for code in hive_proto::billing::ZERO_DECIMAL_CURRENCIES {
            assert_eq!(decimals(code), 0, "{code}");
        }
        for code in hive_proto::billing::THREE_DECIMAL_CURRENCIES {
            assert_eq!(decimals(code), 3, "{code}");
        }
    }

    #[test]
    fn typed_amounts_are_read_into_minor_units_without_floats() {
        assert_eq!(parse_major("12", "usd"), Ok(1200));
        assert_eq!(parse_major(" 12.5 ", "usd"), Ok(1250));
        assert_eq!(parse_major("12.50", "usd"), Ok(1250));
        assert_eq!(parse_major("0.01", "usd"), Ok(1));
        assert_eq!(parse_major("007.10", "usd"), Ok(710));
        assert_eq!(parse_major("1.234", "kwd"), Ok(1234));
        assert_eq!(parse_major("1.2", "kwd"), Ok(1200));
        assert_eq!(parse_major("500", "jpy"), Ok(500));
        // 0.29 is not exactly a binary fraction: a float would make it 28.
        assert_eq!(parse_major("0.29", "usd"), Ok(29));
        assert_eq!(parse_major("92233720368547758.07", "usd"), Ok(i64::MAX));
        for wrong in [
            "",
            " ",
            "-1",
            "+1",
            "1.234",
            "1,50",
            "1.",
            ".5",
            "1e3",
            "1.2.3",
            "abc",
            "١٢",
            "92233720368547758.08",
            "99999999999999999999",
        ] {
            assert!(parse_major(wrong, "usd").is_err(), "{wrong:?}");
        }
        assert!(parse_major("5.0", "jpy").is_err());
        assert!(parse_major("1.2345", "kwd").is_err());
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-1234), "-1,234");
    }
}
