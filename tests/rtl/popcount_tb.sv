// Checks the adder tree of the generated `popcount` (TREE = 1 simulates it) against
// $countones, at the widths the select unit uses and the odd ones around them: random words,
// sparse words, all ones and all zeros. Prints "popcount ok" or stops with $fatal.
`default_nettype none

module popcount_tb;
    reg  [335:0] x;
    wire [0:0]   y1;
    wire [1:0]   y2;
    wire [1:0]   y3;
    wire [2:0]   y5;
    wire [3:0]   y9;
    wire [5:0]   y42;
    wire [6:0]   y64;
    wire [8:0]   y336;
    wire [11:0]  y7w;   // an output wider than the tree's root
    popcount #(.W(1),   .OW(1),  .TREE(1)) u1   (.x(x[0]),     .y(y1));
    popcount #(.W(2),   .OW(2),  .TREE(1)) u2   (.x(x[1:0]),   .y(y2));
    popcount #(.W(3),   .OW(2),  .TREE(1)) u3   (.x(x[2:0]),   .y(y3));
    popcount #(.W(5),   .OW(3),  .TREE(1)) u5   (.x(x[4:0]),   .y(y5));
    popcount #(.W(9),   .OW(4),  .TREE(1)) u9   (.x(x[8:0]),   .y(y9));
    popcount #(.W(42),  .OW(6),  .TREE(1)) u42  (.x(x[41:0]),  .y(y42));
    popcount #(.W(64),  .OW(7),  .TREE(1)) u64  (.x(x[63:0]),  .y(y64));
    popcount #(.W(336), .OW(9),  .TREE(1)) u336 (.x(x),        .y(y336));
    popcount #(.W(7),   .OW(12), .TREE(1)) u7w  (.x(x[6:0]),   .y(y7w));

    integer t, w, bad;
    initial begin
        bad = 0;
        for (t = 0; t < 4000; t = t + 1) begin
            for (w = 0; w < 11; w = w + 1) x[w*32 +: 32] = $urandom;
            if (t % 3 == 0) x = x & {x[167:0], x[335:168]} & {x[83:0], x[335:84]};
            if (t == 1) x = {336{1'b1}};
            if (t == 2) x = {336{1'b0}};
            #1;
            if (32'(y1)   != $countones(x[0]))      bad = bad + 1;
            if (32'(y2)   != $countones(x[1:0]))    bad = bad + 1;
            if (32'(y3)   != $countones(x[2:0]))    bad = bad + 1;
            if (32'(y5)   != $countones(x[4:0]))    bad = bad + 1;
            if (32'(y9)   != $countones(x[8:0]))    bad = bad + 1;
            if (32'(y42)  != $countones(x[41:0]))   bad = bad + 1;
            if (32'(y64)  != ($countones(x[63:0]) & 32'd127)) bad = bad + 1;   // 64 wraps in 7 bits
            if (32'(y336) != $countones(x))         bad = bad + 1;
            if (32'(y7w)  != $countones(x[6:0]))    bad = bad + 1;
        end
        if (bad != 0) $fatal(1, "popcount: %0d mismatches", bad);
        $display("popcount ok");
        $finish;
    end
endmodule

`default_nettype wire
