{{ header }}
// topk_systolic: exact top-k for small k (docs/design.md section 5).
// One shift-register priority queue of KMAX entries per lane takes one score per cycle; a lane
// sees its tokens in increasing index order, so a new score goes behind equal ones (strict >).
// After flush, a comparator tree over the lane heads picks the best remaining entry per cycle
// (higher score first, then smaller token index), so the count winners come in score order.
// Output queue: the winners move, one per cycle, into one more queue of KMAX cells that keeps
// them in ascending token index (section 3's result order); it then shifts out one result per
// res_valid/res_ready handshake. Filling it takes count cycles, emptying it count more: the
// smallest index can be the last winner, so no result can leave before the last move.
`default_nettype none

module topk_systolic (
{% include "verilog/topk_ports.vh" %}
);
    localparam LANES  = {{ lanes }};
    localparam KMAX   = {{ k_max }};
    localparam SW     = {{ score_bits }};   // score (signed)
    localparam IDX    = {{ index_w }};   // token index
    localparam KW     = {{ k_w }};   // k
    localparam QUEUES = LANES + 1;   // the lane queues, then the output queue (index order)

    // Per queue: what to insert, and whether to insert it or pop the head this cycle.
    wire [QUEUES-1:0]         queue_insert;
    wire [QUEUES*SW-1:0]      queue_new_s;
    wire [QUEUES*IDX-1:0]     queue_new_i;
    wire [QUEUES-1:0]         queue_pop;
    wire [QUEUES-1:0]         head_v;
    wire [QUEUES*SW-1:0]      head_s;
    wire [QUEUES*IDX-1:0]     head_i;

    // ---------------------------------------------------------------- shift-register queues
    // Queue q < LANES is lane q's, ordered by score; queue LANES is the output queue, ordered
    // by token index (indices are distinct, so strict < suffices). One cell logic for both.
    genvar gq, gc;
    generate
        for (gq = 0; gq < QUEUES; gq = gq + 1) begin : g_queue
            reg  [KMAX-1:0]       qv_q;            // cell valid; valid cells form a prefix
            reg  [KMAX*SW-1:0]    qs_q;            // cell scores
            reg  [KMAX*IDX-1:0]   qi_q;            // cell token indices
            wire [SW-1:0]         new_s = queue_new_s[gq*SW +: SW];
            wire [IDX-1:0]        new_i = queue_new_i[gq*IDX +: IDX];
            wire [KMAX-1:0]       beats;           // new entry belongs before cell c
            for (gc = 0; gc < KMAX; gc = gc + 1) begin : g_cell
                if (gq < LANES) begin : g_by_score
                    assign beats[gc] = !qv_q[gc] || ($signed(new_s) > $signed(qs_q[gc*SW +: SW]));
                end else begin : g_by_index
                    assign beats[gc] = !qv_q[gc] || (new_i < qi_q[gc*IDX +: IDX]);
                end
            end
            integer c;
            always @(posedge clk) begin
                if (rst || clear) begin
                    qv_q <= {KMAX{1'b0}};
                end else if (queue_insert[gq]) begin
                    // Insert: cells behind the insertion point shift down by one.
                    if (beats[0]) begin
                        qv_q[0] <= 1'b1;
                        qs_q[0 +: SW]  <= new_s;
                        qi_q[0 +: IDX] <= new_i;
                    end
                    for (c = 1; c < KMAX; c = c + 1) begin
                        if (beats[c-1]) begin
                            qv_q[c] <= qv_q[c-1];
                            qs_q[c*SW +: SW]   <= qs_q[(c-1)*SW +: SW];
                            qi_q[c*IDX +: IDX] <= qi_q[(c-1)*IDX +: IDX];
                        end else if (beats[c]) begin
                            qv_q[c] <= 1'b1;
                            qs_q[c*SW +: SW]   <= new_s;
                            qi_q[c*IDX +: IDX] <= new_i;
                        end
                    end
                end else if (queue_pop[gq]) begin
                    // Pop the head: every cell moves up by one.
                    for (c = 0; c < KMAX - 1; c = c + 1) begin
                        qv_q[c] <= qv_q[c+1];
                        qs_q[c*SW +: SW]   <= qs_q[(c+1)*SW +: SW];
                        qi_q[c*IDX +: IDX] <= qi_q[(c+1)*IDX +: IDX];
                    end
                    qv_q[KMAX-1] <= 1'b0;
                end
            end
            assign head_v[gq] = qv_q[0];
            assign head_s[gq*SW +: SW]   = qs_q[0 +: SW];
            assign head_i[gq*IDX +: IDX] = qi_q[0 +: IDX];
        end
    endgenerate

    // ---------------------------------------------------------------- merge: best head
    // Leaves are the lane heads; a wins over b if valid, and higher score, or equal score and
    // smaller index (a comparator tree of {{ tree_levels }} level(s), combinational).
{%- for lane in lane_ids %}
    wire             m0_{{ lane }}_v = head_v[{{ lane }}];
    wire [SW-1:0]    m0_{{ lane }}_s = head_s[{{ lane }}*SW +: SW];
    wire [IDX-1:0]   m0_{{ lane }}_i = head_i[{{ lane }}*IDX +: IDX];
    wire [{{ lane_w - 1 }}:0]       m0_{{ lane }}_l = {{ lane_w }}'d{{ lane }};
{%- endfor %}
{%- for level in tree %}
    // comparator tree level {{ level.depth }}
{%- for node in level.nodes %}
{%- if node.is_pair %}
    wire             m{{ level.depth }}_{{ node.index }}_a = {{ node.a }}_v && (!{{ node.b }}_v
                         || ($signed({{ node.a }}_s) > $signed({{ node.b }}_s))
                         || (({{ node.a }}_s == {{ node.b }}_s) && ({{ node.a }}_i < {{ node.b }}_i)));
    wire             m{{ level.depth }}_{{ node.index }}_v = m{{ level.depth }}_{{ node.index }}_a ? {{ node.a }}_v : {{ node.b }}_v;
    wire [SW-1:0]    m{{ level.depth }}_{{ node.index }}_s = m{{ level.depth }}_{{ node.index }}_a ? {{ node.a }}_s : {{ node.b }}_s;
    wire [IDX-1:0]   m{{ level.depth }}_{{ node.index }}_i = m{{ level.depth }}_{{ node.index }}_a ? {{ node.a }}_i : {{ node.b }}_i;
    wire [{{ lane_w - 1 }}:0]       m{{ level.depth }}_{{ node.index }}_l = m{{ level.depth }}_{{ node.index }}_a ? {{ node.a }}_l : {{ node.b }}_l;
{%- else %}
    wire             m{{ level.depth }}_{{ node.index }}_v = {{ node.a }}_v;
    wire [SW-1:0]    m{{ level.depth }}_{{ node.index }}_s = {{ node.a }}_s;
    wire [IDX-1:0]   m{{ level.depth }}_{{ node.index }}_i = {{ node.a }}_i;
    wire [{{ lane_w - 1 }}:0]       m{{ level.depth }}_{{ node.index }}_l = {{ node.a }}_l;
{%- endif %}
{%- endfor %}
{%- endfor %}
    wire             best_v = m{{ tree_levels }}_0_v;
    wire [{{ lane_w - 1 }}:0]       best_l = m{{ tree_levels }}_0_l;
{%- if lanes == 1 %}
    wire             unused_best_l = best_l[0];
{%- endif %}

    // ---------------------------------------------------------------- drain control
    // After flush the count winners move from the tree into the output queue, one per cycle
    // (it has KMAX >= count cells, so nothing stalls a move); then the output queue's head
    // goes out on res_* until the count-th result is accepted. No register between the tree
    // and the output queue: the tree to its index comparators is as deep as the tree to the
    // lane pops it drives anyway, and a register would cost a cycle per query.
    reg                       moving_q;    // winners go from the tree into the output queue
    reg                       emitting_q;  // the output queue empties onto res_*
    reg  [KW-1:0]             count_q;
    reg  [KW-1:0]             moved_q;     // winners moved so far
    reg  [KW-1:0]             emitted_q;   // results accepted so far
    wire                      move     = moving_q && best_v;
    wire                      res_fire = res_valid && res_ready;
    wire [LANES-1:0]          pop_lane;

    // The lanes insert the scanner's scores; the output queue inserts the tree's winner.
    assign queue_insert = { move, in_valid };
    assign queue_new_s  = { m{{ tree_levels }}_0_s, in_score };
    assign queue_new_i  = { m{{ tree_levels }}_0_i, in_index };
    assign queue_pop    = { res_fire, pop_lane };
{%- if lanes > 1 %}
    assign pop_lane = move ? ({{ lanes }}'d1 << best_l) : {{ lanes }}'d0;
{%- else %}
    assign pop_lane = move;
{%- endif %}

    assign res_valid = emitting_q && head_v[LANES];
    assign res_n     = 1'b1;   // one result per beat
    assign res_score = head_s[LANES*SW +: SW];
    assign res_index = head_i[LANES*IDX +: IDX];
    assign res_last  = (emitted_q == count_q - {{ k_w }}'d1);

    // One query at a time: a new one may start once this one is done.
    reg                       active_q;
    assign accept = !active_q;
    always @(posedge clk) begin
        if (rst)        active_q <= 1'b0;
        else if (clear) active_q <= 1'b1;
        else if (done)  active_q <= 1'b0;
    end

    always @(posedge clk) begin
        done <= 1'b0;
        if (rst || clear) begin
            moving_q   <= 1'b0;
            emitting_q <= 1'b0;
        end else if (flush) begin
            count_q    <= count;
            moved_q    <= {KW{1'b0}};
            emitted_q  <= {KW{1'b0}};
            moving_q   <= (count != {KW{1'b0}});
            done       <= (count == {KW{1'b0}});
        end else if (move) begin
            moved_q <= moved_q + {{ k_w }}'d1;
            if (moved_q == count_q - {{ k_w }}'d1) begin
                moving_q   <= 1'b0;
                emitting_q <= 1'b1;
            end
        end else if (res_fire) begin
            emitted_q <= emitted_q + {{ k_w }}'d1;
            if (res_last) begin
                emitting_q <= 1'b0;
                done       <= 1'b1;
            end
        end
    end
endmodule

`default_nettype wire
