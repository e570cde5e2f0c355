//! Board wrappers for open-source FPGA boards: a top with a UART and LEDs around
//! `kvpq_board_top`, its pin constraints, and the PLL that makes the core clock.

pub mod pll;
pub mod ulx3s;
