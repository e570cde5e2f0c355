{{ header }}
// pq_dist_unit: builds the normalized LUT of one query (docs/design.md section 3).
//   For every subspace m and centroid c: acc[m][c] = sum_j q[m*SUB + j] * C[m][c][j],
//   then one block-floating-point shift: lut = acc >>> shift, shift = max(0, bitlen(max|acc|) - (LB-1)).
// The MACs work on groups of MACS consecutive centroids of one subspace, one element per cycle.
// The normalization needs max|acc| first, so every LUT is computed twice: pass 0 folds each
// group's largest |acc| into the maximum, pass 1 recomputes and drains the shifted entries into
// the LUT one per cycle. No accumulator staging memory.
`default_nettype none

module pq_dist_unit (
    input  wire                       clk,
    input  wire                       rst,
    // Codebook stream: one centroid per transfer, entries e = m*K + c in order;
    // element j at bits [j*CB +: CB].
    input  wire                       cb_valid,
    output wire                       cb_ready,
    input  wire [{{ cb_data_w - 1 }}:0]              cb_data,
    input  wire [{{ head_w - 1 }}:0]               cb_head,        // codebook (KV head) of the centroid
    // Query stream: element i at bits [i*QB +: QB].
    input  wire                       q_valid,
    output wire                       q_ready,
    input  wire [{{ q_data_w - 1 }}:0]              q_data,
    input  wire [{{ head_w - 1 }}:0]               q_head,         // codebook (KV head) of the query's LUT
    // LUT write port into the scanner's free buffer.
    input  wire                       lut_free,
    output reg                        lut_we,
    output reg  [{{ m_w - 1 }}:0]               lut_wm,
    output reg  [{{ code_bits - 1 }}:0]               lut_wc,
    output reg  [{{ lut_bits - 1 }}:0]              lut_wdata,
    output reg                        lut_done,
    output reg  [{{ shift_w - 1 }}:0]               lut_shift
);
    // M = {{ m }} subspaces of K = {{ k }} centroids
    localparam SUB     = {{ sub }};           // dimensions per subspace
    localparam QB      = {{ query_bits }};           // query element width (signed)
    localparam CB      = {{ centroid_bits }};           // centroid element width (signed)
    localparam LB      = {{ lut_bits }};           // LUT entry width (signed)
    localparam ACC     = {{ acc_bits }};           // exact accumulator width (signed)
    localparam PW      = {{ prod_bits }};           // product width QB + CB (signed)
    localparam MACS    = {{ macs }};           // parallel MACs
    localparam GROUPS  = {{ groups }};           // M*K / MACS groups per pass
    localparam CENT_W  = SUB * CB;     // one centroid
    localparam QSUB_W  = SUB * QB;     // one query sub-vector

    localparam [2:0] S_IDLE    = 3'd0,
                     S_LOAD    = 3'd1,  // read the group's centroids and query sub-vector
                     S_MAC     = 3'd2,  // SUB multiply cycles
                     S_TAIL    = 3'd3,  // last operands into the multipliers
                     S_TAIL2   = 3'd6,  // last product into the accumulators
                     S_CAPTURE = 3'd4,  // hand accumulators to the drain
                     S_FINISH  = 3'd5;  // end of a pass, once the drain is empty

    reg  [2:0]                state_q;
    reg                       pass_q;         // 0: find max|acc|, 1: write the LUT
    reg  [{{ group_w - 1 }}:0]               group_q;
    reg  [{{ sub_w - 1 }}:0]               elem_q;
    reg  [{{ q_data_w - 1 }}:0]              query_q;
    reg  [{{ shift_w - 1 }}:0]               shift_q;
    reg  [ACC-1:0]            max_abs_q;

    // ---------------------------------------------------------------- codebook memory
    // One memory per MAC, element-serial: MAC i of group g reads element j of its centroid
    // (entry g*MACS + i) at address g*SUB + j, one element per cycle, so each memory is CB
    // bits wide and maps to block or distributed RAM. An incoming centroid is written one
    // element per cycle (cb_ready stays low meanwhile).
    localparam AW      = {{ addr_w }};           // address bits of GROUPS*SUB elements
{%- if heads > 1 %}
    // {{ heads }} codebooks are held, head h's at elements h*GROUPS*SUB ..: cb_head picks the codebook
    // a centroid is written to, q_head the one a LUT is built from (sampled with their data).
    localparam HEADS   = {{ heads }};
    localparam FAW     = {{ full_addr_w }};           // address bits of HEADS*GROUPS*SUB elements
    localparam [FAW-1:0] HEAD_ELEMS = {{ full_addr_w }}'d{{ groups * sub }};   // elements per codebook
    reg  [FAW-1:0]            cb_head_base_q; // first element of the centroid's codebook
    reg  [FAW-1:0]            q_head_base_q;  // first element of the query's codebook
{%- else %}
    // One codebook: the head ports are 1 bit wide and ignored.
    wire                      unused_heads = cb_head[0] ^ q_head[0];
{%- endif %}
    reg  [CENT_W-1:0]         cb_in_q;        // centroid being written, element 0 lowest
    reg                       cb_wr_busy_q;
    reg  [{{ sub_w - 1 }}:0]               cb_wr_elem_q;
    reg  [AW-1:0]             cb_wr_base_q;   // group * SUB of the centroid being written
    reg  [{{ macs_w - 1 }}:0]               cb_wr_slot_q;
    wire                      cb_fire = cb_valid && cb_ready;
    wire [AW-1:0]             cb_wr_addr = cb_wr_base_q + {% if addr_w > sub_w %}{ {(AW-{{ sub_w }}){1'b0}}, cb_wr_elem_q }{% else %}cb_wr_elem_q{% endif %};

    assign cb_ready = (state_q == S_IDLE) && !cb_wr_busy_q;

    always @(posedge clk) begin
        if (rst) begin
            cb_wr_busy_q <= 1'b0;
            cb_wr_elem_q <= {{ sub_w }}'d0;
            cb_wr_base_q <= {AW{1'b0}};
            cb_wr_slot_q <= {{ macs_w }}'d0;
        end else if (cb_fire) begin
            cb_in_q      <= cb_data;
            cb_wr_busy_q <= 1'b1;
            cb_wr_elem_q <= {{ sub_w }}'d0;
{%- if heads > 1 %}
            cb_head_base_q <= {{ cb_head_ext }} * HEAD_ELEMS;
{%- endif %}
        end else if (cb_wr_busy_q) begin
            cb_in_q      <= cb_in_q >> CB;
            cb_wr_elem_q <= cb_wr_elem_q + {{ sub_w }}'d1;
            if (cb_wr_elem_q == {{ sub_w }}'d{{ sub - 1 }}) begin
                // Centroid written: the next one goes to the next slot, or the next group.
                cb_wr_busy_q <= 1'b0;
{%- if macs > 1 %}
                cb_wr_slot_q <= cb_wr_slot_q + {{ macs_w }}'d1;
{%- endif %}
{%- if groups > 1 %}
{%- if macs > 1 %}
                if (cb_wr_slot_q == {{ macs_w }}'d{{ macs - 1 }})
{%- endif %}
                    cb_wr_base_q <= (cb_wr_base_q == {{ addr_w }}'d{{ (groups - 1) * sub }}) ? {AW{1'b0}} : cb_wr_base_q + {{ addr_w }}'d{{ sub }};
{%- endif %}
            end
        end
    end

    // ---------------------------------------------------------------- MAC array
    // All MACs of a group share subspace m = group / (K/MACS) and its query sub-vector.
    wire [{{ m_w - 1 }}:0]               group_m = {{ group_m_expr }};
    wire [{{ code_bits - 1 }}:0]               group_c = {{ group_c_expr }};
    reg  [QSUB_W-1:0]         qsub_sr_q;      // query sub-vector, shifted one element per cycle
    reg                       opnd_valid_q;   // stage 1 holds operands
    reg                       prod_valid_q;   // stage 2 holds a product
    reg  [PW-1:0]             q_opnd_q;       // query element of stage 1
    reg  [AW-1:0]             rd_base_q;      // group_q * SUB
    // Address of the element the MACs multiply next cycle (registered read).
    wire [AW-1:0]             rd_addr = rd_base_q + ((state_q == S_MAC && elem_q != {{ sub_w }}'d{{ sub - 1 }})
                                        ? {% if addr_w > sub_w %}{ {(AW-{{ sub_w }}){1'b0}}, elem_q + {{ sub_w }}'d1 }{% else %}elem_q + {{ sub_w }}'d1{% endif %} : {AW{1'b0}});
    wire [MACS*ACC-1:0]       acc_all;
    wire [PW-1:0]             q_elem = { {(PW-QB){qsub_sr_q[QB-1]}}, qsub_sr_q[QB-1:0]};

    always @(posedge clk) begin
        case (state_q)
            S_LOAD: qsub_sr_q <= query_q[group_m*QSUB_W +: QSUB_W];
            S_MAC:  qsub_sr_q <= qsub_sr_q >> QB;
            default: ;
        endcase
        opnd_valid_q <= (state_q == S_MAC);
        prod_valid_q <= opnd_valid_q;
        q_opnd_q     <= q_elem;
    end

    // One MAC per centroid of the group: the operands are registered (a block RAM's output
    // goes to a register, not into a multiplier), stage 2 multiplies, stage 3 accumulates.
    genvar gm;
    generate
        for (gm = 0; gm < MACS; gm = gm + 1) begin : g_mac
{%- if heads > 1 %}
            reg  [CB-1:0]     cb_mem [0:HEADS*GROUPS*SUB-1];
{%- else %}
            reg  [CB-1:0]     cb_mem [0:GROUPS*SUB-1];
{%- endif %}
            reg  [CB-1:0]     cent_q;         // element rd_addr of the previous cycle
            reg  [CB-1:0]     cent_opnd_q;
            reg  [PW-1:0]     prod_q;
            reg  [ACC-1:0]    acc_q;
            always @(posedge clk) begin
{%- if heads > 1 %}
                if (cb_wr_busy_q && cb_wr_slot_q == gm)
                    cb_mem[cb_head_base_q + {{ wr_addr_ext }}] <= cb_in_q[CB-1:0];
                cent_q <= cb_mem[q_head_base_q + {{ rd_addr_ext }}];
{%- else %}
                if (cb_wr_busy_q && cb_wr_slot_q == gm) cb_mem[cb_wr_addr] <= cb_in_q[CB-1:0];
                cent_q <= cb_mem[rd_addr];
{%- endif %}
                cent_opnd_q <= cent_q;
            end
            always @(posedge clk) begin
                if (state_q == S_LOAD) begin
                    acc_q <= {ACC{1'b0}};
                end else begin
                    if (opnd_valid_q) begin
                        prod_q <= q_opnd_q * { {(PW-CB){cent_opnd_q[CB-1]}}, cent_opnd_q };
                    end
                    if (prod_valid_q) begin
{%- if acc_bits > prod_bits %}
                        acc_q <= acc_q + { {(ACC-PW){prod_q[PW-1]}}, prod_q };
{%- else %}
                        acc_q <= acc_q + prod_q;
{%- endif %}
                    end
                end
            end
            assign acc_all[gm*ACC +: ACC] = acc_q;
        end
    endgenerate

    // ---------------------------------------------------------------- pass 0: max|acc|
    // The largest magnitude of a group's accumulators, by a registered max tree (a heap in
    // one vector: node i has children 2i+1 and 2i+2, the MACS leaves last), one level per
    // cycle so the fold does not limit the clock; max_v_q tracks each capture up the tree.
    localparam LEVELS  = {{ macs_log2 }};
    reg  [(2*MACS-1)*ACC-1:0] tree_q;
    reg  [LEVELS:0]           max_v_q;        // bit l: a capture's values are at level LEVELS-l
    wire                      max_pending = (max_v_q != {(LEVELS+1){1'b0}});
    wire [ACC-1:0]            tree_root = tree_q[ACC-1:0];
    integer mi;
    always @(posedge clk) begin
        for (mi = 0; mi < MACS; mi = mi + 1) begin
            tree_q[(MACS-1+mi)*ACC +: ACC] <= acc_all[mi*ACC+ACC-1]
                ? (~acc_all[mi*ACC +: ACC] + {{ acc_bits }}'d1) : acc_all[mi*ACC +: ACC];
        end
        for (mi = 0; mi < MACS-1; mi = mi + 1) begin
            tree_q[mi*ACC +: ACC] <= (tree_q[(2*mi+1)*ACC +: ACC] > tree_q[(2*mi+2)*ACC +: ACC])
                ? tree_q[(2*mi+1)*ACC +: ACC] : tree_q[(2*mi+2)*ACC +: ACC];
        end
    end

    // ---------------------------------------------------------------- pass 1: drain
    // One accumulator per cycle into the LUT: lut = acc >>> shift.
    reg  [MACS*ACC-1:0]       drain_sr_q;
    reg                       drain_busy_q;
    reg  [{{ macs_w - 1 }}:0]               drain_count_q;
    reg  [{{ m_w - 1 }}:0]               drain_m_q;
    reg  [{{ code_bits - 1 }}:0]               drain_c_q;
    wire [ACC-1:0]            drain_acc = drain_sr_q[ACC-1:0];
    wire signed [ACC-1:0]     drain_shifted = $signed(drain_acc) >>> shift_q;
    wire                      capture = (state_q == S_CAPTURE) && !drain_busy_q;
{%- if acc_bits > lut_bits %}
    wire                      unused_drain_high = ^drain_shifted[ACC-1:LB];  // zero or sign copies
{%- endif %}

    always @(posedge clk) begin
        lut_we <= 1'b0;
        if (rst) begin
            drain_busy_q <= 1'b0;
        end else if (capture && pass_q) begin
            drain_sr_q    <= acc_all;
            drain_busy_q  <= 1'b1;
            drain_count_q <= {{ macs_w }}'d0;
            drain_m_q     <= group_m;
            drain_c_q     <= group_c;
        end else if (drain_busy_q) begin
            drain_sr_q    <= drain_sr_q >> ACC;
            drain_count_q <= drain_count_q + {{ macs_w }}'d1;
            drain_c_q     <= drain_c_q + {{ code_bits }}'d1;
            drain_busy_q  <= (drain_count_q != {{ macs_w }}'d{{ macs - 1 }});
            lut_we        <= 1'b1;
            lut_wm        <= drain_m_q;
            lut_wc        <= drain_c_q;
            lut_wdata     <= drain_shifted[LB-1:0];
        end
    end

    always @(posedge clk) begin
        if (rst || (state_q == S_IDLE)) begin
            max_abs_q <= {ACC{1'b0}};
            max_v_q   <= {(LEVELS+1){1'b0}};
        end else begin
{%- if macs_log2 > 0 %}
            max_v_q <= { max_v_q[LEVELS-1:0], capture && !pass_q };
{%- else %}
            max_v_q <= capture && !pass_q;
{%- endif %}
            if (max_v_q[LEVELS] && (tree_root > max_abs_q)) max_abs_q <= tree_root;
        end
    end

    // shift = max(0, bit_length(max|acc|) - (LB - 1))
    reg  [{{ len_w - 1 }}:0]               max_len;
    integer b;
    always @* begin
        max_len = {{ len_w }}'d0;
        for (b = 0; b < ACC; b = b + 1) begin
            if (max_abs_q[b]) max_len = b[{{ len_w - 1 }}:0] + {{ len_w }}'d1;
        end
    end
    wire [{{ len_w - 1 }}:0]               shift_full = (max_len > {{ len_w }}'d{{ lut_bits - 1 }}) ? (max_len - {{ len_w }}'d{{ lut_bits - 1 }}) : {{ len_w }}'d0;
    wire [{{ shift_w - 1 }}:0]               shift_next = shift_full[{{ shift_w - 1 }}:0];
{%- if len_w > shift_w %}
    wire                      unused_shift_high = ^shift_full[{{ len_w - 1 }}:{{ shift_w }}];  // max shift fits
{%- endif %}

    // ---------------------------------------------------------------- control
    wire q_fire = q_valid && q_ready;
    // Not in the cycle lut_done is high: the engine marks that buffer full only at its end.
    assign q_ready = (state_q == S_IDLE) && lut_free && !lut_done && !cb_wr_busy_q;

    always @(posedge clk) begin
        lut_done <= 1'b0;
        if (rst) begin
            state_q <= S_IDLE;
            pass_q  <= 1'b0;
            group_q <= {{ group_w }}'d0;
            elem_q  <= {{ sub_w }}'d0;
            shift_q <= {{ shift_w }}'d0;
        end else begin
            case (state_q)
                S_IDLE: if (q_fire) begin
                    query_q <= q_data;
{%- if heads > 1 %}
                    q_head_base_q <= {{ q_head_ext }} * HEAD_ELEMS;
{%- endif %}
                    pass_q  <= 1'b0;
                    group_q <= {{ group_w }}'d0;
                    rd_base_q <= {AW{1'b0}};
                    shift_q <= {{ shift_w }}'d0;
                    state_q <= S_LOAD;
                end
                S_LOAD: begin
                    elem_q  <= {{ sub_w }}'d0;
                    state_q <= S_MAC;
                end
                S_MAC: begin
                    elem_q <= elem_q + {{ sub_w }}'d1;
                    if (elem_q == {{ sub_w }}'d{{ sub - 1 }}) state_q <= S_TAIL;
                end
                S_TAIL: state_q <= S_TAIL2;
                S_TAIL2: state_q <= S_CAPTURE;
                S_CAPTURE: if (!drain_busy_q) begin
                    if (group_q == {{ group_w }}'d{{ groups - 1 }}) begin
                        state_q <= S_FINISH;
                    end else begin
                        group_q   <= group_q + {{ group_w }}'d1;
{%- if groups > 1 %}
                        rd_base_q <= rd_base_q + {{ addr_w }}'d{{ sub }};
{%- endif %}
                        state_q   <= S_LOAD;
                    end
                end
                S_FINISH: if (!drain_busy_q && !max_pending) begin
                    if (!pass_q) begin
                        shift_q <= shift_next;
                        pass_q  <= 1'b1;
                        group_q <= {{ group_w }}'d0;
                        rd_base_q <= {AW{1'b0}};
                        state_q <= S_LOAD;
                    end else begin
                        lut_done  <= 1'b1;
                        lut_shift <= shift_q;
                        state_q   <= S_IDLE;
                    end
                end
                default: state_q <= S_IDLE;
            endcase
        end
    end
endmodule

`default_nettype wire
