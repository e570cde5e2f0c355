{{ header }}
// prefix_count: for every bit i of x, the number of set bits below it (an exclusive prefix
// count), and the number of set bits of x, for the select unit's tie ranks and its result
// picker.
// Synthesis gets a Sklansky prefix network: log2(W) levels whose sums widen by one bit per
// level, where a running count is a chain of W adders that no clock reaches at hundreds of
// lanes (and whose depth exhausts the call stack of the WebAssembly Yosys's ABC9 export).
// The simulation model gets the running count, one add per bit where the network costs
// log2(W). TREE = 1 simulates the network too (tests/rtl/counting_tb.sv checks it that way).
`default_nettype none

module prefix_count #(
    parameter W    = 8,   // input bits (>= 1)
    parameter OW   = 4,   // bits of each count: enough for W - 1
    parameter TREE = 0    // simulate the synthesized network in Verilator too
) (
    input  wire [W-1:0]    x,
    output wire [W*OW-1:0] y,  // y[i*OW +: OW]: set bits of x[i-1:0]
    output wire [OW-1:0]   n   // set bits of x (truncated to OW bits)
);
`ifdef VERILATOR
    localparam FAST = (TREE == 0);
`else
    localparam FAST = 0;
`endif
    localparam L = (W > 1) ? $clog2(W) : 0;   // levels; level L holds inclusive counts of L + 1 bits

    genvar d, i;
    generate
        if (FAST) begin : g_fast
            localparam [OW-1:0] ONE = 1;
            reg  [W*OW-1:0] acc;
            reg  [OW-1:0]   run;
            integer bit_i;
            always @* begin
                run = {OW{1'b0}};
                for (bit_i = 0; bit_i < W; bit_i = bit_i + 1) begin
                    acc[bit_i*OW +: OW] = run;
                    run = run + (x[bit_i] ? ONE : {OW{1'b0}});
                end
            end
            assign y = acc;
            assign n = run;
        end else begin : g_tree
            // Level d holds, for every bit, the count of the set bits from the start of its
            // block of 2^d bits up to it (d + 1 bits): the upper half of each block adds the
            // lower half's last count.
            for (d = 0; d <= L; d = d + 1) begin : lvl
                wire [W*(d+1)-1:0] s;
                for (i = 0; i < W; i = i + 1) begin : node
                    if (d == 0) begin : leaf
                        assign s[i] = x[i];
                    end else if ((i % (1 << d)) >= (1 << (d - 1))) begin : add
                        assign s[i*(d+1) +: d+1] =
                            {1'b0, lvl[d-1].s[i*d +: d]}
                            + {1'b0, lvl[d-1].s[((i / (1 << d)) * (1 << d) + (1 << (d - 1)) - 1)*d +: d]};
                    end else begin : keep
                        assign s[i*(d+1) +: d+1] = {1'b0, lvl[d-1].s[i*d +: d]};
                    end
                end
            end
            // Exclusive: bit i gets the inclusive count of bit i - 1; the last bit's
            // inclusive count is the total.
            assign y[OW-1:0] = {OW{1'b0}};
            for (i = 1; i <= W; i = i + 1) begin : out
                wire [OW-1:0] c;
                if (OW <= L + 1) begin : g_cut
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire [L:0] count = lvl[L].s[(i-1)*(L+1) +: L+1];
                    /* verilator lint_on UNUSEDSIGNAL */
                    assign c = count[OW-1:0];
                end else begin : g_pad
                    assign c = { {(OW - L - 1){1'b0}}, lvl[L].s[(i-1)*(L+1) +: L+1] };
                end
                if (i < W) begin : g_rank
                    assign y[i*OW +: OW] = c;
                end else begin : g_total
                    assign n = c;
                end
            end
        end
    endgenerate
endmodule

`default_nettype wire
