{{ header }}
// kvpq_uart_tx: 8N1 UART transmitter, CLKS_PER_BIT clocks per bit; takes one byte at a time
// from a valid/ready stream.
`default_nettype none

module kvpq_uart_tx #(
    parameter CLKS_PER_BIT = 200
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       valid,
    output wire       ready,
    input  wire [7:0] data,
    output wire       txd
);
    localparam          CW   = $clog2(CLKS_PER_BIT + 1);
    localparam [CW-1:0] LAST = CLKS_PER_BIT - 1;
    localparam [CW-1:0] ONE  = 1;
    reg [9:0]    frame_q;          // stop, data (LSB first), start; shifted out from bit 0
    reg [3:0]    left_q;           // bits still to send
    reg [CW-1:0] count_q;

    assign ready = (left_q == 4'd0);
    assign txd   = (left_q == 4'd0) ? 1'b1 : frame_q[0];

    always @(posedge clk) begin
        if (rst) begin
            frame_q <= 10'h3ff;
            left_q  <= 4'd0;
            count_q <= {CW{1'b0}};
        end else if (left_q == 4'd0) begin
            if (valid) begin
                frame_q <= {1'b1, data, 1'b0};
                left_q  <= 4'd10;
                count_q <= LAST;
            end
        end else if (count_q != {CW{1'b0}}) begin
            count_q <= count_q - ONE;
        end else begin
            count_q <= LAST;
            frame_q <= {1'b1, frame_q[9:1]};
            left_q  <= left_q - 4'd1;
        end
    end
endmodule

`default_nettype wire
