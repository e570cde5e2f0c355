//! kvpq's workspace-level tests, one module per subject, in one binary; the shared helpers
//! are the `kvpq_tests` library (`tests/src/`). Knobs: docs/environment.md.

mod alveo_project;
mod cosim;
mod cosim_adversarial;
mod cosim_board;
mod cosim_kernel;
mod cosim_units;
mod ecp5_build;
mod estimates;
mod examples;
mod explore;
mod hls_csim;
mod invalid_configs;
mod properties;
mod rtl_checks;
mod rtl_snapshots;
mod runtime_board;
mod runtime_sim;
mod runtime_xrt;
