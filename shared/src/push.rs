//! Push: rows for a push source (or one view) written to the online store, newest event wins.
//! (Filled in by the push work.)
