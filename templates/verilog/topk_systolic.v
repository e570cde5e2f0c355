{{ header }}
// topk_systolic: exact top-k for small k (docs/design.md section 5).
// One shift-register priority queue of KMAX entries per lane takes one score per cycle; a lane
// sees its tokens in increasing index order, so a new score goes behind equal ones (strict >).
// After flush, a comparator tree over the lane heads emits the best remaining entry per cycle:
// higher score first, then smaller token index.
`default_nettype none

module topk_systolic (
{% include "verilog/topk_ports.vh" %}
);
    localparam LANES = {{ lanes }};
    localparam KMAX  = {{ k_max }};
    localparam SW    = {{ score_bits }};   // score (signed)
    localparam IDX   = {{ index_w }};   // token index
    localparam KW    = {{ k_w }};   // k

    wire [LANES-1:0]          head_v;
    wire [LANES*SW-1:0]       head_s;
    wire [LANES*IDX-1:0]      head_i;
    wire [LANES-1:0]          pop_lane;

    // ---------------------------------------------------------------- per-lane queues
    genvar gl, gc;
    generate
        for (gl = 0; gl < LANES; gl = gl + 1) begin : g_lane
            reg  [KMAX-1:0]       qv_q;            // cell valid; valid cells form a prefix
            reg  [KMAX*SW-1:0]    qs_q;            // cell scores, best first
            reg  [KMAX*IDX-1:0]   qi_q;            // cell token indices
            wire [SW-1:0]         new_s = in_score[gl*SW +: SW];
            wire [IDX-1:0]        new_i = in_index[gl*IDX +: IDX];
            wire [KMAX-1:0]       beats;           // new entry belongs before cell c
            for (gc = 0; gc < KMAX; gc = gc + 1) begin : g_cell
                assign beats[gc] = !qv_q[gc] || ($signed(new_s) > $signed(qs_q[gc*SW +: SW]));
            end
            integer c;
            always @(posedge clk) begin
                if (rst || clear) begin
                    qv_q <= {KMAX{1'b0}};
                end else if (in_valid[gl]) begin
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
                end else if (pop_lane[gl]) begin
                    // Pop the head: every cell moves up by one.
                    for (c = 0; c < KMAX - 1; c = c + 1) begin
                        qv_q[c] <= qv_q[c+1];
                        qs_q[c*SW +: SW]   <= qs_q[(c+1)*SW +: SW];
                        qi_q[c*IDX +: IDX] <= qi_q[(c+1)*IDX +: IDX];
                    end
                    qv_q[KMAX-1] <= 1'b0;
                end
            end
            assign head_v[gl] = qv_q[0];
            assign head_s[gl*SW +: SW]   = qs_q[0 +: SW];
            assign head_i[gl*IDX +: IDX] = qi_q[0 +: IDX];
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

    // ---------------------------------------------------------------- emit control
    reg                       draining_q;
    reg  [KW-1:0]             emitted_q;
    reg  [KW-1:0]             count_q;
    wire                      res_fire = res_valid && res_ready;

    assign res_valid = draining_q && best_v;
    assign res_score = m{{ tree_levels }}_0_s;
    assign res_index = m{{ tree_levels }}_0_i;
    assign res_last  = (emitted_q == count_q - {{ k_w }}'d1);
{%- if lanes > 1 %}
    assign pop_lane  = res_fire ? ({{ lanes }}'d1 << best_l) : {{ lanes }}'d0;
{%- else %}
    assign pop_lane  = res_fire;
{%- endif %}

    always @(posedge clk) begin
        done <= 1'b0;
        if (rst || clear) begin
            draining_q <= 1'b0;
        end else if (flush) begin
            count_q    <= count;
            emitted_q  <= {KW{1'b0}};
            draining_q <= (count != {KW{1'b0}});
            done       <= (count == {KW{1'b0}});
        end else if (res_fire) begin
            emitted_q <= emitted_q + {{ k_w }}'d1;
            if (res_last) begin
                draining_q <= 1'b0;
                done       <= 1'b1;
            end
        end
    end
endmodule

`default_nettype wire
