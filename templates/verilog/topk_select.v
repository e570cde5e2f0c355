{{ header }}
// topk_select: exact top-k for large k by threshold selection (DESIGN.md section 5).
//   scan    : the LANES scores of every cycle are written to an on-chip score buffer.
//   select  : {{ digits }} pass(es) over the buffer find T, the count-th largest score, {{ radix_bits }} bit(s) per
//             pass: 2^R-1 candidate thresholds per lane are counted in parallel.
//   emit    : one pass collects every score > T and the first (count - #(> T)) scores == T
//             in index order (so ties keep the smaller index) into a sort buffer.
//   sort    : a stable LSD radix sort ({{ digits }} pass(es) of {{ radix_bits }} bit(s)) puts them in descending
//             score order; its digit histograms are counted while collecting.
//   output  : the sorted results stream out, one per cycle.
// Scores are compared as keys: sign bit flipped (unsigned order), padded to DIGITS*R bits.
`default_nettype none

module topk_select (
{% include "verilog/topk_ports.vh" %}
);
    localparam LANES  = {{ lanes }};
    localparam KMAX   = {{ k_max }};
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

    localparam [CTR-1:0] LANES_C = {{ ctr_w }}'d{{ lanes }};

    localparam [2:0] P_IDLE   = 3'd0,
                     P_SELECT = 3'd1,   // find T, one digit per pass
                     P_EMIT   = 3'd2,   // collect the top set
                     P_SORT   = 3'd3,   // radix sort passes
                     P_OUTPUT = 3'd4;   // stream results
    localparam [1:0] E_READ   = 2'd0,   // read the next word (or finish)
                     E_LATCH  = 2'd1,   // keep the lanes at or above T
                     E_PICK   = 2'd2;   // one lane per cycle

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
    function [R-1:0] bin_of;
        input [KEYW-1:0] key;
        input [{{ digit_w - 1 }}:0] digit;
        begin
            bin_of = ~key[R*digit +: R];
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
            if (in_valid[lp]) in_popcount = in_popcount + {{ count_w }}'d1;
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
    // Tokens including this cycle's group: flush arrives with the query's last scores.
    wire [CNT-1:0]            n_now = n_q + in_popcount;

    // ---------------------------------------------------------------- buffer reads
    // rd_data_q is word rd_word_q - 1; rd_mask_q its valid lanes, rd_base_q its first token.
    reg  [WW-1:0]             rd_word_q;
    reg  [CTR-1:0]            rd_left_q;      // tokens from word rd_word_q on
    reg  [CTR-1:0]            rd_next_base_q; // first token of word rd_word_q
    reg  [LANES*SW-1:0]       rd_data_q;
    reg  [LANES-1:0]          rd_mask_q;
    reg  [CTR-1:0]            rd_base_q;
    reg                       rd_valid_q;
    reg  [LANES-1:0]          word_mask;
    wire                      rd_more = (rd_left_q != {CTR{1'b0}});
    integer lm;

    always @* begin
        for (lm = 0; lm < LANES; lm = lm + 1) begin
            word_mask[lm] = (rd_left_q > lm[CTR-1:0]);
        end
    end

    // ---------------------------------------------------------------- select: find T
    reg  [{{ digit_w - 1 }}:0]               digit_q;        // pass number, most significant digit first
    reg  [KEYW-1:0]           prefix_q;       // digits of T found so far
    reg  [CNT-1:0]            above_q;        // keys above the current bucket
    reg  [BINS*CNT-1:0]       cand_count_q;   // [v]: keys >= prefix | v << shift (v >= 1)
    wire [{{ shift_w - 1 }}:0]               digit_shift = {{ shift_w }}'d{{ key_bits }} - {{ shift_w }}'d{{ radix_bits }} * {{ digit_plus_one }};
    reg  [BINS*CNT-1:0]       cand_hits;
    reg  [KEYW-1:0]           cand;
    reg  [CNT-1:0]            hits;
    integer vc, lc;

    always @* begin
        cand_hits = {(BINS*CNT){1'b0}};
        for (vc = 1; vc < BINS; vc = vc + 1) begin
            cand = prefix_q | ({{ radix_digit_ext }} << digit_shift);
            hits = {CNT{1'b0}};
            for (lc = 0; lc < LANES; lc = lc + 1) begin
                if (rd_mask_q[lc] && (key_of(rd_data_q[lc*SW +: SW]) >= cand)) hits = hits + {{ count_w }}'d1;
            end
            cand_hits[vc*CNT +: CNT] = hits;
        end
    end

    // Largest v whose candidate still has `count` keys at or above it (v = 0 always does),
    // and the keys above the chosen bucket.
    wire [CNT-1:0]            count_ext = {{ count_ext_expr }};
    reg  [R-1:0]              best_v;
    reg  [CNT-1:0]            best_above;
    reg  [CNT-1:0]            upper;
    reg                       found;
    integer vb;
    always @* begin
        best_v     = {R{1'b0}};
        best_above = above_q;
        upper      = above_q;
        found      = 1'b0;
        for (vb = BINS - 1; vb >= 1; vb = vb - 1) begin
            if (!found && cand_count_q[vb*CNT +: CNT] >= count_ext) begin
                best_v     = vb[R-1:0];
                best_above = upper;
                found      = 1'b1;
            end
            upper = cand_count_q[vb*CNT +: CNT];
        end
        if (!found) best_above = upper;
    end
    wire [KEYW-1:0]           prefix_next = prefix_q | ({{ best_digit_ext }} << digit_shift);

    // ---------------------------------------------------------------- emit: collect the top set
    reg  [KEYW-1:0]           thresh_q;       // key of T
    reg  [KW-1:0]             ties_left_q;    // keys == T still to take
    reg  [LANES-1:0]          pick_q;         // lanes of the latched word still to look at
    reg  [LANES*SW-1:0]       pick_data_q;
    reg  [CTR-1:0]            pick_base_q;
    reg  [LANES-1:0]          at_or_above;
    reg  [{{ lane_w - 1 }}:0]               pick_lane;
    reg                       pick_any;
    integer la, lq;
    always @* begin
        for (la = 0; la < LANES; la = la + 1) begin
            at_or_above[la] = rd_mask_q[la] && (key_of(rd_data_q[la*SW +: SW]) >= thresh_q);
        end
        pick_lane = {{ lane_w }}'d0;
        pick_any  = 1'b0;
        for (lq = LANES - 1; lq >= 0; lq = lq - 1) begin
            if (pick_q[lq]) begin
                pick_lane = lq[{{ lane_w - 1 }}:0];
                pick_any  = 1'b1;
            end
        end
    end
    wire [KEYW-1:0]           pick_key   = key_of(pick_data_q[pick_lane*SW +: SW]);
    wire                      pick_gt    = pick_key > thresh_q;
    wire                      pick_take  = (phase_q == P_EMIT) && (emit_q == E_PICK) && pick_any
                                           && (pick_gt || (ties_left_q != {KW{1'b0}}));
    wire [CTR-1:0]            pick_token = pick_base_q + {{ pick_lane_ext }};
    wire                      unused_pick_token_high = ^pick_token[CTR-1:IDX];  // tokens < max_tokens

    // ---------------------------------------------------------------- sort buffers
    reg  [ITEM-1:0]           buf_a [0:KMAX-1];
    reg  [ITEM-1:0]           buf_b [0:KMAX-1];
    reg                       src_b_q;        // the items to read live in buf_b
    reg  [KW-1:0]             wr_ptr_q;
    reg  [KW-1:0]             rd_ptr_q;
    reg  [ITEM-1:0]           rd_item_a_q;
    reg  [ITEM-1:0]           rd_item_b_q;
    wire [ITEM-1:0]           rd_item = src_b_q ? rd_item_b_q : rd_item_a_q;
    reg  [DIGITS*BINS*KW-1:0] hist_q;         // per digit, per bin: items
    reg  [BINS*KW-1:0]        offset_q;       // next scatter position of each bin
    reg  [{{ digit_w - 1 }}:0]               sort_digit_q;   // 0 = least significant
    reg                       sort_loaded_q;  // offsets of this pass are loaded
    reg                       sort_valid_q;   // rd_item holds item rd_ptr_q - 1
    wire [R-1:0]              rd_bin    = bin_of(rd_item[ITEM-1:IDX], sort_digit_q);
    wire [KW-1:0]             rd_offset = offset_q[rd_bin*KW +: KW];
    wire                      sort_wr   = (phase_q == P_SORT) && sort_valid_q;
    wire                      out_fire  = res_valid && res_ready;
    // Output holds its read address while the consumer stalls, so the read data stays put.
    wire [KW-1:0]             rd_addr   = ((phase_q == P_OUTPUT) && out_fire) ? rd_ptr_q + {{ k_w }}'d1 : rd_ptr_q;

    // Buffer addresses: pointers run to count (KW bits), entries stop at KMAX - 1.
    wire [{{ addr_w - 1 }}:0]               wr_slot  = wr_ptr_q[{{ addr_w - 1 }}:0];
    wire [{{ addr_w - 1 }}:0]               rd_slot  = rd_addr[{{ addr_w - 1 }}:0];
    wire [{{ addr_w - 1 }}:0]               sort_slot = rd_offset[{{ addr_w - 1 }}:0];
{%- if k_w > addr_w %}
    wire                      unused_ptr_high = wr_ptr_q[KW-1] ^ rd_addr[KW-1] ^ rd_offset[KW-1];
{%- endif %}

    always @(posedge clk) begin
        if (pick_take) buf_a[wr_slot] <= { pick_key, pick_token[IDX-1:0] };
        if (sort_wr && !src_b_q) buf_b[sort_slot] <= rd_item;
        if (sort_wr && src_b_q) buf_a[sort_slot] <= rd_item;
    end

    always @(posedge clk) begin
        rd_item_a_q <= buf_a[rd_slot];
        rd_item_b_q <= buf_b[rd_slot];
    end

    // Exclusive prefix sums of the histogram of the digit about to be sorted.
    reg  [BINS*KW-1:0]        prefix_offsets;
    reg  [KW-1:0]             run;
    integer bn;
    always @* begin
        run = {KW{1'b0}};
        for (bn = 0; bn < BINS; bn = bn + 1) begin
            prefix_offsets[bn*KW +: KW] = run;
            run = run + hist_q[(sort_digit_q*BINS + bn)*KW +: KW];
        end
    end

    // ---------------------------------------------------------------- output
    reg                       out_valid_q;
    wire [KEYW-1:0]           out_key = rd_item[ITEM-1:IDX];
    assign res_valid = (phase_q == P_OUTPUT) && out_valid_q;
    assign res_index = rd_item[IDX-1:0];
    assign res_score = {{ score_of_key_expr }};
{%- if key_pad > 0 %}
    wire                      unused_out_pad = ^out_key[{{ key_pad - 1 }}:0];
{%- endif %}
    assign res_last  = (rd_ptr_q == count_q - {{ k_w }}'d1);

    // ---------------------------------------------------------------- control
    integer vh, bh;
    always @(posedge clk) begin
        done <= 1'b0;
        if (rst || clear) begin
            phase_q     <= P_IDLE;
            rd_valid_q  <= 1'b0;
            out_valid_q <= 1'b0;
        end else begin
            case (phase_q)
                P_IDLE: if (flush) begin
                    count_q <= count;
                    if (count == {KW{1'b0}}) begin
                        done <= 1'b1;
                    end else begin
                        phase_q        <= P_SELECT;
                        digit_q        <= {{ digit_w }}'d0;
                        prefix_q       <= {KEYW{1'b0}};
                        above_q        <= {CNT{1'b0}};
                        cand_count_q   <= {(BINS*CNT){1'b0}};
                        rd_word_q      <= {WW{1'b0}};
                        rd_left_q      <= {{ n_now_ext }};
                        rd_next_base_q <= {CTR{1'b0}};
                        rd_valid_q     <= 1'b0;
                    end
                end
                P_SELECT: begin
                    // Stream the words; the counts trail the reads by one cycle.
                    rd_data_q  <= score_mem[rd_word_q];
                    rd_mask_q  <= word_mask;
                    rd_valid_q <= rd_more;
                    if (rd_more) begin
                        rd_word_q <= rd_word_q + {{ word_w }}'d1;
                        rd_left_q <= (rd_left_q > LANES_C) ? rd_left_q - LANES_C : {CTR{1'b0}};
                    end
                    if (rd_valid_q) begin
                        for (vh = 1; vh < BINS; vh = vh + 1) begin
                            cand_count_q[vh*CNT +: CNT] <= cand_count_q[vh*CNT +: CNT] + cand_hits[vh*CNT +: CNT];
                        end
                    end else if (!rd_more) begin
                        // Pass complete: one more digit of T.
                        prefix_q     <= prefix_next;
                        above_q      <= best_above;
                        cand_count_q <= {(BINS*CNT){1'b0}};
                        rd_word_q    <= {WW{1'b0}};
                        rd_left_q    <= {{ n_q_ext }};
                        if (digit_q == {{ digit_w }}'d{{ digits - 1 }}) begin
                            thresh_q       <= prefix_next;
                            ties_left_q    <= count_q - best_above[KW-1:0];
                            wr_ptr_q       <= {KW{1'b0}};
                            hist_q         <= {(DIGITS*BINS*KW){1'b0}};
                            rd_next_base_q <= {CTR{1'b0}};
                            emit_q         <= E_READ;
                            phase_q        <= P_EMIT;
                        end else begin
                            digit_q <= digit_q + {{ digit_w }}'d1;
                        end
                    end
                end
                P_EMIT: case (emit_q)
                    E_READ: if (rd_more) begin
                        rd_data_q      <= score_mem[rd_word_q];
                        rd_mask_q      <= word_mask;
                        rd_base_q      <= rd_next_base_q;
                        rd_word_q      <= rd_word_q + {{ word_w }}'d1;
                        rd_next_base_q <= rd_next_base_q + LANES_C;
                        rd_left_q      <= (rd_left_q > LANES_C) ? rd_left_q - LANES_C : {CTR{1'b0}};
                        emit_q         <= E_LATCH;
                    end else begin
                        sort_digit_q  <= {{ digit_w }}'d0;
                        sort_loaded_q <= 1'b0;
                        sort_valid_q  <= 1'b0;
                        src_b_q       <= 1'b0;
                        rd_ptr_q      <= {KW{1'b0}};
                        phase_q       <= P_SORT;
                    end
                    E_LATCH: begin
                        pick_q      <= at_or_above;
                        pick_data_q <= rd_data_q;
                        pick_base_q <= rd_base_q;
                        emit_q      <= E_PICK;
                    end
                    default: if (pick_any) begin
                        pick_q[pick_lane] <= 1'b0;
                        if (pick_take) begin
                            wr_ptr_q <= wr_ptr_q + {{ k_w }}'d1;
                            if (!pick_gt) ties_left_q <= ties_left_q - {{ k_w }}'d1;
                            for (vh = 0; vh < DIGITS; vh = vh + 1) begin
                                for (bh = 0; bh < BINS; bh = bh + 1) begin
                                    if (bin_of(pick_key, vh[{{ digit_w - 1 }}:0]) == bh[R-1:0]) begin
                                        hist_q[(vh*BINS + bh)*KW +: KW] <= hist_q[(vh*BINS + bh)*KW +: KW] + {{ k_w }}'d1;
                                    end
                                end
                            end
                        end
                    end else begin
                        emit_q <= E_READ;
                    end
                endcase
                P_SORT: begin
                    if (!sort_loaded_q) begin
                        // Start a pass: item 0 is being read (rd_addr = 0).
                        offset_q      <= prefix_offsets;
                        sort_loaded_q <= 1'b1;
                        sort_valid_q  <= 1'b1;
                        rd_ptr_q      <= {{ k_w }}'d1;
                    end else if (sort_valid_q) begin
                        // rd_item (item rd_ptr_q - 1) is written this cycle.
                        offset_q[rd_bin*KW +: KW] <= rd_offset + {{ k_w }}'d1;
                        if (rd_ptr_q == count_q) sort_valid_q <= 1'b0;
                        else rd_ptr_q <= rd_ptr_q + {{ k_w }}'d1;
                    end else begin
                        // Pass done: the scattered copy becomes the source.
                        src_b_q       <= !src_b_q;
                        sort_loaded_q <= 1'b0;
                        rd_ptr_q      <= {KW{1'b0}};
                        if (sort_digit_q == {{ digit_w }}'d{{ digits - 1 }}) begin
                            out_valid_q <= 1'b0;
                            phase_q     <= P_OUTPUT;
                        end else begin
                            sort_digit_q <= sort_digit_q + {{ digit_w }}'d1;
                        end
                    end
                end
                P_OUTPUT: begin
                    out_valid_q <= 1'b1;   // from the second cycle on, rd_item is item rd_ptr_q
                    if (out_fire) begin
                        rd_ptr_q <= rd_ptr_q + {{ k_w }}'d1;
                        if (res_last) begin
                            phase_q <= P_IDLE;
                            done    <= 1'b1;
                        end
                    end
                end
                default: phase_q <= P_IDLE;
            endcase
        end
    end
endmodule

`default_nettype wire
