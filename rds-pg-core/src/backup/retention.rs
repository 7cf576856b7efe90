//! Which archives a retention policy keeps, per database, as restic's `forget` decides (a
//! snapshot kept by any rule is kept), with one rule of rds-pg's own: the newest verified archive
//! of a database is never removed. Planning is pure; [`super::prune`] applies a plan.

use std::collections::BTreeMap;
use std::fmt;

use super::manifest::VerificationState;
use super::time::UtcTime;

/// How many archives to keep per database (restic's `--keep-*` options). An archive kept by any
/// rule is kept. A policy whose counts are all zero keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RetentionPolicy {
    /// The newest `n` archives.
    pub keep_last: u32,
    /// For the last `n` days that have archives, the newest of each day (UTC).
    pub keep_daily: u32,
    /// For the last `n` weeks that have archives, the newest of each ISO week (Monday to
    /// Sunday, UTC).
    pub keep_weekly: u32,
    /// For the last `n` months that have archives, the newest of each month.
    pub keep_monthly: u32,
    /// For the last `n` years that have archives, the newest of each year.
    pub keep_yearly: u32,
}

impl RetentionPolicy {
    /// Whether every count is zero (such a policy removes nothing).
    pub fn is_empty(&self) -> bool {
        self.rules().iter().all(|(_, n)| *n == 0)
    }

    fn rules(&self) -> [(Rule, u32); 5] {
        [
            (Rule::Last, self.keep_last),
            (Rule::Daily, self.keep_daily),
            (Rule::Weekly, self.keep_weekly),
            (Rule::Monthly, self.keep_monthly),
            (Rule::Yearly, self.keep_yearly),
        ]
    }
}

impl fmt::Display for RetentionPolicy {
    /// `keep 7 last, 14 daily, 8 weekly` (the non-zero counts), or `keep everything`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .rules()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(rule, n)| format!("{n} {rule}"))
            .collect();
        if parts.is_empty() {
            f.write_str("keep everything (no retention rule)")
        } else {
            write!(f, "keep {}", parts.join(", "))
        }
    }
}

/// A rule of a [`RetentionPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `keep_last`.
    Last,
    /// `keep_daily`.
    Daily,
    /// `keep_weekly`.
    Weekly,
    /// `keep_monthly`.
    Monthly,
    /// `keep_yearly`.
    Yearly,
}

impl Rule {
    /// `last`, `daily`, `weekly`, `monthly` or `yearly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The period `time` falls in for this rule; `None` for [`Rule::Last`] (every archive is
    /// its own period).
    fn period(self, time: UtcTime) -> Option<i64> {
        let c = time.civil();
        match self {
            Rule::Last => None,
            Rule::Daily => Some(time.day_number()),
            Rule::Weekly => {
                let (year, week) = time.iso_week();
                Some(year * 100 + i64::from(week))
            }
            Rule::Monthly => Some(c.year * 100 + i64::from(c.month)),
            Rule::Yearly => Some(c.year),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an archive is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeepReason {
    /// A rule kept it as the newest of its period (or one of the last `n`).
    Rule(Rule),
    /// A rule still had periods to fill when the history ran out, so the oldest archive is
    /// kept too (restic 0.17's rule: the history kept is as long as the counts allow).
    Oldest(Rule),
    /// It is the database's newest verified archive, which is never removed.
    NewestVerified,
    /// The policy is empty: nothing is removed.
    NoPolicy,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Rule(rule) => write!(f, "{rule}"),
            KeepReason::Oldest(rule) => write!(f, "oldest {rule}"),
            KeepReason::NewestVerified => f.write_str("newest verified"),
            KeepReason::NoPolicy => f.write_str("no retention rule"),
        }
    }
}

/// What the planner needs to know about an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<K> {
    /// The caller's key for it (a path, an index).
    pub key: K,
    /// The group it belongs to: archives are kept or removed per group (per database).
    pub group: String,
    /// When it was made.
    pub time: UtcTime,
    /// Its last verification.
    pub verification: VerificationState,
}

/// The decision about one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<K> {
    /// The caller's key.
    pub key: K,
    /// The group.
    pub group: String,
    /// When it was made.
    pub time: UtcTime,
    /// Why it is kept; empty when it is to be removed.
    pub reasons: Vec<KeepReason>,
}

impl<K> Decision<K> {
    /// Whether it is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Applies `policy` to `candidates`, per group: the decisions, newest first within each group,
/// groups in name order.
///
/// Within a group, archives are taken newest first (ties in the order given); each rule with
/// periods left keeps an archive whose period differs from the last one it kept, and counts
/// it; [`Rule::Last`] keeps the first `keep_last`. When the oldest archive is reached and a rule
/// still has periods left, it keeps the oldest as well ([`KeepReason::Oldest`]). Finally the
/// newest archive whose verification succeeded is kept whatever the policy
/// ([`KeepReason::NewestVerified`]). An empty policy keeps everything.
pub fn plan<K: Clone>(candidates: &[Candidate<K>], policy: &RetentionPolicy) -> Vec<Decision<K>> {
    let mut groups: BTreeMap<&str, Vec<&Candidate<K>>> = BTreeMap::new();
    for candidate in candidates {
        groups.entry(&candidate.group).or_default().push(candidate);
    }
    let mut decisions = Vec::with_capacity(candidates.len());
    for (_, mut members) in groups {
        // Stable: equal times keep the caller's order.
        members.sort_by_key(|m| std::cmp::Reverse(m.time));
        let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); members.len()];
        if policy.is_empty() {
            for r in &mut reasons {
                r.push(KeepReason::NoPolicy);
            }
        } else {
            for (rule, count) in policy.rules() {
                let mut left = count;
                let mut last_period: Option<Option<i64>> = None;
                for (i, member) in members.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    let period = rule.period(member.time);
                    let new_period = rule == Rule::Last || last_period != Some(period);
                    let oldest = i == members.len() - 1;
                    if new_period {
                        reasons[i].push(KeepReason::Rule(rule));
                        last_period = Some(period);
                        left -= 1;
                    } else if oldest {
                        reasons[i].push(KeepReason::Oldest(rule));
                    }
                }
            }
        }
        if let Some(i) = members
            .iter()
            .position(|m| m.verification == VerificationState::Verified)
        {
            if reasons[i].is_empty() {
                reasons[i].push(KeepReason::NewestVerified);
            }
        }
        for (member, reasons) in members.into_iter().zip(reasons) {
            decisions.push(Decision {
                key: member.key.clone(),
                group: member.group.clone(),
                time: member.time,
                reasons,
            });
        }
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> UtcTime {
        text.parse().unwrap()
    }

    fn candidates(times: &[&str]) -> Vec<Candidate<String>> {
        times
            .iter()
            .map(|t| Candidate {
                key: (*t).to_owned(),
                group: "acme/prod/shop".into(),
                time: at(t),
                verification: VerificationState::Unverified,
            })
            .collect()
    }

    fn kept(decisions: &[Decision<String>]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.key.as_str())
            .collect()
    }

    fn removed(decisions: &[Decision<String>]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| !d.keep())
            .map(|d| d.key.as_str())
            .collect()
    }

    /// Two backups a day (03:00 and 15:00) from 2026-10-01 to 2026-12-01.
    fn twice_daily() -> Vec<Candidate<String>> {
        let start = at("2026-10-01T03:00:00Z").unix();
        let end = at("2026-12-01T15:00:00Z").unix();
        let mut out = Vec::new();
        let mut t = start;
        while t <= end {
            for offset in [0, 12 * 3600] {
                let time = UtcTime::from_unix(t + offset);
                out.push(Candidate {
                    key: time.rfc3339(),
                    group: "g".into(),
                    time,
                    verification: VerificationState::Unverified,
                });
            }
            t += 86_400;
        }
        out
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let c = candidates(&[
            "2026-12-01T03:00:00Z",
            "2026-12-01T15:00:00Z",
            "2026-11-30T03:00:00Z",
        ]);
        let policy = RetentionPolicy {
            keep_last: 2,
            ..Default::default()
        };
        let d = plan(&c, &policy);
        assert_eq!(kept(&d), ["2026-12-01T15:00:00Z", "2026-12-01T03:00:00Z"]);
        assert_eq!(removed(&d), ["2026-11-30T03:00:00Z"]);
        assert_eq!(d[0].reasons, [KeepReason::Rule(Rule::Last)]);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_of_the_last_n_days_that_have_one() {
        let c = candidates(&[
            "2026-12-01T15:00:00Z",
            "2026-12-01T03:00:00Z",
            // No archive on 2026-11-30: the rule goes on to the next day that has one.
            "2026-11-29T23:59:59Z",
            "2026-11-29T00:00:00Z",
            "2026-11-28T12:00:00Z",
            "2026-11-27T12:00:00Z",
        ]);
        let policy = RetentionPolicy {
            keep_daily: 3,
            ..Default::default()
        };
        let d = plan(&c, &policy);
        assert_eq!(
            kept(&d),
            [
                "2026-12-01T15:00:00Z",
                "2026-11-29T23:59:59Z",
                "2026-11-28T12:00:00Z"
            ]
        );
        assert_eq!(
            removed(&d),
            [
                "2026-12-01T03:00:00Z",
                "2026-11-29T00:00:00Z",
                "2026-11-27T12:00:00Z"
            ]
        );
    }

    #[test]
    fn rules_combine_and_any_rule_keeps() {
        let c = twice_daily();
        assert_eq!(c.len(), 124);
        let policy = RetentionPolicy {
            keep_last: 3,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 4,
            keep_yearly: 0,
        };
        let d = plan(&c, &policy);
        let kept = kept(&d);
        assert_eq!(
            kept,
            [
                // last 3 (the first two are also daily; 12-01T15 is every rule's newest).
                "2026-12-01T15:00:00Z",
                "2026-12-01T03:00:00Z",
                "2026-11-30T15:00:00Z",
                // daily: the newest of 11-29 … 11-25 (7 days with 12-01 and 11-30).
                "2026-11-29T15:00:00Z", // also weekly: the newest of ISO week 48
                "2026-11-28T15:00:00Z",
                "2026-11-27T15:00:00Z",
                "2026-11-26T15:00:00Z",
                "2026-11-25T15:00:00Z",
                // weekly: the Sundays that end weeks 47 and 46.
                "2026-11-22T15:00:00Z",
                "2026-11-15T15:00:00Z",
                // monthly: 11-30 (November) is kept already; October's newest.
                "2026-10-31T15:00:00Z",
                // monthly has a fourth month left when the history ends: the oldest is kept.
                "2026-10-01T03:00:00Z",
            ]
        );
        let reasons = |key: &str| {
            d.iter()
                .find(|x| x.key == key)
                .map(|x| x.reasons.clone())
                .unwrap()
        };
        assert_eq!(
            reasons("2026-12-01T15:00:00Z"),
            [
                KeepReason::Rule(Rule::Last),
                KeepReason::Rule(Rule::Daily),
                KeepReason::Rule(Rule::Weekly),
                KeepReason::Rule(Rule::Monthly)
            ]
        );
        assert_eq!(
            reasons("2026-11-29T15:00:00Z"),
            [
                KeepReason::Rule(Rule::Daily),
                KeepReason::Rule(Rule::Weekly)
            ]
        );
        assert_eq!(
            reasons("2026-10-01T03:00:00Z"),
            [KeepReason::Oldest(Rule::Monthly)]
        );
        assert_eq!(d.len() - kept.len(), 112);
    }

    #[test]
    fn the_newest_verified_archive_survives_any_policy() {
        let mut c = candidates(&[
            "2026-12-01T03:00:00Z",
            "2026-11-30T03:00:00Z",
            "2026-11-29T03:00:00Z",
            "2026-11-28T03:00:00Z",
        ]);
        c[2].verification = VerificationState::Verified;
        c[3].verification = VerificationState::Verified;
        c[0].verification = VerificationState::Failed;
        let policy = RetentionPolicy {
            keep_last: 1,
            ..Default::default()
        };
        let d = plan(&c, &policy);
        assert_eq!(kept(&d), ["2026-12-01T03:00:00Z", "2026-11-29T03:00:00Z"]);
        assert_eq!(d[2].reasons, [KeepReason::NewestVerified]);
        // A verified archive a rule keeps anyway needs no second reason.
        c[0].verification = VerificationState::Verified;
        let d = plan(&c, &policy);
        assert_eq!(kept(&d), ["2026-12-01T03:00:00Z"]);
    }

    #[test]
    fn groups_are_independent_and_an_empty_policy_keeps_everything() {
        let mut c = candidates(&["2026-12-01T03:00:00Z", "2026-11-30T03:00:00Z"]);
        c.extend(
            candidates(&["2026-11-01T03:00:00Z"])
                .into_iter()
                .map(|mut x| {
                    x.group = "acme/prod/blog".into();
                    x
                }),
        );
        let policy = RetentionPolicy {
            keep_last: 1,
            ..Default::default()
        };
        let d = plan(&c, &policy);
        // "acme/prod/blog" sorts first; its only archive is its newest.
        assert_eq!(kept(&d), ["2026-11-01T03:00:00Z", "2026-12-01T03:00:00Z"]);
        let d = plan(&c, &RetentionPolicy::default());
        assert!(d.iter().all(|x| x.reasons == [KeepReason::NoPolicy]));
        assert_eq!(
            RetentionPolicy::default().to_string(),
            "keep everything (no retention rule)"
        );
        assert_eq!(policy.to_string(), "keep 1 last");
    }

    #[test]
    fn weekly_and_yearly_use_iso_weeks_and_calendar_years() {
        let c = candidates(&[
            "2027-01-03T10:00:00Z", // Sunday, ISO week 2026-53
            "2027-01-01T10:00:00Z", // Friday, same ISO week
            "2026-12-27T10:00:00Z", // Sunday, ISO week 2026-52
            "2025-06-01T10:00:00Z",
            "2025-01-01T10:00:00Z",
        ]);
        let weekly = RetentionPolicy {
            keep_weekly: 2,
            ..Default::default()
        };
        assert_eq!(
            kept(&plan(&c, &weekly)),
            ["2027-01-03T10:00:00Z", "2026-12-27T10:00:00Z"]
        );
        let yearly = RetentionPolicy {
            keep_yearly: 3,
            ..Default::default()
        };
        // 2027, 2026, 2025: three years.
        assert_eq!(
            kept(&plan(&c, &yearly)),
            [
                "2027-01-03T10:00:00Z",
                "2026-12-27T10:00:00Z",
                "2025-06-01T10:00:00Z"
            ]
        );
    }
}
