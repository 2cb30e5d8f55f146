//! Yelb's domain, shared by every other crate (app server, stores, UI).
//!
//! - [`Restaurant`]: the four restaurants, defined once, with their slugs (the
//!   names the original API and database use), display names and taglines, in
//!   both the API order and the order the original UI shows its cards.
//! - [`VoteCounts`]: the four counts, with the monotone merge that lets
//!   replicas combine updates that arrive out of order.
//! - [`wire`]: the JSON bodies of both APIs and of the live-event stream.
//! - [`api`]: the HTTP contract: paths, the `X-Served-By` header, which API
//!   an app server speaks, and how a vote falls back to the original API.
//!
//! Nothing here does I/O, so the UI can depend on it in WebAssembly too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod api;
pub mod wire;

/// One of the four restaurants Yelb votes on.
///
/// The set is closed on purpose: the original API, its database seed rows and
/// its UI all know exactly these four, and mixing old and new parts only works
/// while that stays true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Restaurant {
    /// Outback Steakhouse.
    Outback,
    /// Buca di Beppo.
    Bucadibeppo,
    /// IHOP.
    Ihop,
    /// Chipotle.
    Chipotle,
}

impl Restaurant {
    /// All restaurants in the order of the original `/api/getvotes` body.
    pub const ALL: [Restaurant; 4] =
        [Restaurant::Outback, Restaurant::Bucadibeppo, Restaurant::Ihop, Restaurant::Chipotle];

    /// All restaurants in the order the original UI shows its cards.
    pub const CARD_ORDER: [Restaurant; 4] =
        [Restaurant::Ihop, Restaurant::Chipotle, Restaurant::Outback, Restaurant::Bucadibeppo];

    /// The name used in URLs, JSON and the database (`"bucadibeppo"`).
    pub const fn slug(self) -> &'static str {
        match self {
            Restaurant::Outback => "outback",
            Restaurant::Bucadibeppo => "bucadibeppo",
            Restaurant::Ihop => "ihop",
            Restaurant::Chipotle => "chipotle",
        }
    }

    /// The name people read (`"Buca di Beppo"`).
    pub const fn display_name(self) -> &'static str {
        match self {
            Restaurant::Outback => "Outback",
            Restaurant::Bucadibeppo => "Buca di Beppo",
            Restaurant::Ihop => "IHOP",
            Restaurant::Chipotle => "Chipotle",
        }
    }

    /// The original UI's one-line pitch for the restaurant.
    pub const fn tagline(self) -> &'static str {
        match self {
            Restaurant::Outback => "Blooming onion, what else?",
            Restaurant::Bucadibeppo => "Lasagne, this is heaven!",
            Restaurant::Ihop => "Pancakes, for a powerful start!",
            Restaurant::Chipotle => "Burritos, for a mid-day break!",
        }
    }

    /// The slugs of all restaurants, comma separated, for error messages.
    pub fn expected_list() -> String {
        Restaurant::ALL.map(Restaurant::slug).join(", ")
    }
}

impl fmt::Display for Restaurant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A name that is not one of the four restaurants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown restaurant '{name}'; expected one of {}", Restaurant::expected_list())]
pub struct UnknownRestaurant {
    /// The name as given (trimmed, and cut to 64 characters so a hostile
    /// request cannot make the error message arbitrarily long).
    pub name: String,
}

impl FromStr for Restaurant {
    type Err = UnknownRestaurant;

    /// Parses a slug. Surrounding blanks are ignored because the original
    /// schema stores names as `char(30)`, which pads them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        Restaurant::ALL
            .into_iter()
            .find(|r| r.slug() == name)
            .ok_or_else(|| UnknownRestaurant { name: name.chars().take(64).collect() })
    }
}

/// The vote count of every restaurant.
///
/// Counts only ever grow, so two snapshots taken at different moments, on
/// different replicas, combine with [`VoteCounts::merge_max`] into one that is
/// at least as new as both, whatever order they arrive in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteCounts {
    /// Votes for Outback.
    pub outback: i64,
    /// Votes for Buca di Beppo.
    pub bucadibeppo: i64,
    /// Votes for IHOP.
    pub ihop: i64,
    /// Votes for Chipotle.
    pub chipotle: i64,
}

impl VoteCounts {
    /// The count of one restaurant.
    pub const fn get(&self, r: Restaurant) -> i64 {
        match r {
            Restaurant::Outback => self.outback,
            Restaurant::Bucadibeppo => self.bucadibeppo,
            Restaurant::Ihop => self.ihop,
            Restaurant::Chipotle => self.chipotle,
        }
    }

    /// A mutable reference to one restaurant's count.
    pub fn get_mut(&mut self, r: Restaurant) -> &mut i64 {
        match r {
            Restaurant::Outback => &mut self.outback,
            Restaurant::Bucadibeppo => &mut self.bucadibeppo,
            Restaurant::Ihop => &mut self.ihop,
            Restaurant::Chipotle => &mut self.chipotle,
        }
    }

    /// The sum of all counts.
    pub const fn total(&self) -> i64 {
        self.outback + self.bucadibeppo + self.ihop + self.chipotle
    }

    /// Takes, per restaurant, the larger of the two counts. Returns whether
    /// anything changed.
    pub fn merge_max(&mut self, other: &VoteCounts) -> bool {
        let mut changed = false;
        for r in Restaurant::ALL {
            let mine = self.get_mut(r);
            if other.get(r) > *mine {
                *mine = other.get(r);
                changed = true;
            }
        }
        changed
    }

    /// The counts as `(restaurant, count)` pairs in API order.
    pub fn iter(&self) -> impl Iterator<Item = (Restaurant, i64)> + '_ {
        Restaurant::ALL.into_iter().map(|r| (r, self.get(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slug_parses_back_to_its_restaurant() {
        for r in Restaurant::ALL {
            assert_eq!(r.slug().parse::<Restaurant>(), Ok(r));
        }
    }

    #[test]
    fn padded_names_from_char30_columns_parse() {
        assert_eq!("ihop                          ".parse(), Ok(Restaurant::Ihop));
    }

    #[test]
    fn unknown_names_are_rejected_with_the_list_of_valid_ones() {
        let err = "pizzahut".parse::<Restaurant>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown restaurant 'pizzahut'; expected one of outback, bucadibeppo, ihop, chipotle"
        );
    }

    #[test]
    fn names_are_case_sensitive_like_the_original() {
        assert!("IHOP".parse::<Restaurant>().is_err());
    }

    #[test]
    fn card_order_and_api_order_hold_the_same_four() {
        let mut a = Restaurant::ALL;
        let mut b = Restaurant::CARD_ORDER;
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn merge_takes_the_larger_count_per_restaurant() {
        let mut a = VoteCounts { outback: 5, ihop: 1, ..Default::default() };
        let b = VoteCounts { outback: 3, ihop: 4, chipotle: 2, ..Default::default() };
        assert!(a.merge_max(&b));
        assert_eq!(a, VoteCounts { outback: 5, bucadibeppo: 0, ihop: 4, chipotle: 2 });
        assert!(!a.merge_max(&b), "merging the same snapshot twice changes nothing");
        assert_eq!(a.total(), 11);
    }
}
