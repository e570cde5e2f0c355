// Checks the networks that synthesis gets from the generated counting modules (TREE = 1
// simulates them) against what the simulation model computes, at the widths the select unit
// uses and odd ones around them: random words, sparse words, all ones and all zeros.
//   popcount:     the adder tree against $countones;
//   prefix_count: the Sklansky network against the running count (TREE = 0), and both
//                 against $countones (of the bits below each position, and of the whole).
// Prints "counting ok" or stops with $fatal.
`default_nettype none

module counting_tb;
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

    // prefix_count: each width as the network (p*) and as the running count (r*).
    wire [336*9-1:0] p336, r336;
    wire [42*6-1:0]  p42,  r42;
    wire [5*3-1:0]   p5,   r5;
    wire [3*5-1:0]   p3w,  r3w;   // counts wider than the network's root
    wire [0:0]       p1,   r1;
    wire [8:0]       pn336, rn336;
    wire [5:0]       pn42,  rn42;
    wire [2:0]       pn5,   rn5;
    wire [4:0]       pn3w,  rn3w;
    wire [0:0]       pn1,   rn1;
    prefix_count #(.W(336), .OW(9), .TREE(1)) q336 (.x(x),       .y(p336), .n(pn336));
    prefix_count #(.W(336), .OW(9), .TREE(0)) s336 (.x(x),       .y(r336), .n(rn336));
    prefix_count #(.W(42),  .OW(6), .TREE(1)) q42  (.x(x[41:0]), .y(p42),  .n(pn42));
    prefix_count #(.W(42),  .OW(6), .TREE(0)) s42  (.x(x[41:0]), .y(r42),  .n(rn42));
    prefix_count #(.W(5),   .OW(3), .TREE(1)) q5   (.x(x[4:0]),  .y(p5),   .n(pn5));
    prefix_count #(.W(5),   .OW(3), .TREE(0)) s5   (.x(x[4:0]),  .y(r5),   .n(rn5));
    prefix_count #(.W(3),   .OW(5), .TREE(1)) q3w  (.x(x[2:0]),  .y(p3w),  .n(pn3w));
    prefix_count #(.W(3),   .OW(5), .TREE(0)) s3w  (.x(x[2:0]),  .y(r3w),  .n(rn3w));
    prefix_count #(.W(1),   .OW(1), .TREE(1)) q1   (.x(x[0]),    .y(p1),   .n(pn1));
    prefix_count #(.W(1),   .OW(1), .TREE(0)) s1   (.x(x[0]),    .y(r1),   .n(rn1));

    integer t, w, bad, i;
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
            if (p336 != r336 || p42 != r42 || p5 != r5 || p3w != r3w || p1 != r1) bad = bad + 1;
            if (pn336 != rn336 || pn42 != rn42 || pn5 != rn5 || pn3w != rn3w || pn1 != rn1) bad = bad + 1;
            if (32'(rn336) != $countones(x) || 32'(rn42) != $countones(x[41:0])
                || 32'(rn5) != $countones(x[4:0]) || 32'(rn3w) != $countones(x[2:0])
                || 32'(rn1) != $countones(x[0])) bad = bad + 1;
            for (i = 0; i < 336; i = i + 1) begin
                if (32'(r336[i*9 +: 9]) != $countones(x & ((336'd1 << i) - 336'd1))) bad = bad + 1;
            end
        end
        if (bad != 0) $fatal(1, "counting: %0d mismatches", bad);
        $display("counting ok");
        $finish;
    end
endmodule

`default_nettype wire
