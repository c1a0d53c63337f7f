//! The maintenance window: the days and local hours, in an IANA time zone, when a device may
//! start an update. The server admits devices only inside it and the device installs only
//! inside it; both evaluate it here, with the time zone data compiled into this crate, so a
//! device without a system time zone database decides as the server does.
//!
//! Hours are wall-clock hours: a window `01:00-04:00` in `Europe/Berlin` lasts three hours
//! on most days, two on the day clocks go forward and four when they go back. A window whose
//! end is before its start crosses midnight: `fri 22:00-02:00` opens on Friday at 22:00 and
//! closes on Saturday at 02:00 (the days name the day a window opens).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::{Deserialize, Serialize};

/// Longest time zone name, in bytes (IANA names are at most about 30).
pub const MAX_TIME_ZONE_LEN: usize = 64;

static TZDB: LazyLock<TimeZoneDatabase> = LazyLock::new(TimeZoneDatabase::bundled);

/// Why a window could not be read or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The time zone is not in the IANA database compiled into this program.
    #[error("unknown time zone {0:?}: expected an IANA name like Europe/Berlin or UTC")]
    UnknownTimeZone(String),
    /// The time zone name is longer than the wire allows.
    #[error("time zone name too long: expected at most {MAX_TIME_ZONE_LEN} bytes, found {0}")]
    TimeZoneTooLong(usize),
    /// A day name that is not one.
    #[error("expected a day like mon, tue … sun, found {0:?}")]
    BadDay(String),
    /// The same day listed twice.
    #[error("day {0} listed twice")]
    DuplicateDay(&'static str),
    /// No day at all.
    #[error("a window needs at least one day")]
    NoDays,
    /// A time of day that is not `HH:MM`.
    #[error("expected a time of day HH:MM from 00:00 to 23:59, found {0:?}")]
    BadTime(String),
    /// Start and end are the same, which could mean no time or all day.
    #[error(
        "the window starts and ends at {0}: a window needs a length (omit it to allow any time)"
    )]
    Empty(ClockTime),
    /// The text form is not `DAYS HH:MM-HH:MM ZONE`.
    #[error("expected a window like \"mon-fri 22:00-02:00 Europe/Berlin\", found {0:?}")]
    Malformed(String),
    /// The clock reads a time the calendar can not hold.
    #[error("the clock reads {0} s after 1970, outside the calendar")]
    ClockOutOfRange(u64),
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A set of weekdays. JSON: a list of names in week order, `["mon", "fri"]`; canonically a
/// bit set, bit 0 Monday to bit 6 Sunday.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct DaySet(u8);

impl DaySet {
    /// Every day of the week.
    pub const ALL: Self = Self(0x7f);

    /// The days as a bit set, bit 0 Monday to bit 6 Sunday (their canonical encoding).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << (day.to_monday_zero_offset())) != 0
    }

    fn names(self) -> impl Iterator<Item = &'static str> {
        DAY_NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, name)| *name)
    }

    fn index(name: &str) -> Result<u8, WindowError> {
        DAY_NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(name))
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| WindowError::BadDay(name.to_owned()))
    }

    fn insert(&mut self, index: u8) -> Result<(), WindowError> {
        if self.0 & (1 << index) != 0 {
            return Err(WindowError::DuplicateDay(DAY_NAMES[usize::from(index)]));
        }
        self.0 |= 1 << index;
        Ok(())
    }
}

impl TryFrom<Vec<String>> for DaySet {
    type Error = WindowError;

    fn try_from(names: Vec<String>) -> Result<Self, WindowError> {
        let mut set = Self(0);
        for name in &names {
            set.insert(Self::index(name)?)?;
        }
        if set.0 == 0 {
            return Err(WindowError::NoDays);
        }
        Ok(set)
    }
}

impl From<DaySet> for Vec<String> {
    fn from(set: DaySet) -> Self {
        set.names().map(str::to_owned).collect()
    }
}

impl FromStr for DaySet {
    type Err = WindowError;

    /// `mon-fri`, `sat,sun`, `mon,wed-fri`; a range may wrap (`fri-mon`).
    fn from_str(text: &str) -> Result<Self, WindowError> {
        let mut set = Self(0);
        for part in text.split(',') {
            match part.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (Self::index(from)?, Self::index(to)?);
                    let mut day = from;
                    loop {
                        set.insert(day)?;
                        if day == to {
                            break;
                        }
                        day = (day + 1) % 7;
                    }
                }
                None => set.insert(Self::index(part)?)?,
            }
        }
        Ok(set)
    }
}

impl fmt::Display for DaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names().collect();
        f.write_str(&names.join(","))
    }
}

/// A time of day to the minute. JSON and text: `"HH:MM"`; canonically minutes after
/// midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime(u16);

impl ClockTime {
    /// `hour:minute`; refuses hours past 23 and minutes past 59.
    pub fn new(hour: u8, minute: u8) -> Result<Self, WindowError> {
        if hour > 23 || minute > 59 {
            return Err(WindowError::BadTime(format!("{hour:02}:{minute:02}")));
        }
        Ok(Self(u16::from(hour) * 60 + u16::from(minute)))
    }

    /// Minutes after midnight (the canonical encoding).
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl FromStr for ClockTime {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Self, WindowError> {
        let bad = || WindowError::BadTime(text.to_owned());
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        Self::new(h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).map_err(|_| bad())
    }
}

impl TryFrom<String> for ClockTime {
    type Error = WindowError;

    fn try_from(text: String) -> Result<Self, WindowError> {
        text.parse()
    }
}

impl From<ClockTime> for String {
    fn from(time: ClockTime) -> Self {
        time.to_string()
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// When updates may start: on `days`, from `start` to `end` local time in `time_zone`.
///
/// JSON: `{"days": ["mon", "tue"], "start": "22:00", "end": "02:00", "time_zone":
/// "Europe/Berlin"}`; text: `mon,tue 22:00-02:00 Europe/Berlin`. Every way of making one
/// checks the time zone exists and that start and end differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowFields", into = "WindowFields")]
pub struct MaintenanceWindow {
    days: DaySet,
    start: ClockTime,
    end: ClockTime,
    time_zone: String,
}

/// The JSON fields of a window, before they are checked.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFields {
    days: DaySet,
    start: ClockTime,
    end: ClockTime,
    time_zone: String,
}

impl MaintenanceWindow {
    /// A window on `days` from `start` to `end` (crossing midnight when `end < start`) in
    /// the IANA time zone `time_zone`.
    pub fn new(
        days: DaySet,
        start: ClockTime,
        end: ClockTime,
        time_zone: &str,
    ) -> Result<Self, WindowError> {
        if start == end {
            return Err(WindowError::Empty(start));
        }
        if time_zone.len() > MAX_TIME_ZONE_LEN {
            return Err(WindowError::TimeZoneTooLong(time_zone.len()));
        }
        lookup(time_zone)?;
        Ok(Self {
            days,
            start,
            end,
            time_zone: time_zone.to_owned(),
        })
    }

    /// The days a window opens.
    pub fn days(&self) -> DaySet {
        self.days
    }

    /// Local opening time.
    pub fn start(&self) -> ClockTime {
        self.start
    }

    /// Local closing time (exclusive); on the next day when before `start`.
    pub fn end(&self) -> ClockTime {
        self.end
    }

    /// The IANA time zone name, as given.
    pub fn time_zone(&self) -> &str {
        &self.time_zone
    }

    /// Whether the instant `now` falls inside the window.
    pub fn contains(&self, now: Timestamp) -> Result<bool, WindowError> {
        let local = now.to_zoned(lookup(&self.time_zone)?);
        let day = local.weekday();
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        Ok(if self.start < self.end {
            self.days.contains(day) && (self.start.0..self.end.0).contains(&minute)
        } else {
            (self.days.contains(day) && minute >= self.start.0)
                || (self.days.contains(day.previous()) && minute < self.end.0)
        })
    }

    /// The local date and time of `now` in the window's zone, for messages.
    pub fn local_time(&self, now: Timestamp) -> Result<String, WindowError> {
        let local = now.to_zoned(lookup(&self.time_zone)?);
        Ok(local.strftime("%a %Y-%m-%d %H:%M %Z").to_string())
    }
}

/// A clock reading in unix seconds as an instant; refuses one past the calendar's end.
pub fn unix_time(now: u64) -> Result<Timestamp, WindowError> {
    i64::try_from(now)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or(WindowError::ClockOutOfRange(now))
}

fn lookup(name: &str) -> Result<TimeZone, WindowError> {
    let unknown = || WindowError::UnknownTimeZone(name.to_owned());
    let tz = TZDB.get(name).map_err(|_| unknown())?;
    if tz.is_unknown() {
        return Err(unknown());
    }
    Ok(tz)
}

impl TryFrom<WindowFields> for MaintenanceWindow {
    type Error = WindowError;

    fn try_from(f: WindowFields) -> Result<Self, WindowError> {
        Self::new(f.days, f.start, f.end, &f.time_zone)
    }
}

impl From<MaintenanceWindow> for WindowFields {
    fn from(w: MaintenanceWindow) -> Self {
        Self {
            days: w.days,
            start: w.start,
            end: w.end,
            time_zone: w.time_zone,
        }
    }
}

impl FromStr for MaintenanceWindow {
    type Err = WindowError;

    /// `DAYS HH:MM-HH:MM ZONE`, e.g. `mon-fri 22:00-02:00 Europe/Berlin`.
    fn from_str(text: &str) -> Result<Self, WindowError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days, hours, zone] = parts[..] else {
            return Err(WindowError::Malformed(text.to_owned()));
        };
        let (start, end) = hours
            .split_once('-')
            .ok_or_else(|| WindowError::Malformed(text.to_owned()))?;
        Self::new(days.parse()?, start.parse()?, end.parse()?, zone)
    }
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{} {}",
            self.days, self.start, self.end, self.time_zone
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(utc: &str) -> Timestamp {
        utc.parse().unwrap()
    }

    fn window(text: &str) -> MaintenanceWindow {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_holds_local_hours_on_its_days() {
        // 2026-12-01 is a Tuesday; New York is UTC-5 in winter.
        let w = window("mon-fri 09:00-17:00 America/New_York");
        assert!(
            !w.contains(at("2026-12-01T13:59:00Z")).unwrap(),
            "08:59 local"
        );
        assert!(
            w.contains(at("2026-12-01T14:00:00Z")).unwrap(),
            "09:00 local"
        );
        assert!(
            w.contains(at("2026-12-01T21:59:00Z")).unwrap(),
            "16:59 local"
        );
        assert!(
            !w.contains(at("2026-12-01T22:00:00Z")).unwrap(),
            "17:00 local"
        );
        // Saturday 2026-12-05, 12:00 local.
        assert!(!w.contains(at("2026-12-05T17:00:00Z")).unwrap());
    }

    #[test]
    fn a_window_follows_daylight_saving_time() {
        // In summer New York is UTC-4: the same local hours are an hour earlier in UTC.
        let w = window("mon-fri 09:00-17:00 America/New_York");
        assert!(w.contains(at("2026-07-01T13:00:00Z")).unwrap(), "09:00 EDT");
        assert!(
            !w.contains(at("2026-12-01T13:00:00Z")).unwrap(),
            "08:00 EST"
        );
    }

    #[test]
    fn a_window_on_the_day_clocks_go_forward_is_shorter() {
        // Berlin, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST (at 01:00 UTC).
        let w = window("sun 01:00-04:00 Europe/Berlin");
        assert!(
            !w.contains(at("2026-03-28T23:59:00Z")).unwrap(),
            "00:59 CET"
        );
        assert!(w.contains(at("2026-03-29T00:30:00Z")).unwrap(), "01:30 CET");
        assert!(
            w.contains(at("2026-03-29T01:30:00Z")).unwrap(),
            "03:30 CEST"
        );
        // With a fixed UTC+1 this would be 03:00, inside; it is 04:00 CEST.
        assert!(
            !w.contains(at("2026-03-29T02:00:00Z")).unwrap(),
            "04:00 CEST"
        );
    }

    #[test]
    fn a_window_on_the_day_clocks_go_back_is_longer() {
        // Berlin, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET (at 01:00 UTC).
        let w = window("sun 01:00-03:00 Europe/Berlin");
        assert!(
            w.contains(at("2026-10-24T23:00:00Z")).unwrap(),
            "01:00 CEST"
        );
        assert!(w.contains(at("2026-10-25T01:30:00Z")).unwrap(), "02:30 CET");
        assert!(
            !w.contains(at("2026-10-25T02:00:00Z")).unwrap(),
            "03:00 CET"
        );
    }

    #[test]
    fn a_window_can_cross_midnight() {
        // Friday 2026-12-04 22:00 to Saturday 02:00, UTC.
        let w = window("fri 22:00-02:00 UTC");
        assert!(!w.contains(at("2026-12-04T21:59:00Z")).unwrap());
        assert!(w.contains(at("2026-12-04T22:00:00Z")).unwrap());
        assert!(
            w.contains(at("2026-12-05T01:59:00Z")).unwrap(),
            "Saturday morning"
        );
        assert!(!w.contains(at("2026-12-05T02:00:00Z")).unwrap());
        assert!(
            !w.contains(at("2026-12-05T22:30:00Z")).unwrap(),
            "Saturday is no day"
        );
        assert!(
            !w.contains(at("2026-12-04T01:00:00Z")).unwrap(),
            "Thursday was no day"
        );
    }

    #[test]
    fn a_window_crossing_midnight_wraps_from_sunday_to_monday() {
        let w = window("sun 23:00-01:00 UTC");
        // Monday 2026-11-30 00:30.
        assert!(w.contains(at("2026-11-30T00:30:00Z")).unwrap());
        assert!(!w.contains(at("2026-12-01T00:30:00Z")).unwrap(), "Tuesday");
    }

    #[test]
    fn text_and_json_forms_round_trip() {
        let w = window("sat,mon-wed 22:00-02:30 Europe/Berlin");
        assert_eq!(w.to_string(), "mon,tue,wed,sat 22:00-02:30 Europe/Berlin");
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"days": ["mon", "tue", "wed", "sat"], "start": "22:00",
                               "end": "02:30", "time_zone": "Europe/Berlin"})
        );
        let back: MaintenanceWindow = serde_json::from_value(json).unwrap();
        assert_eq!(back, w);
        assert_eq!(w.days().bits(), 0b0010_0111);
        assert_eq!(w.start().minutes(), 22 * 60);
        assert_eq!("fri-mon".parse::<DaySet>().unwrap().bits(), 0b0111_0001);
    }

    #[test]
    fn bad_windows_get_a_typed_error() {
        let cases = [
            ("mon 09:00-17:00 Mars/Olympus", "unknown time zone"),
            ("mon 09:00-17:00 Etc/Unknown", "unknown time zone"),
            ("xyz 09:00-17:00 UTC", "expected a day"),
            ("mon,mon 09:00-17:00 UTC", "listed twice"),
            ("mon-sun,wed 09:00-17:00 UTC", "listed twice"),
            ("mon 9:00-17:00 UTC", "HH:MM"),
            ("mon 24:00-17:00 UTC", "HH:MM"),
            ("mon 09:60-17:00 UTC", "HH:MM"),
            ("mon 09:00-09:00 UTC", "needs a length"),
            ("mon 09:00 UTC", "expected a window"),
            ("mon 09:00-10:00", "expected a window"),
        ];
        for (text, expect) in cases {
            let err = text.parse::<MaintenanceWindow>().unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
        }
        let json = |v| {
            serde_json::from_value::<MaintenanceWindow>(v)
                .unwrap_err()
                .to_string()
        };
        let err = json(
            serde_json::json!({"days": [], "start": "01:00", "end": "02:00",
                                          "time_zone": "UTC"}),
        );
        assert!(err.contains("at least one day"), "{err}");
        let err = json(
            serde_json::json!({"days": ["mon"], "start": "01:00", "end": "02:00",
                                          "time_zone": "UTC", "extra": 1}),
        );
        assert!(err.contains("unknown field"), "{err}");
        let long = "A".repeat(MAX_TIME_ZONE_LEN + 1);
        assert_eq!(
            MaintenanceWindow::new(DaySet::ALL, ClockTime(0), ClockTime(1), &long),
            Err(WindowError::TimeZoneTooLong(65))
        );
    }

    #[test]
    fn the_time_zone_data_is_compiled_in() {
        // No system database needed: the bundled one knows the zones.
        for zone in ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"] {
            TimeZoneDatabase::bundled().get(zone).unwrap();
        }
        let w = window("mon-sun 00:00-23:59 Asia/Kolkata");
        assert_eq!(
            w.local_time(at("2026-12-01T00:00:00Z")).unwrap(),
            "Tue 2026-12-01 05:30 IST"
        );
        assert_eq!(
            unix_time(u64::MAX),
            Err(WindowError::ClockOutOfRange(u64::MAX))
        );
        assert_eq!(unix_time(0).unwrap(), Timestamp::UNIX_EPOCH);
    }
}
