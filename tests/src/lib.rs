//! End-to-end tests of ViRL Studio live in `tests/tests/`; they run the real
//! `virl` program (this package's `virl-e2e` binary) as a user would.
