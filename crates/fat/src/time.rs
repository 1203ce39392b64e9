//! Unix seconds as the DOS date and time of directory entries ("Date and Time Formats" of
//! fatgen103): local time without a zone, which d2l takes as UTC, in 2-second steps from
//! 1980-01-01 to 2107-12-31.

/// A timestamp as a directory entry stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DosTime {
    /// Bits 15..9 year since 1980, 8..5 month (1..=12), 4..0 day (1..=31).
    pub date: u16,
    /// Bits 15..11 hours, 10..5 minutes, 4..0 seconds / 2.
    pub time: u16,
    /// Hundredths of a second past `time`: 100 for an odd second.
    pub hundredths: u8,
}

/// The first year a DOS date holds.
const DOS_EPOCH_YEAR: u64 = 1980;
/// 1980-01-01 00:00:00 UTC in unix seconds: the first instant a DOS date holds.
const DOS_FIRST_UNIX: u64 = 315_532_800;
/// 2107-12-31 23:59:59 UTC: the last (7 bits of years after 1980).
const DOS_LAST_UNIX: u64 = 4_354_819_199;
const SECONDS_PER_DAY: u64 = 86_400;

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `unix` seconds since 1970 (UTC), clamped to the DOS range.
pub(crate) fn dos_time(unix: u64) -> DosTime {
    let unix = unix.clamp(DOS_FIRST_UNIX, DOS_LAST_UNIX);
    let mut days = unix / SECONDS_PER_DAY;
    let seconds = unix % SECONDS_PER_DAY;
    // Counting days forward a year then a month at a time: at most 138 + 12 steps.
    let mut year = 1970;
    loop {
        let in_year = if is_leap(year) { 366 } else { 365 };
        if days < in_year {
            break;
        }
        days -= in_year;
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    let day = days + 1;
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let field = |value: u64| u16::try_from(value).expect("fields are in range");
    DosTime {
        date: field(((year - DOS_EPOCH_YEAR) << 9) | (month << 5) | day),
        time: field((hour << 11) | (minute << 5) | (second / 2)),
        hundredths: if second % 2 == 1 { 100 } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(t: DosTime) -> (u16, u16, u16, u16, u16, u16, u8) {
        let d = t.date;
        let s = t.time;
        (
            (d >> 9) + 1980,
            d >> 5 & 15,
            d & 31,
            s >> 11,
            s >> 5 & 63,
            (s & 31) * 2,
            t.hundredths,
        )
    }

    #[test]
    fn known_instants() {
        // 2000-02-29 12:34:57 UTC: a leap day, an odd second.
        assert_eq!(parts(dos_time(951_827_697)), (2000, 2, 29, 12, 34, 56, 100));
        // 2024-12-31 23:59:58 UTC.
        assert_eq!(
            parts(dos_time(1_735_689_598)),
            (2024, 12, 31, 23, 59, 58, 0)
        );
        // 1980-01-01 00:00:00, the DOS epoch, is 315532800.
        assert_eq!(parts(dos_time(315_532_800)), (1980, 1, 1, 0, 0, 0, 0));
    }

    #[test]
    fn out_of_range_clamps_to_the_dos_range() {
        assert_eq!(parts(dos_time(0)), (1980, 1, 1, 0, 0, 0, 0));
        assert_eq!(parts(dos_time(315_532_799)), (1980, 1, 1, 0, 0, 0, 0));
        // 2108-01-01 00:00:00 is 4354819200.
        assert_eq!(
            parts(dos_time(4_354_819_200)),
            (2107, 12, 31, 23, 59, 58, 100)
        );
        assert_eq!(parts(dos_time(u64::MAX)), (2107, 12, 31, 23, 59, 58, 100));
    }
}
