//! Money: integer minor units and ISO 4217 currency codes.
//!
//! Amounts are `i64` minor units (cents for EUR, yen for JPY): floating point
//! never touches money. Every sum goes through checked arithmetic, so an
//! overflow is an error and never a wrapped balance.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// The largest amount one command may move: 10^12 minor units.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// The largest overdraft limit an account may have (same bound as an amount).
pub const MAX_OVERDRAFT_LIMIT: i64 = MAX_AMOUNT;

/// A positive amount of money in minor units, at most [`MAX_AMOUNT`].
///
/// The only way to build one is [`Amount::new`], so a zero, negative or
/// absurd amount cannot reach the aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

impl Amount {
    pub fn new(minor_units: i64) -> Result<Self, DomainError> {
        if minor_units <= 0 || minor_units > MAX_AMOUNT {
            return Err(DomainError::InvalidAmount(minor_units));
        }
        Ok(Self(minor_units))
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Amount {
    type Error = DomainError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Amount> for i64 {
    fn from(amount: Amount) -> i64 {
        amount.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An active ISO 4217 currency code, such as `EUR`.
///
/// Stored as three ASCII upper-case letters; only codes on the list below are
/// accepted, so `XYZ` or `eur` is a validation error at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Active ISO 4217 codes (list of 2024), excluding funds codes and precious
/// metals that a retail ledger has no use for. Kept as data rather than a
/// crate: it changes a few times a decade and a list is easy to review.
const ISO_4217_CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB",
    "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP",
    "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF",
    "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK",
    "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN",
    "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF",
    "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND",
    "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF",
    "YER", "ZAR", "ZMW", "ZWG",
];

impl Currency {
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }
}

impl FromStr for Currency {
    type Err = DomainError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        if ISO_4217_CODES.binary_search(&code).is_err() {
            return Err(DomainError::UnknownCurrency(code.chars().take(16).collect()));
        }
        let bytes = code.as_bytes();
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_currency_list_is_sorted_so_binary_search_works() {
        assert!(ISO_4217_CODES.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ISO_4217_CODES.iter().all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn known_codes_parse_and_unknown_ones_do_not() {
        assert_eq!("EUR".parse::<Currency>().unwrap().as_str(), "EUR");
        assert_eq!("JPY".parse::<Currency>().unwrap().to_string(), "JPY");
        for bad in ["eur", "XYZ", "EURO", "", "€"] {
            assert!(matches!(bad.parse::<Currency>(), Err(DomainError::UnknownCurrency(_))), "{bad}");
        }
    }

    #[test]
    fn amounts_are_positive_and_bounded() {
        assert_eq!(Amount::new(1).unwrap().minor_units(), 1);
        assert_eq!(Amount::new(MAX_AMOUNT).unwrap().minor_units(), MAX_AMOUNT);
        for bad in [0, -1, MAX_AMOUNT + 1, i64::MIN, i64::MAX] {
            assert_eq!(Amount::new(bad), Err(DomainError::InvalidAmount(bad)));
        }
    }

    #[test]
    fn serde_rejects_an_invalid_amount_or_currency() {
        assert!(serde_json::from_str::<Amount>("0").is_err());
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
        assert_eq!(serde_json::from_str::<Currency>("\"USD\"").unwrap().as_str(), "USD");
    }
}
