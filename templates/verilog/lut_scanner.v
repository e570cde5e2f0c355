{{ header }}
// lut_scanner: LANES tokens per cycle, initiation interval 1 (docs/design.md section 5).
//   score[t] = sum over m of LUT[m][code[t][m]], exact, SW-bit signed.
// Every lane owns a copy of the M LUT banks (one read per bank per cycle); each bank holds both
// LUT buffers (address MSB = buffer), so the next query's LUT is written while this one is read.
// A code beat holds TOKENS_PER_BEAT tokens and is consumed in GROUPS cycles of LANES tokens.
// Pipeline: issue (stage 0) -> LUT read (stage 1) -> adder tree ({{ tree_levels }} level(s)) -> scores.
`default_nettype none

module lut_scanner (
    input  wire                       clk,
    input  wire                       rst,
    // LUT write port (from pq_dist_unit)
    input  wire                       lut_we,
    input  wire                       lut_wbuf,
    input  wire [{{ m_w - 1 }}:0]               lut_wm,
    input  wire [{{ code_bits - 1 }}:0]               lut_wc,
    input  wire [{{ lut_bits - 1 }}:0]              lut_wdata,
    // Control: start scanning n_tokens tokens with LUT buffer start_buf
    input  wire                       start,
    input  wire                       start_buf,
    input  wire [{{ count_w - 1 }}:0]              n_tokens,
    output wire                       busy,
    // Code beats (docs/design.md section 4)
    input  wire                       code_valid,
    output wire                       code_ready,
    input  wire [{{ beat_bits - 1 }}:0]             code_data,
    // Scores: one per lane per cycle; s_last marks the query's final group
    output wire [{{ lanes - 1 }}:0]              s_valid,
    output wire [{{ lanes * score_bits - 1 }}:0]             s_score,
    output wire [{{ lanes * index_w - 1 }}:0]             s_index,
    output wire                       s_last
);
    localparam M               = {{ m }};      // subspaces
    localparam K               = {{ k }};      // centroids per subspace
    localparam B               = {{ code_bits }};      // code bits
    localparam LB              = {{ lut_bits }};      // LUT entry (signed)
    localparam SW              = {{ score_bits }};      // score (signed)
    localparam LANES           = {{ lanes }};
    // A beat carries {{ tokens_per_beat }} tokens, issued in {{ groups }} group(s) of LANES.
    localparam GROUP_BITS      = LANES * M * B;
    localparam IDX             = {{ index_w }};      // token index
    localparam CNT             = {{ ctr_w }};      // internal token counters (room for a beat past max_tokens)
    localparam [CNT-1:0] LANES_C           = {{ ctr_w }}'d{{ lanes }};
    localparam [CNT-1:0] TOKENS_PER_BEAT_C = {{ ctr_w }}'d{{ tokens_per_beat }};

    // ---------------------------------------------------------------- stage 0: issue
    reg                       scanning_q;
    reg                       rbuf_q;
    reg  [CNT-1:0]            remaining_q;    // tokens not issued yet
    reg  [CNT-1:0]            to_fetch_q;     // tokens not covered by accepted beats
    reg  [CNT-1:0]            base_q;         // index of the next group's lane 0
    reg                       beat_valid_q;
    reg  [{{ beat_bits - 1 }}:0]            beat_q;
{%- if groups > 1 %}
    reg  [{{ group_w - 1 }}:0]               group_q;
{%- endif %}

    wire                      issue        = scanning_q && beat_valid_q;
    wire                      issue_final  = issue && (remaining_q <= LANES_C);
{%- if groups > 1 %}
    wire                      issue_beat_end = issue && ((group_q == {{ group_w }}'d{{ groups - 1 }}) || issue_final);
    wire [GROUP_BITS-1:0]     issue_codes  = beat_q[group_q*GROUP_BITS +: GROUP_BITS];
{%- else %}
    wire                      issue_beat_end = issue;
    wire [GROUP_BITS-1:0]     issue_codes  = beat_q[GROUP_BITS-1:0];
{%- endif %}
{%- if beat_bits > group_bits * groups %}
    wire                      unused_beat_padding = ^beat_q[{{ beat_bits - 1 }}:{{ group_bits * groups }}];
{%- endif %}
    wire                      code_fire    = code_valid && code_ready;
{%- if ctr_w > count_w %}
    wire [CNT-1:0]            n_tokens_ext = { {{ ctr_w - count_w }}'d0, n_tokens };
{%- else %}
    wire [CNT-1:0]            n_tokens_ext = n_tokens;
{%- endif %}

    assign code_ready = scanning_q && (to_fetch_q != {{ ctr_w }}'d0) && (!beat_valid_q || issue_beat_end);
    assign busy       = scanning_q;

    reg  [GROUP_BITS-1:0]     s0_codes_q;
    reg  [LANES-1:0]          s0_valid_q;
    reg  [CNT-1:0]            s0_base_q;
    reg                       s0_last_q;
    integer l;

    always @(posedge clk) begin
        if (rst) begin
            scanning_q   <= 1'b0;
            beat_valid_q <= 1'b0;
            s0_valid_q   <= {LANES{1'b0}};
            s0_last_q    <= 1'b0;
        end else begin
            s0_valid_q <= {LANES{1'b0}};
            s0_last_q  <= 1'b0;
            if (start && !scanning_q) begin
                rbuf_q       <= start_buf;
                remaining_q  <= n_tokens_ext;
                to_fetch_q   <= n_tokens_ext;
                base_q       <= {CNT{1'b0}};
                beat_valid_q <= 1'b0;
{%- if groups > 1 %}
                group_q      <= {{ group_w }}'d0;
{%- endif %}
                // An empty query still produces one (empty) last group.
                scanning_q   <= (n_tokens != {{ count_w }}'d0);
                s0_last_q    <= (n_tokens == {{ count_w }}'d0);
            end else begin
                if (issue) begin
                    s0_codes_q <= issue_codes;
                    for (l = 0; l < LANES; l = l + 1) begin
                        s0_valid_q[l] <= (remaining_q > l[CNT-1:0]);
                    end
                    s0_base_q   <= base_q;
                    s0_last_q   <= issue_final;
                    base_q      <= base_q + LANES_C;
                    remaining_q <= issue_final ? {{ ctr_w }}'d0 : remaining_q - LANES_C;
{%- if groups > 1 %}
                    group_q     <= issue_beat_end ? {{ group_w }}'d0 : group_q + {{ group_w }}'d1;
{%- endif %}
                    if (issue_final) scanning_q <= 1'b0;
                end
                if (code_fire) begin
                    beat_q     <= code_data;
                    to_fetch_q <= (to_fetch_q > TOKENS_PER_BEAT_C) ? to_fetch_q - TOKENS_PER_BEAT_C : {{ ctr_w }}'d0;
                end
                if (code_fire) beat_valid_q <= 1'b1;
                else if (issue_beat_end) beat_valid_q <= 1'b0;
            end
        end
    end

    // ---------------------------------------------------------------- stage 1 ..: pipeline of lane flags
    // Stage 1 is the LUT read, stage 2 its register; stages 3.. are adder tree levels.
{%- for stage in stages %}
    reg  [LANES-1:0]          s{{ stage }}_valid_q;
    reg  [CNT-1:0]            s{{ stage }}_base_q;
    reg                       s{{ stage }}_last_q;
{%- endfor %}

    always @(posedge clk) begin
        if (rst) begin
{%- for stage in stages %}
            s{{ stage }}_valid_q <= {LANES{1'b0}};
            s{{ stage }}_last_q  <= 1'b0;
{%- endfor %}
        end else begin
{%- for stage in stages %}
            s{{ stage }}_valid_q <= s{{ stage - 1 }}_valid_q;
            s{{ stage }}_last_q  <= s{{ stage - 1 }}_last_q;
{%- endfor %}
        end
{%- for stage in stages %}
        s{{ stage }}_base_q <= s{{ stage - 1 }}_base_q;
{%- endfor %}
    end

    assign s_valid = s{{ last_stage }}_valid_q;
    assign s_last  = s{{ last_stage }}_last_q;

    // ---------------------------------------------------------------- LUT banks and adder trees
    wire [M-1:0] lut_we_m = lut_we ? ({{ m }}'d1 << lut_wm) : {{ m }}'d0;

    genvar gl;
    generate
        for (gl = 0; gl < LANES; gl = gl + 1) begin : g_lane
{%- for sub in subspaces %}
            reg  [LB-1:0] lut_mem_{{ sub }} [0:2*K-1];
            reg  [LB-1:0] lut_rd_{{ sub }};
            always @(posedge clk) begin
                if (lut_we_m[{{ sub }}]) lut_mem_{{ sub }}[{lut_wbuf, lut_wc}] <= lut_wdata;
                lut_rd_{{ sub }} <= lut_mem_{{ sub }}[{rbuf_q, s0_codes_q[(gl*M + {{ sub }})*B +: B]}];
            end
            reg  [SW-1:0] t0_{{ sub }};     // stage 2
            always @(posedge clk) begin
{%- if score_bits > lut_bits %}
                t0_{{ sub }} <= { {(SW-LB){lut_rd_{{ sub }}[LB-1]}}, lut_rd_{{ sub }} };
{%- else %}
                t0_{{ sub }} <= lut_rd_{{ sub }};
{%- endif %}
            end
{%- endfor %}
{%- for level in tree %}

            // stage {{ level.stage }}: adder tree level {{ level.depth }}
{%- for node in level.nodes %}
            reg  [SW-1:0] t{{ level.depth }}_{{ node.index }};
{%- endfor %}
            always @(posedge clk) begin
{%- for node in level.nodes %}
                t{{ level.depth }}_{{ node.index }} <= {% if node.is_pair %}{{ node.a }} + {{ node.b }}{% else %}{{ node.a }}{% endif %};
{%- endfor %}
            end
{%- endfor %}

            assign s_score[gl*SW +: SW] = t{{ tree_levels }}_0;
            wire [CNT-1:0] lane_index = s{{ last_stage }}_base_q + gl;
            assign s_index[gl*IDX +: IDX] = lane_index[IDX-1:0];
            wire unused_index_high = ^lane_index[CNT-1:IDX];  // valid lanes index < max_tokens
        end
    endgenerate
endmodule

`default_nettype wire
