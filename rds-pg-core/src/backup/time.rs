//! UTC timestamps with one-second resolution: archive names (`20261201T103000Z`), manifest
//! fields (RFC 3339, `2026-12-01T10:30:00Z`) and the calendar buckets of the retention policy.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// A moment in UTC, to the second: what a backup's name and manifest record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    secs: i64,
}

/// A calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// The year (`2026`).
    pub year: i64,
    /// The month, 1–12.
    pub month: u32,
    /// The day of the month, 1–31.
    pub day: u32,
    /// The hour, 0–23.
    pub hour: u32,
    /// The minute, 0–59.
    pub minute: u32,
    /// The second, 0–59.
    pub second: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl UtcTime {
    /// The current time, to the second.
    pub fn now() -> UtcTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        UtcTime { secs }
    }

    /// The time `secs` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix(secs: i64) -> UtcTime {
        UtcTime { secs }
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix(self) -> i64 {
        self.secs
    }

    /// The time of a calendar date and time of day.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a month, day, hour, minute or second out of range.
    pub fn from_civil(civil: CivilTime) -> Result<UtcTime> {
        let CivilTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        } = civil;
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(Error::InvalidInput(format!(
                "invalid UTC time {year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"
            )));
        }
        let days = days_from_civil(year, month, day);
        Ok(UtcTime {
            secs: days * 86_400
                + i64::from(hour) * 3600
                + i64::from(minute) * 60
                + i64::from(second),
        })
    }

    /// The calendar date and time of day.
    pub fn civil(self) -> CivilTime {
        let days = self.secs.div_euclid(86_400);
        let rest = self.secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        CivilTime {
            year,
            month,
            day,
            hour: rest / 3600,
            minute: rest % 3600 / 60,
            second: rest % 60,
        }
    }

    /// Days since 1970-01-01 (the UTC day this time falls on).
    pub fn day_number(self) -> i64 {
        self.secs.div_euclid(86_400)
    }

    /// The ISO 8601 week (year, week 1–53): weeks start on Monday, and week 1 is the one with
    /// the year's first Thursday.
    pub fn iso_week(self) -> (i64, u32) {
        let days = self.day_number();
        // 1970-01-01 was a Thursday: weekday 1 (Monday) … 7 (Sunday).
        let weekday = (days + 3).rem_euclid(7) + 1;
        // The Thursday of this week decides the year.
        let thursday = days - weekday + 4;
        let (year, _, _) = civil_from_days(thursday);
        let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
        (year, week as u32)
    }

    /// This time plus `duration` (whole seconds).
    pub fn plus(self, duration: Duration) -> UtcTime {
        UtcTime {
            secs: self.secs + duration.as_secs() as i64,
        }
    }

    /// `20261201T103000Z`: ISO 8601's basic format, sortable and safe in a file name.
    pub fn compact(self) -> String {
        let c = self.civil();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// Reads [`UtcTime::compact`]'s form back.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else.
    pub fn parse_compact(text: &str) -> Result<UtcTime> {
        let bad =
            || Error::InvalidInput(format!("{text:?} is not a UTC time like 20261201T103000Z"));
        let b = text.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return Err(bad());
        }
        let digits = |range: std::ops::Range<usize>| -> Result<u32> {
            let s = text.get(range).ok_or_else(bad)?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        UtcTime::from_civil(CivilTime {
            year: i64::from(digits(0..4)?),
            month: digits(4..6)?,
            day: digits(6..8)?,
            hour: digits(9..11)?,
            minute: digits(11..13)?,
            second: digits(13..15)?,
        })
        .map_err(|_| bad())
    }

    /// `2026-12-01T10:30:00Z` (RFC 3339).
    pub fn rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// `2026-12-01 10:30:00`, the format PostgreSQL reads as a timestamp (in UTC).
    pub fn sql(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

impl fmt::Display for UtcTime {
    /// [`UtcTime::rfc3339`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl FromStr for UtcTime {
    type Err = Error;

    /// Reads `2026-12-01T10:30:00Z` (RFC 3339 in UTC, without fractions) or the compact form.
    fn from_str(text: &str) -> Result<UtcTime> {
        let b = text.as_bytes();
        if b.len() == 16 {
            return UtcTime::parse_compact(text);
        }
        let bad = || {
            Error::InvalidInput(format!(
                "{text:?} is not a UTC time like 2026-12-01T10:30:00Z"
            ))
        };
        if b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || (b[10] != b'T' && b[10] != b't')
            || b[13] != b':'
            || b[16] != b':'
            || (b[19] != b'Z' && b[19] != b'z')
        {
            return Err(bad());
        }
        let compact = format!(
            "{}{}{}T{}{}{}Z",
            &text[0..4],
            &text[5..7],
            &text[8..10],
            &text[11..13],
            &text[14..16],
            &text[17..19]
        );
        UtcTime::parse_compact(&compact).map_err(|_| bad())
    }
}

impl serde::Serialize for UtcTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for UtcTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> UtcTime {
        text.parse().unwrap()
    }

    #[test]
    fn formats_round_trip() {
        let time = t("2026-12-01T10:30:05Z");
        assert_eq!(time.compact(), "20261201T103005Z");
        assert_eq!(time.rfc3339(), "2026-12-01T10:30:05Z");
        assert_eq!(UtcTime::parse_compact("20261201T103005Z").unwrap(), time);
        assert_eq!(t("20261201T103005Z"), time);
        assert_eq!(UtcTime::from_unix(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(t("2000-02-29T23:59:59Z").unix(), 951_868_799);
        assert_eq!(time.sql(), "2026-12-01 10:30:05+00");
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01 10:30:05Z",
            "2026-12-01T10:30:05+01:00",
            "20261201T1030Z",
            "2026120xT103005Z",
            "",
        ] {
            assert!(bad.parse::<UtcTime>().is_err(), "{bad}");
        }
        // Every day of four years round-trips through the calendar.
        let start = t("1999-12-25T00:00:00Z").day_number();
        for day in start..start + 4 * 366 {
            let time = UtcTime::from_unix(day * 86_400 + 3723);
            assert_eq!(UtcTime::from_civil(time.civil()).unwrap(), time);
            assert_eq!(t(&time.rfc3339()), time);
        }
    }

    #[test]
    fn iso_weeks_follow_iso_8601() {
        // (date, ISO year, week), from the ISO 8601 rule (the Thursday decides).
        for (date, year, week) in [
            ("2026-12-01T00:00:00Z", 2026, 49),
            ("2021-01-03T12:00:00Z", 2020, 53), // a Sunday: still 2020's last week
            ("2021-01-04T00:00:00Z", 2021, 1),  // Monday
            ("2024-12-30T00:00:00Z", 2025, 1),  // Monday of 2025's first week
            ("2026-01-01T00:00:00Z", 2026, 1),  // a Thursday
            ("2027-01-03T23:59:59Z", 2026, 53),
            ("1970-01-01T00:00:00Z", 1970, 1),
        ] {
            assert_eq!(t(date).iso_week(), (year, week), "{date}");
        }
    }
}
