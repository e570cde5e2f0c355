{{ header }}
// kvpq_uart_rx: 8N1 UART receiver, CLKS_PER_BIT clocks per bit. Each received byte is held
// until taken (valid/ready); a byte that arrives while one is held is dropped and sets
// `overrun` (sticky until reset), so a host that paces too fast sees it on an LED.
`default_nettype none

module kvpq_uart_rx #(
    parameter CLKS_PER_BIT = 200
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       rxd,
    output reg        valid,
    input  wire       ready,
    output reg  [7:0] data,
    output reg        overrun
);
    localparam          CW   = $clog2(CLKS_PER_BIT + 1);
    localparam [CW-1:0] HALF = CLKS_PER_BIT / 2;
    localparam [CW-1:0] LAST = CLKS_PER_BIT - 1;
    localparam [CW-1:0] ONE  = 1;
    reg [2:0]    sync_q;           // metastability filter, then edge history
    reg          busy_q;
    reg [CW-1:0] count_q;          // clocks to the next sample point
    reg [3:0]    bit_q;            // 0: start bit, 1..8: data, 9: stop bit
    reg [7:0]    shift_q;
    wire         rx = sync_q[2];

    always @(posedge clk) begin
        sync_q <= {sync_q[1:0], rxd};
        if (valid && ready) valid <= 1'b0;
        if (rst) begin
            sync_q  <= 3'b111;
            busy_q  <= 1'b0;
            valid   <= 1'b0;
            overrun <= 1'b0;
            data    <= 8'd0;
            count_q <= {CW{1'b0}};
            bit_q   <= 4'd0;
            shift_q <= 8'd0;
        end else if (!busy_q) begin
            if (!rx) begin                              // start bit: sample mid-bit
                busy_q  <= 1'b1;
                bit_q   <= 4'd0;
                count_q <= HALF;
            end
        end else if (count_q != {CW{1'b0}}) begin
            count_q <= count_q - ONE;
        end else begin
            count_q <= LAST;
            bit_q   <= bit_q + 4'd1;
            if (bit_q == 4'd0) begin
                if (rx) busy_q <= 1'b0;                 // glitch, not a start bit
            end else if (bit_q <= 4'd8) begin
                shift_q <= {rx, shift_q[7:1]};          // LSB first
            end else begin
                busy_q <= 1'b0;
                if (rx) begin                           // valid stop bit
                    if (valid && !ready) overrun <= 1'b1;
                    else begin
                        valid <= 1'b1;
                        data  <= shift_q;
                    end
                end
            end
        end
    end
endmodule

`default_nettype wire
