//! Prices: amounts are integer minor units of one currency (`hive_store::billing::Money`, no
//! floats anywhere); a price is minor units per 1,000 tokens, per hour of run time, or per
//! step, and a cost is rounded up to the next minor unit (a use is never free by rounding).

use hive_store::billing::PriceRow;
use serde::Serialize;

/// The price of a model's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPrice {
    pub prompt_minor_per_1k: i64,
    pub completion_minor_per_1k: i64,
}

impl TokenPrice {
    pub const fn flat(minor_per_1k: i64) -> Self {
        Self {
            prompt_minor_per_1k: minor_per_1k,
            completion_minor_per_1k: minor_per_1k,
        }
    }

    pub const fn is_free(self) -> bool {
        self.prompt_minor_per_1k == 0 && self.completion_minor_per_1k == 0
    }

    /// The cost of these tokens, rounded up; saturates at `i64::MAX` (never wraps).
    pub fn cost(self, prompt_tokens: u64, completion_tokens: u64) -> i64 {
        let thousandths = i128::from(prompt_tokens) * i128::from(self.prompt_minor_per_1k)
            + i128::from(completion_tokens) * i128::from(self.completion_minor_per_1k);
        ceil_div(thousandths, 1000)
    }
}

/// `numerator / denominator` rounded up, as `i64` (saturating).
pub fn ceil_div(numerator: i128, denominator: i128) -> i64 {
    if denominator <= 0 || numerator <= 0 {
        return 0;
    }
    let quotient = (numerator + denominator - 1) / denominator;
    i64::try_from(quotient).unwrap_or(i64::MAX)
}

/// The price table: the default (`BILLING_USAGE_MINOR_PER_1K_TOKENS`) and per-model overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    pub default: TokenPrice,
    pub models: Vec<PriceRow>,
}

impl PriceTable {
    /// The price of `model`'s tokens: its own when it has one, else the default.
    pub fn for_model(&self, model: &str) -> TokenPrice {
        self.models
            .iter()
            .find(|row| row.model == model)
            .map_or(self.default, |row| TokenPrice {
                prompt_minor_per_1k: row.prompt_minor_per_1k,
                completion_minor_per_1k: row.completion_minor_per_1k,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn costs_round_up_to_the_next_minor_unit() {
        let price = TokenPrice {
            prompt_minor_per_1k: 3,
            completion_minor_per_1k: 12,
        };
        assert_eq!(price.cost(0, 0), 0);
        // 1 prompt token costs 0.003: one minor unit.
        assert_eq!(price.cost(1, 0), 1);
        assert_eq!(price.cost(1000, 0), 3);
        assert_eq!(price.cost(1000, 1000), 15);
        assert_eq!(price.cost(1001, 0), 4);
        assert_eq!(TokenPrice::flat(0).cost(u64::MAX, u64::MAX), 0);
        assert_eq!(
            TokenPrice::flat(1_000_000_000).cost(u64::MAX, u64::MAX),
            i64::MAX
        );
    }

    #[test]
    fn a_model_price_overrides_the_default() {
        let table = PriceTable {
            default: TokenPrice::flat(5),
            models: vec![PriceRow {
                model: "local".into(),
                prompt_minor_per_1k: 0,
                completion_minor_per_1k: 0,
                updated_at: time::OffsetDateTime::UNIX_EPOCH,
            }],
        };
        assert!(table.for_model("local").is_free());
        assert_eq!(table.for_model("other"), TokenPrice::flat(5));
    }

    proptest! {
        #[test]
        fn a_cost_is_never_below_its_exact_value(
            prompt in 0u64..10_000_000, completion in 0u64..10_000_000,
            pp in 0i64..100_000, cp in 0i64..100_000,
        ) {
            let price = TokenPrice { prompt_minor_per_1k: pp, completion_minor_per_1k: cp };
            let exact = i128::from(prompt) * i128::from(pp) + i128::from(completion) * i128::from(cp);
            let cost = i128::from(price.cost(prompt, completion));
            prop_assert!(cost * 1000 >= exact);
            prop_assert!(cost * 1000 < exact + 1000);
        }
    }
}
