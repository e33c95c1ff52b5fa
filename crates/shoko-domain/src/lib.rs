//! Shoko's domain: the catalogue model and its rules. No IO, no clock, no SQL, no HTTP.
//!
//! Values arrive here already parsed into types ([`Barcode`], [`CampusCode`],
//! [`Isbn`] …); past this edge nothing is validated again.

pub mod catalogue;
pub mod codes;
pub mod isbn;
pub mod items;

pub use catalogue::{BibSummary, Format, MatchKeys};
pub use codes::{Barcode, CampusCode, CodeError, ItemTypeCode, LocationCode};
pub use isbn::{Isbn, Issn};
pub use items::{ItemFieldMapping, ItemSpec, ItemStatus};
