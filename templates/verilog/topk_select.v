{{ header }}
// topk_select: exact top-k for large k by threshold selection (docs/design.md section 5).
//   scan    : the LANES scores of every cycle are written to an on-chip score buffer.
//   select  : {{ digits }} pass(es) over the buffer find T, the count-th largest score, {{ radix_bits }} bit(s) per
//             pass: 2^R-1 candidate thresholds per lane are counted in parallel.
//   emit    : one pass collects every score > T and the first (count - #(> T)) scores == T
//             in index order (so ties keep the smaller index) into a sort buffer.
//   sort    : a stable LSD radix sort ({{ digits }} pass(es) of {{ radix_bits }} bit(s)) puts them in descending
//             score order; the start of every bin of every digit is counted while collecting.
//   output  : the sorted results stream out, one per cycle.
// Scores are compared as keys: sign bit flipped (unsigned order), padded to DIGITS*R bits.
`default_nettype none

module topk_select (
{% include "verilog/topk_ports.vh" %}
);
    localparam LANES  = {{ lanes }};
    localparam SW     = {{ score_bits }};     // score (signed)
    localparam IDX    = {{ index_w }};     // token index
    localparam KW     = {{ k_w }};     // k
    localparam CNT    = {{ count_w }};     // token counts
    localparam CTR    = {{ ctr_w }};     // read counters (room for one word past max_tokens)
    localparam R      = {{ radix_bits }};      // bits per digit
    localparam DIGITS = {{ digits }};      // digits per key
    localparam KEYW   = DIGITS * R; // key width
    localparam BINS   = {{ bins }};     // 2^R
    localparam WORDS  = {{ words }};   // score buffer words of LANES scores
    localparam WW     = {{ word_w }};     // word address
    localparam ITEM   = KEYW + IDX; // sort buffer entry: {key, index}
    localparam SLOTS  = {{ slots }};     // sort buffer entries per bank: k_max = {{ k_max }}, rounded up to a power of two
    localparam LW     = {{ lw }};      // lanes counter

    localparam [CTR-1:0] LANES_C = {{ ctr_w }}'d{{ lanes }};

    localparam [2:0] P_IDLE   = 3'd0,
                     P_START  = 3'd6,   // the query's count and token total are registered
                     P_SELECT = 3'd1,   // count keys against candidate thresholds
                     P_DECIDE = 3'd2,   // one more digit of T
                     P_EMIT   = 3'd3,   // collect the top set
                     P_SORT   = 3'd4,   // radix sort passes
                     P_OUTPUT = 3'd5;   // stream results
    localparam [1:0] E_READ   = 2'd0,   // read the next word (or finish)
                     E_WAIT   = 2'd1,   // the word is on its way through the read registers
                     E_LATCH  = 2'd2,   // keep the lanes at or above T
                     E_PICK   = 2'd3;   // one lane per cycle

    reg  [2:0]                phase_q;
    reg  [1:0]                emit_q;
    reg  [KW-1:0]             count_q;

    // Score (signed) -> key (unsigned order, padded at the bottom).
    function [KEYW-1:0] key_of;
        input [SW-1:0] s;
        begin
            key_of = {{ key_of_expr }};
        end
    endfunction

    // Sort bin of a key for a digit (0 = least significant): the complement of the digit, so
    // that larger scores come first.
    // Written as a mux over constant slices: a variable part-select of a wide vector can reach
    // synthesis as a shifter with a multiplied index (whole multipliers on ECP5).
    function [R-1:0] bin_of;
        input [KEYW-1:0] key;
        input [{{ digit_w - 1 }}:0] digit;
        integer d;
        begin
            bin_of = ~key[R-1:0];
            for (d = 1; d < DIGITS; d = d + 1) begin
                if (digit == d[{{ digit_w - 1 }}:0]) bin_of = ~key[R*d +: R];
            end
        end
    endfunction

    // ---------------------------------------------------------------- score buffer
    reg  [LANES*SW-1:0]       score_mem [0:WORDS-1];
    reg  [WW-1:0]             wr_word_q;
    reg  [CNT-1:0]            n_q;            // tokens received
    reg  [CNT-1:0]            in_popcount;
    integer lp;

    always @* begin
        in_popcount = {CNT{1'b0}};
        for (lp = 0; lp < LANES; lp = lp + 1) begin
            // Unconditional adds of single bits: Yosys turns them into one adder tree, where
            // conditional increments stay a chain as long as the lane count.
            in_popcount = in_popcount + {% if count_w > 1 %}{ {{ count_w - 1 }}'d0, in_valid[lp] }{% else %}in_valid[lp]{% endif %};
        end
    end

    always @(posedge clk) begin
        if (|in_valid) score_mem[wr_word_q] <= in_score;
    end

    always @(posedge clk) begin
        if (rst || clear) begin
            wr_word_q <= {WW{1'b0}};
            n_q       <= {CNT{1'b0}};
        end else if (|in_valid) begin
            wr_word_q <= wr_word_q + {{ word_w }}'d1;
            n_q       <= n_q + in_popcount;
        end
    end
    wire [{{ lanes * index_w - 1 }}:0]             unused_in_index = in_index;  // indices follow from buffer positions

    // ---------------------------------------------------------------- buffer reads
    // Block RAM outputs go straight into registers (no logic behind them): an ECP5 DP16KD
    // without its output register needs ~6 ns from clock to data.
    //   issue: rd_word_q, word_mask  ->  s1: rd_data_q (RAM)  ->  s2: data2_q (fabric)
    reg  [WW-1:0]             rd_word_q;
    reg  [CTR-1:0]            rd_left_q;      // tokens from word rd_word_q on
    reg  [CTR-1:0]            rd_next_base_q; // first token of word rd_word_q
    reg  [CTR-1:0]            rd_base_q;      // first token of the word in flight (emit)
    reg  [LANES*SW-1:0]       rd_data_q;
    reg  [LANES-1:0]          mask1_q;
    reg                       v1_q;
    reg  [LANES*SW-1:0]       data2_q;
    reg  [LANES-1:0]          mask2_q;
    reg                       v2_q;
    reg  [LANES-1:0]          word_mask;
    reg                       rd_more_q;      // rd_left_q != 0, kept as a register
    wire                      rd_more = rd_more_q;
    wire                      rd_issue;       // a word is read this cycle
    integer lm;

    always @* begin
        for (lm = 0; lm < LANES; lm = lm + 1) begin
            word_mask[lm] = (rd_left_q > lm[CTR-1:0]);
        end
    end

    always @(posedge clk) begin
        rd_data_q <= score_mem[rd_word_q];
        data2_q   <= rd_data_q;
        mask1_q   <= word_mask;
        mask2_q   <= mask1_q;
    end

    // ---------------------------------------------------------------- select: find T
    //   s3: ge_q (every lane against every candidate)  ->  s4: hits_q  ->  s5: cand_count_q
    reg  [{{ digit_w - 1 }}:0]               digit_q;        // pass number, most significant digit first
    reg  [KEYW-1:0]           prefix_q;       // digits of T found so far
    reg  [CNT-1:0]            above_q;        // keys above the current bucket
    reg  [BINS*KEYW-1:0]      cand_q;         // [v]: prefix with digit digit_q = v (v >= 1)
    reg  [BINS*LANES-1:0]     ge_q;           // [v][l]: lane l's key >= candidate v
    reg  [BINS*LW-1:0]        hits_q;         // [v]: lanes at or above candidate v
    reg  [BINS*CNT-1:0]       cand_count_q;   // [v]: keys >= candidate v
    reg  [BINS-1:0]           ok_q;           // [v]: candidate v still has count keys at or above
    reg                       v3_q, v4_q;
    reg  [BINS*KEYW-1:0]      cand_all;
    reg  [BINS*LW-1:0]        hits_all;
    reg  [LW-1:0]             hits;
    integer vc, lc, dc;

    // The candidates of this pass; registered, as prefix_q and digit_q only change between passes.
    always @* begin
        for (vc = 0; vc < BINS; vc = vc + 1) begin
            cand_all[vc*KEYW +: KEYW] = prefix_q;
            for (dc = 0; dc < DIGITS; dc = dc + 1) begin
                if (digit_q == dc[{{ digit_w - 1 }}:0]) cand_all[vc*KEYW + KEYW-R*(dc+1) +: R] = vc[R-1:0];
            end
        end
        for (vc = 0; vc < BINS; vc = vc + 1) begin
            hits = {LW{1'b0}};
            for (lc = 0; lc < LANES; lc = lc + 1) begin
                hits = hits + {% if lw > 1 %}{ {{ lw - 1 }}'d0, ge_q[vc*LANES + lc] }{% else %}ge_q[vc*LANES + lc]{% endif %};
            end
            hits_all[vc*LW +: LW] = hits;
        end
    end

    always @(posedge clk) begin
        cand_q <= cand_all;
        hits_q <= hits_all;
        for (vc = 0; vc < BINS; vc = vc + 1) begin
            for (lc = 0; lc < LANES; lc = lc + 1) begin
                ge_q[vc*LANES + lc] <= mask2_q[lc] && (key_of(data2_q[lc*SW +: SW]) >= cand_q[vc*KEYW +: KEYW]);
            end
        end
    end

    // Counts fall as v rises, so the ok bits are a run from v = 0 (always ok) up to the digit
    // of T; the keys above its bucket are the count of the first v that is not ok.
    wire [CNT-1:0]            count_ext = {{ count_ext_expr }};
    reg  [R-1:0]              best_v;
    reg  [CNT-1:0]            best_above;
    reg  [KEYW-1:0]           prefix_next;
    integer vb, db;
    always @* begin
        best_v     = {R{1'b0}};
        best_above = above_q;
        for (vb = 1; vb < BINS; vb = vb + 1) begin
            if (ok_q[vb]) best_v = vb[R-1:0];
        end
        for (vb = BINS - 1; vb >= 1; vb = vb - 1) begin
            if (!ok_q[vb]) best_above = cand_count_q[vb*CNT +: CNT];
        end
        prefix_next = prefix_q;
        for (db = 0; db < DIGITS; db = db + 1) begin
            if (digit_q == db[{{ digit_w - 1 }}:0]) prefix_next[KEYW-R*(db+1) +: R] = best_v;
        end
    end

    // ---------------------------------------------------------------- emit: collect the top set
    // A word is read, waits two cycles for its registered data, is latched (lanes at or above
    // T and above T), then one lane is looked at per cycle; a taken lane is written one cycle
    // later (w_*), together with the sort's bin starts.
    reg  [KEYW-1:0]           thresh_q;       // key of T
    reg  [KW-1:0]             ties_left_q;    // keys == T still to take
    reg  [LANES-1:0]          pick_q;         // lanes of the latched word still to look at
    reg  [LANES-1:0]          gt_q;           // lanes of the latched word above T
    reg  [LANES*SW-1:0]       pick_data_q;
    reg  [CTR-1:0]            pick_base_q;
    reg  [LANES-1:0]          at_or_above;
    reg  [LANES-1:0]          above_t;
    reg  [LANES-1:0]          pick_onehot;
    reg  [{{ lane_w - 1 }}:0]               pick_lane;
    reg  [SW-1:0]             pick_score;
    reg                       pick_gt;
    reg                       pick_any;
    integer la, lq;
    always @* begin
        for (la = 0; la < LANES; la = la + 1) begin
            at_or_above[la] = mask2_q[la] && (key_of(data2_q[la*SW +: SW]) >= thresh_q);
            above_t[la]     = mask2_q[la] && (key_of(data2_q[la*SW +: SW]) > thresh_q);
        end
        pick_onehot = {LANES{1'b0}};
        pick_lane   = {{ lane_w }}'d0;
        pick_score  = pick_data_q[SW-1:0];
        pick_gt     = gt_q[0];
        pick_any    = 1'b0;
        for (lq = LANES - 1; lq >= 0; lq = lq - 1) begin
            if (pick_q[lq]) begin
                pick_onehot = {LANES{1'b0}};
                pick_onehot[lq] = 1'b1;
                pick_lane  = lq[{{ lane_w - 1 }}:0];
                pick_score = pick_data_q[lq*SW +: SW];
                pick_gt    = gt_q[lq];
                pick_any   = 1'b1;
            end
        end
    end
    wire                      pick_take  = (phase_q == P_EMIT) && (emit_q == E_PICK) && pick_any
                                           && (pick_gt || (ties_left_q != {KW{1'b0}}));
    wire [CTR-1:0]            pick_token = pick_base_q + {{ pick_lane_ext }};
    wire                      unused_pick_token_high = ^pick_token[CTR-1:IDX];  // tokens < max_tokens
    reg                       w_take_q;
    reg  [ITEM-1:0]           w_item_q;
    wire [KEYW-1:0]           w_key = w_item_q[ITEM-1:IDX];

    // ---------------------------------------------------------------- sort buffer
    // One RAM of two banks: the emit pass fills bank 0; each sort pass reads one bank and
    // scatters into the other.
    //   issue: rd_ptr_q  ->  s1: sb_q (RAM)  ->  s2: item2_q  ->  s3: item3_q, bin_onehot_q  ->  write
    reg  [ITEM-1:0]           sbuf [0:2*SLOTS-1];
    reg                       src_b_q;        // the items to read live in bank 1
    reg  [KW-1:0]             wr_ptr_q;
    reg  [KW-1:0]             rd_ptr_q;
    reg  [ITEM-1:0]           sb_q;
    reg  [ITEM-1:0]           item2_q;
    reg  [ITEM-1:0]           item3_q;
    reg  [BINS-1:0]           bin_onehot_q;
    reg                       sv1_q, sv2_q, sv3_q;
    reg  [DIGITS*BINS*KW-1:0] start_q;        // per digit, per bin: items in smaller bins
    reg  [BINS*KW-1:0]        offset_q;       // next scatter position of each bin
    reg  [{{ digit_w - 1 }}:0]               sort_digit_q;   // 0 = least significant
    reg                       sort_loaded_q;  // offsets of this pass are loaded
    wire                      sort_issue = (phase_q == P_SORT) && sort_loaded_q && (rd_ptr_q != count_q);
    wire                      sort_busy  = sv1_q || sv2_q || sv3_q;
    wire [R-1:0]              item2_bin  = bin_of(item2_q[ITEM-1:IDX], sort_digit_q);
    reg  [KW-1:0]             rd_offset;
    integer bo;
    always @* begin
        rd_offset = {KW{1'b0}};
        for (bo = 0; bo < BINS; bo = bo + 1) begin
            rd_offset = rd_offset | (offset_q[bo*KW +: KW] & {KW{bin_onehot_q[bo]}});
        end
    end

    // Output: the register behind the RAM loads when the consumer has room.
    reg                       out_valid_q;
    reg                       out_last_q;
    reg  [ITEM-1:0]           out_item_q;
    reg                       out_primed_q;   // sb_q holds item rd_ptr_q
    wire                      out_load  = (phase_q == P_OUTPUT) && out_primed_q && (rd_ptr_q != count_q)
                                          && (!out_valid_q || res_ready);
    wire                      out_fire  = res_valid && res_ready;

    // Read and write ports. Addresses: pointers run to count (KW bits), slots stop at KMAX - 1.
    // Output looks one item ahead so that sb_q is always item rd_ptr_q; the sort reads rd_ptr_q.
    wire [KW-1:0]             rd_ptr_inc = rd_ptr_q + {{ k_w }}'d1;
    wire [KW-1:0]             rd_addr   = out_load ? rd_ptr_inc : rd_ptr_q;
    wire [{{ addr_w - 1 }}:0]               rd_slot   = rd_addr[{{ addr_w - 1 }}:0];
    wire [{{ addr_w - 1 }}:0]               wr_slot   = wr_ptr_q[{{ addr_w - 1 }}:0];
    wire [{{ addr_w - 1 }}:0]               sort_slot = rd_offset[{{ addr_w - 1 }}:0];
{%- if k_w > addr_w %}
    wire                      unused_ptr_high = wr_ptr_q[KW-1] ^ rd_addr[KW-1] ^ rd_offset[KW-1];
{%- endif %}
    wire                      sb_we    = w_take_q || sv3_q;
    wire [{{ addr_w }}:0]               sb_waddr = w_take_q ? { 1'b0, wr_slot } : { !src_b_q, sort_slot };
    wire [ITEM-1:0]           sb_wdata = w_take_q ? w_item_q : item3_q;

    always @(posedge clk) begin
        if (sb_we) sbuf[sb_waddr] <= sb_wdata;
        sb_q <= sbuf[{ src_b_q, rd_slot }];
    end

    always @(posedge clk) begin
        item2_q      <= sb_q;
        item3_q      <= item2_q;
        bin_onehot_q <= {{ bins }}'d1 << item2_bin;
    end

    // Start offsets of the digit about to be sorted. They are exclusive prefix sums of its
    // histogram, kept up to date while collecting, so no adder chain sits in front of a pass.
    reg  [BINS*KW-1:0]        digit_starts;
    integer bn;
    always @* begin
        digit_starts = start_q[BINS*KW-1:0];
        for (bn = 1; bn < DIGITS; bn = bn + 1) begin
            if (sort_digit_q == bn[{{ digit_w - 1 }}:0]) digit_starts = start_q[bn*BINS*KW +: BINS*KW];
        end
    end

    // ---------------------------------------------------------------- output
    wire [KEYW-1:0]           out_key = out_item_q[ITEM-1:IDX];
    assign res_valid = (phase_q == P_OUTPUT) && out_valid_q;
    assign res_index = out_item_q[IDX-1:0];
    assign res_score = {{ score_of_key_expr }};
{%- if key_pad > 0 %}
    wire                      unused_out_pad = ^out_key[{{ key_pad - 1 }}:0];
{%- endif %}
    assign res_last  = out_last_q;

    // ---------------------------------------------------------------- control
    assign rd_issue = rd_more && ((phase_q == P_SELECT) || ((phase_q == P_EMIT) && (emit_q == E_READ)));
    integer vh, bh;
    always @(posedge clk) begin
        done     <= 1'b0;
        w_take_q <= 1'b0;
        v1_q     <= rd_issue;
        v2_q     <= v1_q;
        v3_q     <= v2_q && (phase_q == P_SELECT);
        v4_q     <= v3_q;
        sv1_q    <= sort_issue;
        sv2_q    <= sv1_q;
        sv3_q    <= sv2_q;
        if (rd_issue) begin
            rd_word_q      <= rd_word_q + {{ word_w }}'d1;
            rd_next_base_q <= rd_next_base_q + LANES_C;
            rd_left_q      <= (rd_left_q > LANES_C) ? rd_left_q - LANES_C : {CTR{1'b0}};
            rd_more_q      <= (rd_left_q > LANES_C);
        end
        if (v4_q) begin
            for (vh = 1; vh < BINS; vh = vh + 1) begin
                cand_count_q[vh*CNT +: CNT] <= cand_count_q[vh*CNT +: CNT] + {{ hits_ext }};
            end
        end
        if (w_take_q) begin
            wr_ptr_q <= wr_ptr_q + {{ k_w }}'d1;
            for (vh = 0; vh < DIGITS; vh = vh + 1) begin
                for (bh = 0; bh < BINS; bh = bh + 1) begin
                    // An item in bin c moves the start of every bin after c.
                    if (bin_of(w_key, vh[{{ digit_w - 1 }}:0]) < bh[R-1:0]) begin
                        start_q[(vh*BINS + bh)*KW +: KW] <= start_q[(vh*BINS + bh)*KW +: KW] + {{ k_w }}'d1;
                    end
                end
            end
        end
        if (sv3_q) begin
            for (bh = 0; bh < BINS; bh = bh + 1) begin
                if (bin_onehot_q[bh]) offset_q[bh*KW +: KW] <= rd_offset + {{ k_w }}'d1;
            end
        end
        if (sort_issue || out_load) rd_ptr_q <= rd_ptr_inc;
        if (rst || clear) begin
            phase_q     <= P_IDLE;
            v1_q        <= 1'b0;
            v2_q        <= 1'b0;
            v3_q        <= 1'b0;
            v4_q        <= 1'b0;
            sv1_q       <= 1'b0;
            sv2_q       <= 1'b0;
            sv3_q       <= 1'b0;
            w_take_q    <= 1'b0;
            out_valid_q <= 1'b0;
            rd_left_q   <= {CTR{1'b0}};
            rd_more_q   <= 1'b0;
        end else begin
            case (phase_q)
                P_IDLE: if (flush) begin
                    count_q <= count;
                    phase_q <= P_START;
                end
                P_START: begin
                    // Decided from registers: flush and count arrive from the scanner's
                    // pipeline, far from this unit's control.
                    if (count_q == {KW{1'b0}}) begin
                        done    <= 1'b1;
                        phase_q <= P_IDLE;
                    end else begin
                        phase_q        <= P_SELECT;
                        digit_q        <= {{ digit_w }}'d0;
                        prefix_q       <= {KEYW{1'b0}};
                        above_q        <= {CNT{1'b0}};
                        cand_count_q   <= {(BINS*CNT){1'b0}};
                        rd_word_q      <= {WW{1'b0}};
                        rd_left_q      <= {{ n_q_ext }};
                        rd_more_q      <= (n_q != {CNT{1'b0}});
                        rd_next_base_q <= {CTR{1'b0}};
                    end
                end
                P_SELECT: if (!rd_more && !v1_q && !v2_q && !v3_q && !v4_q) begin
                    // Pass complete: which candidates keep count keys at or above them.
                    for (vh = 1; vh < BINS; vh = vh + 1) begin
                        ok_q[vh] <= cand_count_q[vh*CNT +: CNT] >= count_ext;
                    end
                    ok_q[0] <= 1'b1;
                    phase_q <= P_DECIDE;
                end
                P_DECIDE: begin
                    // One more digit of T.
                    prefix_q       <= prefix_next;
                    above_q        <= best_above;
                    cand_count_q   <= {(BINS*CNT){1'b0}};
                    rd_word_q      <= {WW{1'b0}};
                    rd_left_q      <= {{ n_q_ext }};
                    rd_more_q      <= (n_q != {CNT{1'b0}});
                    rd_next_base_q <= {CTR{1'b0}};
                    if (digit_q == {{ digit_w }}'d{{ digits - 1 }}) begin
                        thresh_q    <= prefix_next;
                        ties_left_q <= count_q - best_above[KW-1:0];
                        wr_ptr_q    <= {KW{1'b0}};
                        start_q     <= {(DIGITS*BINS*KW){1'b0}};
                        emit_q      <= E_READ;
                        phase_q     <= P_EMIT;
                    end else begin
                        digit_q <= digit_q + {{ digit_w }}'d1;
                        phase_q <= P_SELECT;
                    end
                end
                P_EMIT: case (emit_q)
                    E_READ: if (rd_more) begin
                        rd_base_q <= rd_next_base_q;
                        emit_q    <= E_WAIT;
                    end else begin
                        sort_digit_q  <= {{ digit_w }}'d0;
                        sort_loaded_q <= 1'b0;
                        src_b_q       <= 1'b0;
                        phase_q       <= P_SORT;
                    end
                    E_WAIT: emit_q <= E_LATCH;   // the word reaches data2_q next cycle
                    E_LATCH: begin
                        pick_q      <= at_or_above;
                        gt_q        <= above_t;
                        pick_data_q <= data2_q;
                        pick_base_q <= rd_base_q;
                        emit_q      <= E_PICK;
                    end
                    default: if (pick_any) begin
                        pick_q   <= pick_q & ~pick_onehot;
                        w_take_q <= pick_take;
                        w_item_q <= { key_of(pick_score), pick_token[IDX-1:0] };
                        if (pick_take && !pick_gt) ties_left_q <= ties_left_q - {{ k_w }}'d1;
                    end else begin
                        emit_q <= E_READ;
                    end
                endcase
                P_SORT: begin
                    if (!sort_loaded_q) begin
                        // Start a pass.
                        offset_q      <= digit_starts;
                        sort_loaded_q <= 1'b1;
                        rd_ptr_q      <= {KW{1'b0}};
                    end else if (!sort_issue && !sort_busy) begin
                        // Pass done: the scattered copy becomes the source.
                        src_b_q       <= !src_b_q;
                        sort_loaded_q <= 1'b0;
                        if (sort_digit_q == {{ digit_w }}'d{{ digits - 1 }}) begin
                            rd_ptr_q     <= {KW{1'b0}};
                            out_valid_q  <= 1'b0;
                            out_primed_q <= 1'b0;
                            phase_q      <= P_OUTPUT;
                        end else begin
                            sort_digit_q <= sort_digit_q + {{ digit_w }}'d1;
                        end
                    end
                end
                P_OUTPUT: begin
                    out_primed_q <= 1'b1;   // from the second cycle on, sb_q is item rd_ptr_q
                    if (out_load) begin
                        out_item_q  <= sb_q;
                        out_valid_q <= 1'b1;
                        out_last_q  <= (rd_ptr_q == count_q - {{ k_w }}'d1);
                    end else if (out_fire) begin
                        out_valid_q <= 1'b0;
                    end
                    if (out_fire && out_last_q) begin
                        phase_q <= P_IDLE;
                        done    <= 1'b1;
                    end
                end
                default: phase_q <= P_IDLE;
            endcase
        end
    end
endmodule

`default_nettype wire
