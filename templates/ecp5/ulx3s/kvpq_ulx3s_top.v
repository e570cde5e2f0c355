{{ header }}
// kvpq_ulx3s_top: the accelerator on a ULX3S (LFE5U-85F). The 25 MHz oscillator feeds an
// EHXPLLL that makes the {{ clock_mhz }} MHz core clock ({{ pll_note }}); the host talks to
// kvpq_board_top's byte protocol over the FTDI UART at {{ baud }} baud ({{ clks_per_bit }} clocks per bit).
// LEDs: 0 busy, 1 PLL locked, 2 UART receive overrun (sticky), 3 heartbeat.
`default_nettype none

module kvpq_ulx3s_top (
    input  wire       clk_25mhz,
    input  wire       ftdi_txd,     // from the host
    output wire       ftdi_rxd,     // to the host
    output wire [7:0] led
);
    wire clk;
    wire locked;

    (* FREQUENCY_PIN_CLKI="25" *)
    (* FREQUENCY_PIN_CLKOP="{{ pll_out_mhz }}" *)
    (* ICP_CURRENT="12" *) (* LPF_RESISTOR="8" *) (* MFG_ENABLE_FILTEROPAMP="1" *) (* MFG_GMCREF_SEL="2" *)
    EHXPLLL #(
        .PLLRST_ENA("DISABLED"),
        .INTFB_WAKE("DISABLED"),
        .STDBY_ENABLE("DISABLED"),
        .DPHASE_SOURCE("DISABLED"),
        .OUTDIVIDER_MUXA("DIVA"),
        .OUTDIVIDER_MUXB("DIVB"),
        .OUTDIVIDER_MUXC("DIVC"),
        .OUTDIVIDER_MUXD("DIVD"),
        .CLKI_DIV({{ pll.clki_div }}),
        .CLKOP_ENABLE("ENABLED"),
        .CLKOP_DIV({{ pll.clkop_div }}),
        .CLKOP_CPHASE({{ pll.clkop_div - 1 }}),
        .CLKOP_FPHASE(0),
        .FEEDBK_PATH("CLKOP"),
        .CLKFB_DIV({{ pll.clkfb_div }})
    ) pll (
        .RST(1'b0),
        .STDBY(1'b0),
        .CLKI(clk_25mhz),
        .CLKOP(clk),
        .CLKFB(clk),
        .CLKINTFB(),
        .PHASESEL0(1'b0),
        .PHASESEL1(1'b0),
        .PHASEDIR(1'b1),
        .PHASESTEP(1'b1),
        .PHASELOADREG(1'b1),
        .PLLWAKESYNC(1'b0),
        .ENCLKOP(1'b0),
        .LOCK(locked)
    );

    // Reset held for 2^16 cycles after the PLL locks.
    reg [16:0] por_q = 17'd0;
    wire       rst = !por_q[16];
    always @(posedge clk) begin
        if (!locked) por_q <= 17'd0;
        else if (rst) por_q <= por_q + 17'd1;
    end

    wire       rx_valid, rx_ready, tx_valid, tx_ready, busy, overrun;
    wire [7:0] rx_data, tx_data;

    kvpq_uart_rx #(.CLKS_PER_BIT({{ clks_per_bit }})) uart_rx (
        .clk     (clk),
        .rst     (rst),
        .rxd     (ftdi_txd),
        .valid   (rx_valid),
        .ready   (rx_ready),
        .data    (rx_data),
        .overrun (overrun)
    );

    kvpq_board_top accel (
        .clk      (clk),
        .rst      (rst),
        .rx_valid (rx_valid),
        .rx_ready (rx_ready),
        .rx_data  (rx_data),
        .tx_valid (tx_valid),
        .tx_ready (tx_ready),
        .tx_data  (tx_data),
        .led_busy (busy)
    );

    kvpq_uart_tx #(.CLKS_PER_BIT({{ clks_per_bit }})) uart_tx (
        .clk   (clk),
        .rst   (rst),
        .valid (tx_valid),
        .ready (tx_ready),
        .data  (tx_data),
        .txd   (ftdi_rxd)
    );

    reg [25:0] beat_q = 26'd0;
    always @(posedge clk) beat_q <= beat_q + 26'd1;

    assign led = {4'd0, beat_q[25], overrun, locked, busy};
endmodule

`default_nettype wire
