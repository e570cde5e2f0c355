{{ header }}
// topk_select: exact top-k for large k by threshold selection (docs/design.md section 5).
//   fill    : a query's scores are written to one of two score banks in words of {{ read_beats }} beat(s)
//             (LANES scores), and counted against the 2^R-1 candidates of T's first digit
//             as they arrive.
//   select  : {{ digits - 1 }} more pass(es) over the bank find the other digits of T, the count-th
//             largest score, {{ radix_bits }} bit(s) per pass: 2^R-1 candidate thresholds per lane counted in parallel.
//   emit    : one pass reads a word of LANES scores per cycle and keeps every score > T and the
//             first (count - #(> T)) scores == T in index order (ties keep the smaller index);
//             words with a kept score queue up, and a picker sends their kept scores out one
//             per cycle, so the results leave in ascending token index without a sort. The
//             pass stops reading once `count` scores are kept.
// Two banks: the next query fills one while this query's passes and emit read the other
// (`accept` says a fill may start). Queries finish in the order they arrive.
// Scores are compared as keys: sign bit flipped (unsigned order), padded to DIGITS*R bits.
`default_nettype none

module topk_select (
{% include "verilog/topk_ports.vh" %}
);
    localparam IN_LANES = {{ lanes }};   // scores per scanner beat
    localparam LANES  = {{ tl }};     // scores per buffer word, read per cycle: {{ read_beats }} beat(s)
    localparam SW     = {{ score_bits }};     // score (signed)
    localparam IDX    = {{ index_w }};     // token index
    localparam KW     = {{ k_w }};     // k (up to k_max = {{ k_max }})
    localparam CNT    = {{ count_w }};     // token counts
    localparam CTR    = {{ ctr_w }};     // read counters (room for one word past max_tokens)
    localparam R      = {{ radix_bits }};      // bits per digit
    localparam DIGITS = {{ digits }};      // digits per key
    localparam KEYW   = DIGITS * R; // key width
    localparam BINS   = {{ bins }};     // 2^R
    localparam WORDS  = {{ words }};   // score buffer words of LANES scores
    localparam WW     = {{ word_w }};     // word address
    localparam LW     = {{ lw }};      // lanes counter
    localparam FLW    = {{ flw }};      // lanes counter of a beat
    localparam RKW    = {{ rank_w }};     // tie rank within a word: up to max(k_max, LANES)
    localparam RL     = {{ res_lanes }};      // results per beat of res_*
    localparam RNW    = {{ res_n_w }};      // width of res_n
    localparam LANEW  = {{ lane_w }};      // a lane number
    localparam QD     = 8;      // emit queue: words with kept scores waiting for the picker
    localparam QW     = 3;      // log2(QD); the queue covers the 3 words in flight and a backlog

    localparam [CTR-1:0] LANES_C = {{ ctr_w }}'d{{ tl }};

    localparam [2:0] P_IDLE   = 3'd0,   // wait for a filled bank
                     P_START  = 3'd1,   // a filled bank is taken: its count is registered
                     P_SELECT = 3'd2,   // count keys against candidate thresholds
                     P_DECIDE = 3'd3,   // the digit of T and the keys above its bucket
                     P_APPLY  = 3'd5,   // one more digit of T
                     P_TAKE   = 3'd6,   // take the filled bank
                     P_EMIT   = 3'd4;   // keep the top set and send it out

    reg  [2:0]                phase_q;
    reg  [KW-1:0]             count_q;

    // Score (signed) -> key (unsigned order, padded at the bottom).
    function [KEYW-1:0] key_of;
        input [SW-1:0] s;
        begin
            key_of = {{ key_of_expr }};
        end
    endfunction

    // A score's first digit: the key's top R bits.
    function [R-1:0] digit0_of;
        input [SW-1:0] s;
        begin
            digit0_of = {{ digit0_expr }};
        end
    endfunction

    // ---------------------------------------------------------------- fill: scores arrive
    // Bank states: the fill side writes bank fill_bank_q between clear and flush; a filled
    // bank waits (pend_q) until the selection side is idle, which then takes it with its
    // digit-0 counts, freeing the fill side for the next query.
    reg  [LANES*SW-1:0]       bank0 [0:WORDS-1];
    reg  [LANES*SW-1:0]       bank1 [0:WORDS-1];
    reg                       fill_bank_q;    // bank the arriving scores go to
    reg                       pend_q;         // a filled bank waits for the selection side
    reg  [KW-1:0]             pend_count_q;   // its query's count
    reg  [WW-1:0]             wr_word_q;
    reg  [CNT-1:0]            n_q;            // tokens received
    wire [CNT-1:0]            in_popcount;
    wire                      in_any = |in_valid;
    popcount #(.W(IN_LANES), .OW(CNT)) u_in_count (.x(in_valid), .y(in_popcount));
{%- if read_beats > 1 %}

    // A word gathers {{ read_beats }} beats of scores: it is written with its last beat, or with the
    // query's last beat (flush) holding fewer. Beats are full but the last, so a score's
    // token is its word's first token plus its place in the word.
    localparam BEATS = {{ read_beats }};
    reg  [{{ beat_w - 1 }}:0]               beat_q;         // the beat the next scores fill
    reg  [LANES*SW-1:0]       gather_data_q;
    reg  [LANES*SW-1:0]       wr_data;
    integer bg;
    always @* begin
        // Selects, not if-statements: Yosys's proc then has no decision tree to unfold.
        for (bg = 0; bg < BEATS; bg = bg + 1) begin
            wr_data[bg*IN_LANES*SW +: IN_LANES*SW] = (in_any && (beat_q == bg[{{ beat_w - 1 }}:0]))
                                                     ? in_score : gather_data_q[bg*IN_LANES*SW +: IN_LANES*SW];
        end
    end
    wire                      wr_en = (in_any && (beat_q == {{ beat_w }}'d{{ read_beats - 1 }}))
                                      || (flush && (in_any || (beat_q != {{ beat_w }}'d0)));
    always @(posedge clk) begin
        if (rst || clear || wr_en) begin
            beat_q        <= {{ beat_w }}'d0;
        end else if (in_any) begin
            beat_q        <= beat_q + {{ beat_w }}'d1;
            gather_data_q <= wr_data;
        end
    end
{%- else %}
    wire [LANES*SW-1:0]       wr_data = in_score;
    wire                      wr_en   = in_any;
{%- endif %}

    always @(posedge clk) begin
        if (wr_en && !fill_bank_q) bank0[wr_word_q] <= wr_data;
        if (wr_en &&  fill_bank_q) bank1[wr_word_q] <= wr_data;
    end

    always @(posedge clk) begin
        if (rst || clear) begin
            wr_word_q <= {WW{1'b0}};
            n_q       <= {CNT{1'b0}};
        end else begin
            if (wr_en)  wr_word_q <= wr_word_q + {{ word_w }}'d1;
            if (in_any) n_q       <= n_q + in_popcount;
        end
    end
    wire [{{ lanes * index_w - 1 }}:0]             unused_in_index = in_index;  // indices follow from buffer positions

    // Digit 0, counted on the arriving beats: lane l's digit against every candidate v
    // (a thermometer code), counted across the lanes (popcount), added to fill_count_q[v].
    //   f1: the beat  ->  f2: fge_q  ->  f3: fhits_q  ->  fill_count_q
    reg  [IN_LANES*SW-1:0]    f1_data_q;
    reg  [IN_LANES-1:0]       f1_mask_q;
    reg                       f1_q, f2_q, f3_q;
    reg  [BINS*IN_LANES-1:0]  fge_q;
    reg  [BINS*FLW-1:0]       fhits_q;
    reg  [BINS*CNT-1:0]       fill_count_q;   // [v]: keys of the filled query with digit 0 >= v
    reg  [BINS*IN_LANES-1:0]  fge_all;
    wire [BINS*FLW-1:0]       fhits_all;
    reg  [R-1:0]              f_digit;
    reg  [R*IN_LANES-1:0]     fplane;         // [b][l]: bit b of lane l's digit 0
    reg  [IN_LANES-1:0]       fge_v;
    integer fv, fl, fb;
    always @* begin
        // Bit-sliced, as the passes' thermometer code below.
        for (fl = 0; fl < IN_LANES; fl = fl + 1) begin
            f_digit = digit0_of(f1_data_q[fl*SW +: SW]);
            for (fb = 0; fb < R; fb = fb + 1) begin
                fplane[fb*IN_LANES + fl] = f_digit[fb];
            end
        end
        for (fv = 0; fv < BINS; fv = fv + 1) begin
            fge_v = {IN_LANES{1'b1}};
            for (fb = 0; fb < R; fb = fb + 1) begin
                fge_v = fplane[fb*IN_LANES +: IN_LANES] & (fge_v | {IN_LANES{!fv[fb]}})
                        | (fge_v & {IN_LANES{!fv[fb]}});
            end
            fge_all[fv*IN_LANES +: IN_LANES] = f1_mask_q & fge_v;
        end
    end
    genvar gf;
    generate
        for (gf = 0; gf < BINS; gf = gf + 1) begin : g_fhits
            popcount #(.W(IN_LANES), .OW(FLW)) u_count (
                .x(fge_q[gf*IN_LANES +: IN_LANES]), .y(fhits_all[gf*FLW +: FLW]));
        end
    endgenerate
    wire                      fill_idle = !f1_q && !f2_q && !f3_q;   // every arrived beat is counted
    integer fh;
    always @(posedge clk) begin
        f1_data_q <= in_score;
        f1_mask_q <= in_valid;
        fge_q     <= fge_all;
        fhits_q   <= fhits_all;
        f1_q      <= !(rst || clear) && in_any;
        f2_q      <= f1_q;
        f3_q      <= f2_q;
        if (rst || clear) begin
            fill_count_q <= {(BINS*CNT){1'b0}};
        end else if (f3_q) begin
            for (fh = 1; fh < BINS; fh = fh + 1) begin
                fill_count_q[fh*CNT +: CNT] <= fill_count_q[fh*CNT +: CNT] + {{ fhits_ext }};
            end
        end
    end

    // ---------------------------------------------------------------- bank reads
    // Block RAM outputs go straight into registers (no logic behind them): an ECP5 DP16KD
    // without its output register needs ~6 ns from clock to data.
    //   issue: rd_word_q, word_mask  ->  s1: rd0_q, rd1_q (RAM)  ->  s2: data2_q (fabric)
    reg                       sel_bank_q;     // bank the selection side reads
    reg  [CNT-1:0]            sel_n_q;        // its tokens
    reg  [WW-1:0]             rd_word_q;
    reg  [CTR-1:0]            rd_left_q;      // tokens from word rd_word_q on
    reg  [CTR-1:0]            rd_next_base_q; // first token of word rd_word_q
    reg  [CTR-1:0]            base1_q, base2_q;
    reg  [LANES*SW-1:0]       rd0_q, rd1_q;
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
        rd0_q     <= bank0[rd_word_q];
        rd1_q     <= bank1[rd_word_q];
        data2_q   <= sel_bank_q ? rd1_q : rd0_q;
        mask1_q   <= word_mask;
        mask2_q   <= mask1_q;
        base1_q   <= rd_next_base_q;
        base2_q   <= base1_q;
    end

    // ---------------------------------------------------------------- select: find T
    // Source: a bank word (digits after the first). A lane's key is
    // compared with T's digits found so far (one compare), and its digit of this pass is
    // decoded into a thermometer code (digit >= v): 2^R - 1 bits per lane rather than 2^R - 1
    // key compares, which is what lets a pass resolve up to 8 bits. The code is built bit-sliced
    // (the lanes' digit bits as R words of LANES bits, each candidate's word from them
    // LSB first) and counted by popcount: whole-word operations in the Verilator model rather
    // than one per lane and candidate.
    //   s3a: compare and digit  ->  s3: ge_q (every lane against every candidate)  ->  s4: hits_q
    //   ->  s5: cand_count_q (two stages in front of the thermometer: one missed 90 MHz on the ECP5)
    reg  [{{ digit_w - 1 }}:0]               digit_q;        // pass number, most significant digit first
    reg  [KEYW-1:0]           prefix_q;       // digits of T found so far
    reg  [CNT-1:0]            above_q;        // keys above the current bucket
    reg  [KEYW-1:0]           upper_q;        // bits of the digits above digit_q
    reg  [BINS*LANES-1:0]     ge_q;           // [v][l]: lane l's key >= prefix with digit v
    reg  [BINS*LW-1:0]        hits_q;         // [v]: lanes at or above candidate v
    reg  [BINS*CNT-1:0]       cand_count_q;   // [v]: keys >= candidate v
    reg  [BINS-1:0]           ok_q;           // [v]: candidate v still has count keys at or above
    reg                       va_q, v3_q, v4_q;
    reg  [LANES-1:0]          gt_all, eq_all, gt_a_q, eq_a_q;    // s3a: the lane against T's digits so far
    reg  [R*LANES-1:0]        plane_all, plane_a_q;             // s3a: [b][l]: bit b of lane l's digit of this pass
    reg  [KEYW-1:0]           upper_all;
    reg  [BINS*LANES-1:0]     ge_all;
    wire [BINS*LW-1:0]        hits_all;
    reg  [LANES-1:0]          ge_v;
    reg  [KEYW-1:0]           lane_key;
    reg  [R-1:0]              lane_digit;
    wire                      pass_word = v2_q && (phase_q == P_SELECT);
    wire [LANES*SW-1:0]       src_data  = data2_q;
    wire [LANES-1:0]          src_mask  = pass_word ? mask2_q : {LANES{1'b0}};
    integer vc, lc, dc, bc;

    always @* begin
        // Registered: digit_q only changes between passes.
        // Every choice below is an AND-OR select, not an if-statement: at hundreds of lanes
        // the decision trees of if-statements are what Yosys's proc cannot hold in memory.
        upper_all = {KEYW{1'b0}};
        for (dc = 1; dc < DIGITS; dc = dc + 1) begin
            upper_all = upper_all | (({KEYW{1'b1}} << (KEYW - R*dc)) & {KEYW{digit_q == dc[{{ digit_w - 1 }}:0]}});
        end
        for (lc = 0; lc < LANES; lc = lc + 1) begin
            lane_key   = key_of(src_data[lc*SW +: SW]);
            gt_all[lc] = src_mask[lc] && ((lane_key & upper_q) > (prefix_q & upper_q));
            eq_all[lc] = src_mask[lc] && ((lane_key & upper_q) == (prefix_q & upper_q));
            lane_digit = {R{1'b0}};
            for (dc = 0; dc < DIGITS; dc = dc + 1) begin
                lane_digit = lane_digit | (lane_key[KEYW-R*(dc+1) +: R] & {R{digit_q == dc[{{ digit_w - 1 }}:0]}});
            end
            for (bc = 0; bc < R; bc = bc + 1) begin
                plane_all[bc*LANES + lc] = lane_digit[bc];
            end
        end
        // The thermometer code, from the registered compare: digit >= v, LSB first (a set bit
        // of v needs the digit's bit and the lower bits >= v's; a clear one either).
        for (vc = 0; vc < BINS; vc = vc + 1) begin
            ge_v = {LANES{1'b1}};
            for (bc = 0; bc < R; bc = bc + 1) begin
                ge_v = plane_a_q[bc*LANES +: LANES] & (ge_v | {LANES{!vc[bc]}})
                       | (ge_v & {LANES{!vc[bc]}});
            end
            ge_all[vc*LANES +: LANES] = gt_a_q | (eq_a_q & ge_v);
        end
    end
    genvar gh;
    generate
        for (gh = 0; gh < BINS; gh = gh + 1) begin : g_hits
            popcount #(.W(LANES), .OW(LW)) u_count (
                .x(ge_q[gh*LANES +: LANES]), .y(hits_all[gh*LW +: LW]));
        end
    endgenerate

    always @(posedge clk) begin
        upper_q   <= upper_all;
        gt_a_q    <= gt_all;
        eq_a_q    <= eq_all;
        plane_a_q <= plane_all;
        ge_q      <= ge_all;
        hits_q    <= hits_all;
    end

    // Counts fall as v rises, so the ok bits are a run from v = 0 (always ok) up to the digit
    // of T; the keys above its bucket are the count of the first v that is not ok. The digit
    // is the run's last bit, found as a one-hot and read out through AND-OR trees (log depth:
    // a priority chain over 2^R candidates missed 50 MHz on the ECP5), then registered.
    wire [CNT-1:0]            count_ext = {{ count_ext_expr }};
    reg  [BINS-1:0]           last_ok;        // one-hot: the digit of T
    reg  [R-1:0]              best_v;
    reg  [CNT-1:0]            best_above;
    reg  [R-1:0]              best_v_q;
    reg  [CNT-1:0]            best_above_q;
    reg  [KEYW-1:0]           prefix_next;
    integer vb, db;
    always @* begin
        for (vb = 0; vb < BINS - 1; vb = vb + 1) begin
            last_ok[vb] = ok_q[vb] && !ok_q[vb+1];
        end
        last_ok[BINS-1] = ok_q[BINS-1];
        best_v     = {R{1'b0}};
        best_above = above_q & {CNT{last_ok[BINS-1]}};
        for (vb = 0; vb < BINS; vb = vb + 1) begin
            best_v = best_v | (vb[R-1:0] & {R{last_ok[vb]}});
        end
        for (vb = 0; vb < BINS - 1; vb = vb + 1) begin
            best_above = best_above | (cand_count_q[(vb+1)*CNT +: CNT] & {CNT{last_ok[vb]}});
        end
        prefix_next = prefix_q;
        for (db = 0; db < DIGITS; db = db + 1) begin
            prefix_next[KEYW-R*(db+1) +: R] = (digit_q == db[{{ digit_w - 1 }}:0]) ? best_v_q
                                                                           : prefix_q[KEYW-R*(db+1) +: R];
        end
    end

    // ---------------------------------------------------------------- emit: keep the top set
    // s3: a word's lanes are compared with T and its ties ranked by lane (prefix counts), all
    // registered; s4: the first ties_left ties are kept, and a word with a kept lane joins the
    // queue. Two stages: compare, rank and the ties_left update in one cycle missed 75 MHz on
    // the ECP5. Reads are issued only while the queue has room for every word in flight.
    reg  [KEYW-1:0]           thresh_q;       // key of T
    reg  [KW-1:0]             ties_left_q;    // keys == T still to keep
    reg  [KW-1:0]             kept_q;         // scores kept so far
    reg  [LANES-1:0]          gt3_q, eq3_q;
    reg  [LANES*RKW-1:0]      rank3_q;        // rank_l, registered
    reg  [RKW-1:0]            eqn3_q;         // ties in the word
    reg  [KW-1:0]             gtn3_q;         // lanes above T in the word (<= count)
    reg  [LANES*SW-1:0]       data3_q;
    reg  [CTR-1:0]            base3_q;
    reg                       e3_q;           // s3 holds a word of the emit pass
    reg  [LANES-1:0]          gt_l, eq_l;
    wire [LANES*RKW-1:0]      rank_l;         // [l]: ties in lanes below l
    wire [RKW-1:0]            eq_run;         // ties in the word
    wire [KW-1:0]             gt_run;         // lanes above T in the word
    integer le;
    always @* begin
        for (le = 0; le < LANES; le = le + 1) begin
            gt_l[le] = mask2_q[le] && (key_of(data2_q[le*SW +: SW]) > thresh_q);
            eq_l[le] = mask2_q[le] && (key_of(data2_q[le*SW +: SW]) == thresh_q);
        end
    end
    // Counted in log depth: a running count over the lanes would be a chain of LANES adders.
    prefix_count #(.W(LANES), .OW(RKW)) u_tie_rank (.x(eq_l), .y(rank_l), .n(eq_run));
    popcount #(.W(LANES), .OW(KW)) u_above (.x(gt_l), .y(gt_run));
    always @(posedge clk) begin
        gt3_q   <= gt_l;
        eq3_q   <= eq_l;
        rank3_q <= rank_l;
        eqn3_q  <= eq_run;
        gtn3_q  <= gt_run;
        data3_q <= data2_q;
        base3_q <= base2_q;
    end

    wire [RKW-1:0]            ties_left_ext = {{ ties_left_ext }};
    reg  [LANES-1:0]          keep_l;
    integer lk;
    always @* begin
        for (lk = 0; lk < LANES; lk = lk + 1) begin
            keep_l[lk] = gt3_q[lk] || (eq3_q[lk] && (rank3_q[lk*RKW +: RKW] < ties_left_ext));
        end
    end
    wire [KW-1:0]             ties_kept = (eqn3_q < ties_left_ext) ? eqn3_q[KW-1:0] : ties_left_q;
    wire                      push      = e3_q && (|keep_l);

    reg  [LANES-1:0]          q_mask [0:QD-1];
    reg  [LANES*SW-1:0]       q_data [0:QD-1];
    reg  [CTR-1:0]            q_base [0:QD-1];
    reg  [QW-1:0]             q_wr_q, q_rd_q;
    reg  [QW:0]               q_used_q;       // words in the queue
    wire                      q_empty = (q_used_q == {(QW+1){1'b0}});
    wire [QW:0]               in_flight = { {QW{1'b0}}, v1_q } + { {QW{1'b0}}, v2_q } + { {QW{1'b0}}, e3_q };
    wire                      q_room = (q_used_q + in_flight) < QD[QW:0];   // room for this read too

    // Picker: up to RL kept lanes of the queue's head word per cycle, lowest lanes first. A
    // kept lane's rank among the kept lanes (a prefix count) names its result slot, and each
    // slot takes its lane through an AND-OR tree: a prefix-count compactor.
    wire [LANES-1:0]          head_mask = q_mask[q_rd_q];
    wire [LANES*SW-1:0]       head_data = q_data[q_rd_q];
    wire [CTR-1:0]            head_base = q_base[q_rd_q];
    reg  [LANES-1:0]          take;           // lanes sent this cycle
    reg  [RL*LANEW-1:0]       slot_lane;
    reg  [RL*SW-1:0]          slot_score;
    reg  [RNW-1:0]            take_n;         // results sent this cycle: min(kept lanes, RL)
{%- if res_lanes == 1 %}
    // One result per beat: the lowest kept lane, isolated with a carry chain (no rank
    // arithmetic on the path to the output register).
    integer lq;
    always @* begin
        take       = head_mask & (~head_mask + {% if tl > 1 %}{ {{ tl - 1 }}'d0, 1'b1 }{% else %}1'b1{% endif %});
        slot_lane  = {LANEW{1'b0}};
        slot_score = {SW{1'b0}};
        for (lq = 0; lq < LANES; lq = lq + 1) begin
            slot_lane  = slot_lane | (lq[LANEW-1:0] & {LANEW{take[lq]}});
            slot_score = slot_score | (head_data[lq*SW +: SW] & {SW{take[lq]}});
        end
        take_n = 1'b1;
    end
{%- else %}
    localparam [RKW-1:0]      RL_R = {{ rank_w }}'d{{ res_lanes }};
    // [b][l]: bit b of the number l
    localparam [LANEW*LANES-1:0] LANE_BIT = {{ lane_bits }};
    wire [LANES*RKW-1:0]      prank_all;      // [l]: kept lanes below l
    wire [RKW-1:0]            kept_n;         // kept lanes of the head word
    reg  [RKW-1:0]            prank;
    prefix_count #(.W(LANES), .OW(RKW)) u_pick_rank (.x(head_mask), .y(prank_all), .n(kept_n));
    // Slot s takes the kept lane of rank s: a one-hot row per slot, read out bit by bit as
    // reductions over the lanes (lane-number bits and score bit-planes), log depth where an
    // OR running over the lanes would be LANES gates deep.
    reg  [RL*LANES-1:0]       sel;            // [s][l]: lane l goes to slot s
    reg  [SW*LANES-1:0]       plane;          // [b][l]: bit b of lane l's score
    integer lq, sq, bq;
    always @* begin
        take = {LANES{1'b0}};
        for (lq = 0; lq < LANES; lq = lq + 1) begin
            prank    = prank_all[lq*RKW +: RKW];
            take[lq] = head_mask[lq] && (prank < RL_R);
            for (sq = 0; sq < RL; sq = sq + 1) begin
                sel[sq*LANES + lq] = head_mask[lq] && (prank == sq[RKW-1:0]);
            end
            for (bq = 0; bq < SW; bq = bq + 1) begin
                plane[bq*LANES + lq] = head_data[lq*SW + bq];
            end
        end
        for (sq = 0; sq < RL; sq = sq + 1) begin
            for (bq = 0; bq < LANEW; bq = bq + 1) begin
                slot_lane[sq*LANEW + bq] = |(sel[sq*LANES +: LANES] & LANE_BIT[bq*LANES +: LANES]);
            end
            for (bq = 0; bq < SW; bq = bq + 1) begin
                slot_score[sq*SW + bq] = |(sel[sq*LANES +: LANES] & plane[bq*LANES +: LANES]);
            end
        end
        take_n = (kept_n < RL_R) ? kept_n[RNW-1:0] : RL_R[RNW-1:0];
    end
{%- endif %}
    reg  [RL*IDX-1:0]         slot_index;
    reg  [CTR-1:0]            slot_token;
    reg                       unused_token_high;  // tokens < max_tokens
    integer st;
    always @* begin
        unused_token_high = 1'b0;
        for (st = 0; st < RL; st = st + 1) begin
            slot_token = head_base + {{ slot_lane_ext }};
            slot_index[st*IDX +: IDX] = slot_token[IDX-1:0];
            unused_token_high = unused_token_high ^ (^slot_token[CTR-1:IDX]);
        end
    end
    wire                      head_done  = ((head_mask & ~take) == {LANES{1'b0}});
    wire [KW-1:0]             take_n_k   = {{ take_n_k }};

    // Output register: loads a beat when it is free or being taken.
    reg                       out_valid_q;
    reg                       out_last_q;
    reg  [RNW-1:0]            out_n_q;
    reg  [RL*IDX-1:0]         out_index_q;
    reg  [RL*SW-1:0]          out_score_q;
    reg  [KW-1:0]             unsent_q;       // results not yet loaded into the output register
                                              // (counts down: an equality test, not a sum, decides res_last)
    wire                      out_fire = res_valid && res_ready;
    wire                      pick     = (phase_q == P_EMIT) && !q_empty && (!out_valid_q || res_ready);
    wire                      pop      = pick && head_done;

    assign res_valid = out_valid_q;
    assign res_n     = out_n_q;
    assign res_index = out_index_q;
    assign res_score = out_score_q;
    assign res_last  = out_last_q;

    // ---------------------------------------------------------------- control
    assign rd_issue = rd_more && ((phase_q == P_SELECT)
                                  || ((phase_q == P_EMIT) && q_room && (kept_q != count_q)));
    // The selection side takes a filled bank once idle, with nothing of the last query in
    // flight (the emit pass may have read words past its last kept score).
    wire                      take_bank = (phase_q == P_IDLE) && pend_q && fill_idle
                                          && !v1_q && !v2_q && !e3_q;
    assign accept = !pend_q;

    always @(posedge clk) begin
        if (rst) begin
            fill_bank_q <= 1'b0;
            pend_q      <= 1'b0;
        end else if (flush) begin
            pend_q       <= 1'b1;
            pend_count_q <= count;
        end else if (phase_q == P_TAKE) begin
            // Released once taken (the selection side reads fill_bank_q, n_q and the
            // digit-0 counts in P_TAKE).
            pend_q      <= 1'b0;
            fill_bank_q <= !fill_bank_q;
        end
    end

    integer vh;
    always @(posedge clk) begin
        done       <= 1'b0;
        v1_q       <= rd_issue;
        v2_q       <= v1_q;
        va_q       <= pass_word;
        v3_q       <= va_q;
        v4_q       <= v3_q;
        if (rd_issue) begin
            rd_word_q      <= rd_word_q + {{ word_w }}'d1;
            rd_next_base_q <= rd_next_base_q + LANES_C;
            rd_left_q      <= (rd_left_q > LANES_C) ? rd_left_q - LANES_C : {CTR{1'b0}};
            rd_more_q      <= (rd_left_q > LANES_C);
        end
        // The counts need no reset: P_TAKE loads them. Decided by phase registers alone (the
        // reset and the take decision on this path missed 90 MHz on the ECP5).
        if (phase_q == P_TAKE) begin
            cand_count_q <= fill_count_q;
        end else if (phase_q == P_APPLY) begin
            cand_count_q <= {(BINS*CNT){1'b0}};
        end else if (v4_q) begin
            for (vh = 1; vh < BINS; vh = vh + 1) begin
                cand_count_q[vh*CNT +: CNT] <= cand_count_q[vh*CNT +: CNT] + {{ hits_ext }};
            end
        end
        e3_q <= v2_q && (phase_q == P_EMIT);
        if (e3_q) begin
            ties_left_q <= ties_left_q - ties_kept;
            kept_q      <= kept_q + gtn3_q + ties_kept;
        end
        if (push) begin
            q_mask[q_wr_q] <= keep_l;
            q_data[q_wr_q] <= data3_q;
            q_base[q_wr_q] <= base3_q;
            q_wr_q         <= q_wr_q + { {(QW-1){1'b0}}, 1'b1 };
        end
        if (pick && !head_done) q_mask[q_rd_q] <= head_mask & ~take;
        if (pop) q_rd_q <= q_rd_q + { {(QW-1){1'b0}}, 1'b1 };
        q_used_q <= q_used_q + { {QW{1'b0}}, push } - { {QW{1'b0}}, pop };
        if (pick) begin
            out_valid_q <= 1'b1;
            out_n_q     <= take_n;
            out_index_q <= slot_index;
            out_score_q <= slot_score;
            out_last_q  <= (unsent_q == take_n_k);
            unsent_q   <= unsent_q - take_n_k;
        end else if (out_fire) begin
            out_valid_q <= 1'b0;
        end
        if (out_fire && out_last_q) begin
            done        <= 1'b1;
            phase_q     <= P_IDLE;
        end
        if (rst) begin
            phase_q      <= P_IDLE;
            v1_q         <= 1'b0;
            v2_q         <= 1'b0;
            va_q         <= 1'b0;
            v3_q         <= 1'b0;
            v4_q         <= 1'b0;
            out_valid_q  <= 1'b0;
            rd_left_q    <= {CTR{1'b0}};
            rd_more_q    <= 1'b0;
            e3_q         <= 1'b0;
            q_wr_q       <= {QW{1'b0}};
            q_rd_q       <= {QW{1'b0}};
            q_used_q     <= {(QW+1){1'b0}};
        end else begin
            case (phase_q)
                P_IDLE: if (take_bank) phase_q <= P_TAKE;
                P_TAKE: begin
                    // The filled bank, its count and (above) its digit-0 counts.
                    sel_bank_q   <= fill_bank_q;
                    sel_n_q      <= n_q;
                    count_q      <= pend_count_q;
                    digit_q      <= {{ digit_w }}'d0;
                    prefix_q     <= {KEYW{1'b0}};
                    above_q      <= {CNT{1'b0}};
                    rd_left_q    <= {CTR{1'b0}};
                    rd_more_q    <= 1'b0;
                    phase_q      <= P_START;
                end
                P_START: begin
                    // Decided from registers: the count arrives from the scanner's pipeline,
                    // far from this unit's control.
                    if (count_q == {KW{1'b0}}) begin
                        done    <= 1'b1;
                        phase_q <= P_IDLE;
                    end else begin
                        phase_q <= P_SELECT;   // digit 0 is counted: decide it
                    end
                end
                P_SELECT: if (!rd_more && !v1_q && !v2_q && !va_q && !v3_q && !v4_q) begin
                    // Pass complete: which candidates keep count keys at or above them.
                    for (vh = 1; vh < BINS; vh = vh + 1) begin
                        ok_q[vh] <= cand_count_q[vh*CNT +: CNT] >= count_ext;
                    end
                    ok_q[0] <= 1'b1;
                    phase_q <= P_DECIDE;
                end
                P_DECIDE: begin
                    best_v_q     <= best_v;
                    best_above_q <= best_above;
                    phase_q      <= P_APPLY;
                end
                P_APPLY: begin
                    // One more digit of T; every pass (and the emit pass) reads from word 0.
                    prefix_q       <= prefix_next;
                    above_q        <= best_above_q;
                    rd_word_q      <= {WW{1'b0}};
                    rd_left_q      <= {{ n_q_ext }};
                    rd_more_q      <= (sel_n_q != {CNT{1'b0}});
                    rd_next_base_q <= {CTR{1'b0}};
                    if (digit_q == {{ digit_w }}'d{{ digits - 1 }}) begin
                        thresh_q    <= prefix_next;
                        ties_left_q <= count_q - best_above_q[KW-1:0];
                        kept_q      <= {KW{1'b0}};
                        unsent_q    <= count_q;
                        phase_q     <= P_EMIT;
                    end else begin
                        digit_q <= digit_q + {{ digit_w }}'d1;
                        phase_q <= P_SELECT;
                    end
                end
                default: ;   // P_EMIT: ends with the last result (above)
            endcase
        end
    end
endmodule

`default_nettype wire
