{{ header }}
// popcount: the number of set bits of x, for the select unit's counting arrays.
// Synthesis gets an adder tree whose sums widen by one bit per level (about 2W bits of adders);
// the simulation model gets $countones, one instruction per 64 bits where the tree costs an add
// per node. Yosys cannot take $countones at this size: it expands it into a full-width compare
// and a 32-bit add per input bit, and 64 of them over 336 lanes exhaust its 4 GiB. TREE = 1
// simulates the tree too (the test bench tests/rtl/counting_tb.sv checks it that way).
`default_nettype none

module popcount #(
    parameter W    = 8,   // input bits (>= 1)
    parameter OW   = 4,   // output bits (the count is truncated to them)
    parameter TREE = 0    // simulate the synthesized tree in Verilator too
) (
    input  wire [W-1:0]  x,
    output wire [OW-1:0] y
);
`ifdef VERILATOR
    localparam FAST = (TREE == 0);
`else
    localparam FAST = 0;
`endif
    localparam L = (W > 1) ? $clog2(W) : 0;   // levels above the leaves; the root has L + 1 bits

    genvar j, i;
    generate
        if (FAST) begin : g_fast
            /* verilator lint_off UNUSEDSIGNAL */
            wire [31:0] n = $countones(x);
            /* verilator lint_on UNUSEDSIGNAL */
            assign y = n[OW-1:0];
        end else begin : g_tree
            // Level j holds ceil(W / 2^j) sums of j + 1 bits: node i adds nodes 2i and 2i + 1
            // of level j - 1, or passes 2i on when it is the last one.
            for (j = 0; j <= L; j = j + 1) begin : lvl
                wire [((W + (1 << j) - 1) >> j) * (j + 1) - 1:0] s;
                for (i = 0; i < ((W + (1 << j) - 1) >> j); i = i + 1) begin : node
                    if (j == 0) begin : leaf
                        assign s[i] = x[i];
                    end else if (2 * i + 1 < ((W + (1 << (j - 1)) - 1) >> (j - 1))) begin : pair
                        assign s[i*(j+1) +: j+1] = {1'b0, lvl[j-1].s[2*i*j +: j]}
                                                 + {1'b0, lvl[j-1].s[(2*i+1)*j +: j]};
                    end else begin : single
                        assign s[i*(j+1) +: j+1] = {1'b0, lvl[j-1].s[2*i*j +: j]};
                    end
                end
            end
            if (OW <= L + 1) begin : g_cut
                /* verilator lint_off UNUSEDSIGNAL */
                wire [L:0] root = lvl[L].s;
                /* verilator lint_on UNUSEDSIGNAL */
                assign y = root[OW-1:0];
            end else begin : g_pad
                assign y = { {(OW - L - 1){1'b0}}, lvl[L].s };
            end
        end
    endgenerate
endmodule

`default_nettype wire
