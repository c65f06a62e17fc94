//! Warnings before a spool is full: at 50%, 80% and 95% of its cap, each once while the fill
//! rises past it, again only after the spool drained below 50%. Pure: the caller reads the
//! spool's size now and then (off any request path) and says what [`FillAlarm::check`] returns.

/// The levels worth a warning, in percent of the cap.
pub const LEVELS: [u8; 3] = [50, 80, 95];

/// Which levels were already reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillAlarm {
    reported: u8,
}

impl FillAlarm {
    /// `pending` bytes of a spool capped at `cap`: the level to warn about now, if the fill rose
    /// past one not yet reported (the highest such level).
    pub fn check(&mut self, pending: u64, cap: u64) -> Option<u8> {
        if cap == 0 {
            return None;
        }
        let percent = (u128::from(pending) * 100 / u128::from(cap)).min(100) as u8;
        if percent < LEVELS[0] {
            self.reported = 0;
            return None;
        }
        let level = LEVELS.iter().rev().copied().find(|&l| percent >= l)?;
        (level > self.reported).then(|| {
            self.reported = level;
            level
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_once_while_rising_again_after_draining() {
        let mut a = FillAlarm::default();
        let cap = 1000;
        let seen: Vec<Option<u8>> = [100, 499, 500, 600, 799, 800, 960, 1000, 900, 490, 850]
            .into_iter()
            .map(|p| a.check(p, cap))
            .collect();
        assert_eq!(
            seen,
            [
                None,
                None,
                Some(50),
                None,
                None,
                Some(80),
                Some(95),
                None,
                None,
                None,
                Some(80)
            ]
        );
        assert_eq!(FillAlarm::default().check(5, 0), None, "no cap, no alarm");
        assert_eq!(FillAlarm::default().check(u64::MAX, 10), Some(95));
    }
}
