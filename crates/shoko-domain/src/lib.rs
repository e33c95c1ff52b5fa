//! Shoko's domain: the catalogue and circulation models and their rules. No IO, no clock, no SQL, no HTTP.
//!
//! Values arrive here already parsed into types ([`Barcode`], [`CampusCode`],
//! [`Isbn`] …); past this edge nothing is validated again.

pub mod access;
pub mod acquisitions;
pub mod capacity;
pub mod catalogue;
pub mod circulation;
pub mod codes;
pub mod isbn;
pub mod items;

pub use access::{Actor, Denied, Permission, Role};
pub use catalogue::{BibSummary, Format, MatchKeys};
pub use codes::{
    Barcode, CampusCode, CodeError, ItemTypeCode, LocationCode, PatronCategoryCode, Username,
};
pub use isbn::{Isbn, Issn};
pub use items::{ItemFieldMapping, ItemSpec, ItemStatus};
