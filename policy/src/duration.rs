//! Duration strings such as `90s`, `15m`, `24h` or `1h30m`, as Kubernetes users write them.

use core::fmt;

/// A parsed duration, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub u64);

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError(pub String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid duration {:?}: expected a number and a unit (s, m, h or d), e.g. \"90s\", \"15m\", \"24h\" or \"1h30m\"", self.0)
    }
}

impl Duration {
    /// Parses a sequence of `<digits><unit>` groups.
    pub fn parse(s: &str) -> Result<Duration, DurationError> {
        let err = || DurationError(s.to_owned());
        if s.is_empty() {
            return Err(err());
        }
        let mut total: u64 = 0;
        let mut digits: Option<u64> = None;
        for c in s.chars() {
            if let Some(d) = c.to_digit(10) {
                let cur = digits.unwrap_or(0);
                digits = Some(cur.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))).ok_or_else(err)?);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(err()),
            };
            let n = digits.take().ok_or_else(err)?;
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(err)?;
        }
        if digits.is_some() {
            // A trailing bare number: "90" is ambiguous, so refuse it.
            return Err(err());
        }
        Ok(Duration(total))
    }

    /// The duration in seconds.
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn durations_parse_like_kubernetes() {
        assert_eq!(Duration::parse("90s"), Ok(Duration(90)));
        assert_eq!(Duration::parse("15m"), Ok(Duration(900)));
        assert_eq!(Duration::parse("24h"), Ok(Duration(86_400)));
        assert_eq!(Duration::parse("1h30m"), Ok(Duration(5_400)));
        assert_eq!(Duration::parse("2d"), Ok(Duration(172_800)));
        for bad in ["", "90", "h", "1x", "-1s", "1.5h", "99999999999999999999s"] {
            assert!(Duration::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
