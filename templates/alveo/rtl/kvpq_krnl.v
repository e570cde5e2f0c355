{{ header }}
// kvpq_krnl: pq_topk_engine as a Vitis RTL kernel. One run (ap_ctrl_hs) answers one query:
//   1. if load_codebook != 0, read M*K*SUB int32 centroid integers from `codebook` (gmem0)
//      into the engine (the codebook stays on chip for later runs);
//   2. read head_dim int32 query integers from `query` (gmem0); the engine builds the LUT;
//   3. stream ceil(n_tokens / {{ tpb }}) code beats from `codes` (gmem1) through the scanner;
//   4. write the results to out[1..] and then the header to out[0] (gmem2), 64-bit words:
//      out[0] = count | shift << 32, out[1 + i] = index | score << 32 (score as int32).
//      The results are written once every code beat is in. A read answered SLVERR or DECERR
//      (codebook, query or codes) sets bit 63 of out[0] and withholds the results (count 0);
//      a result write answered SLVERR or DECERR sets bit 62. The run completes either way.
// n_tokens and k are clamped to max_tokens = {{ max_tokens }} and k_max = {{ k_max }}, as in the engine.
`default_nettype none
// Vitis requires the port name `interrupt`, a C++ keyword-like word to Verilator.
/* verilator lint_off SYMRSVDWORD */

module kvpq_krnl (
{%- for p in ports %}
    {{ p }}{% if !loop.last %},{% endif %}
{%- endfor %}
);
    localparam SUB       = {{ sub }};          // elements per centroid
    localparam CBB       = {{ cbb }};          // bits per centroid element
    localparam D         = {{ head_dim }};          // query elements
    localparam QB        = {{ qb }};          // bits per query element
    localparam CB_WORDS  = {{ cb_words }};     // int32 words of the codebook
    localparam [31:0] TPB = 32'd{{ tpb }};   // tokens per code beat
    localparam BEAT      = {{ beat }};         // code beat bits
    localparam CODE_AXI  = {{ code_axi }};         // gmem1 data bits: the beat, at least one 64-bit word
    localparam CW        = {{ count_w }};          // n_tokens width
    localparam KW        = {{ k_w }};          // k width
    localparam IW        = {{ index_w }};          // index width
    localparam SW        = {{ score_w }};          // score width
    localparam HW        = {{ shift_w }};          // shift width
    localparam [31:0] MAX_TOKENS = 32'd{{ max_tokens }};
    localparam [31:0] K_MAX      = 32'd{{ k_max }};

    // Vitis drives ap_rst_n synchronously; register it once so it reaches every unit cleanly.
    reg rst;
    always @(posedge ap_clk) rst <= !ap_rst_n;

    // ------------------------------------------------------------------ control registers
    localparam [2:0] S_IDLE  = 3'd0,   // wait for ap_start
                     S_CB    = 3'd1,   // codebook words -> cb stream
                     S_Q     = 3'd2,   // query words -> q stream
                     S_START = 3'd3,   // start the engine, the code reader and the writer
                     S_RUN   = 3'd4,   // beats in, results out
                     S_HDR   = 3'd5,   // results written: write the header
                     S_FIN   = 3'd6;   // wait for the header's write response
    reg  [2:0]  state_q;
    wire        ap_start;
    wire        rd0_busy;         // gmem0 reader has words to deliver
    wire        wr_busy;          // gmem2 writer has words or responses outstanding
    wire        ap_done = (state_q == S_FIN) && !wr_busy;
    wire        run_go  = (state_q == S_IDLE) && ap_start;   // a run is taken: clear errors
    wire        rd0_err;          // a gmem0 read answered SLVERR/DECERR in this run
    wire        rd1_err;          // a gmem1 read answered SLVERR/DECERR in this run
    wire        wr_err;           // a gmem2 write answered SLVERR/DECERR in this run
    wire        rd_err  = rd0_err || rd1_err;
{%- for a in args %}
    wire [{{ a.size * 8 - 1 }}:0] arg_{{ a.name }};
{%- endfor %}

    kvpq_axi_lite_ctrl ctrl (
        .clk       (ap_clk),
        .rst       (rst),
        .s_awvalid (s_axi_control_awvalid),
        .s_awready (s_axi_control_awready),
        .s_awaddr  (s_axi_control_awaddr),
        .s_wvalid  (s_axi_control_wvalid),
        .s_wready  (s_axi_control_wready),
        .s_wdata   (s_axi_control_wdata),
        .s_wstrb   (s_axi_control_wstrb),
        .s_bvalid  (s_axi_control_bvalid),
        .s_bready  (s_axi_control_bready),
        .s_bresp   (s_axi_control_bresp),
        .s_arvalid (s_axi_control_arvalid),
        .s_arready (s_axi_control_arready),
        .s_araddr  (s_axi_control_araddr),
        .s_rvalid  (s_axi_control_rvalid),
        .s_rready  (s_axi_control_rready),
        .s_rdata   (s_axi_control_rdata),
        .s_rresp   (s_axi_control_rresp),
        .interrupt (interrupt),
        .ap_start  (ap_start),
        .ap_done   (ap_done),
        .ap_idle   (state_q == S_IDLE),
{%- for a in args %}
        .arg_{{ a.name }} (arg_{{ a.name }}){% if !loop.last %},{% endif %}
{%- endfor %}
    );

    // Arguments of the run in flight, clamped like the engine clamps its ports.
    reg  [CW-1:0] n_q;
    reg  [KW-1:0] k_q;
    reg  [31:0]   count_q;        // min(k, n_tokens): result words to write
    wire [31:0] n_clamped = (arg_n_tokens > MAX_TOKENS) ? MAX_TOKENS : arg_n_tokens;
    wire [31:0] k_clamped = (arg_k > K_MAX) ? K_MAX : arg_k;
    wire [31:0] count_next = (k_clamped < n_clamped) ? k_clamped : n_clamped;
    wire        unused_args = &{n_clamped[31:CW], k_clamped[31:KW]};

    // ceil(n / TPB) beats, by restoring division over 32 cycles (runs while the codebook
    // and the query load; TPB need not be a power of two).
    reg  [31:0] div_n_q;          // dividend bits not yet shifted in
    reg  [31:0] div_r_q;          // remainder (< TPB)
    reg  [31:0] beats_q;          // quotient
    reg  [5:0]  div_left_q;       // steps to go
    wire [32:0] div_shift = {div_r_q, div_n_q[31]};
    wire        div_take  = div_shift >= {1'b0, TPB};
    wire [32:0] div_rem   = div_take ? div_shift - {1'b0, TPB} : div_shift;
    wire        unused_div = div_rem[32];

    // ------------------------------------------------------------------ engine
    reg                 cb_valid_q;
    wire                cb_ready;
    reg  [SUB*CBB-1:0]  cb_q;
    reg  [31:0]         cb_fill_q;     // elements in cb_q
    reg                 q_valid_q;
    wire                q_ready;
    reg  [D*QB-1:0]     q_q;
    reg  [31:0]         q_fill_q;
    wire                busy;
    wire                unused_ready;
    wire                done;
    wire                start = (state_q == S_START) && (div_left_q == 6'd0) && !busy;
    wire                code_valid;
    wire                code_ready;
    wire [BEAT-1:0]     code_data;
    wire                beat_valid;
    wire                beat_ready;
    wire [{{ res_n_w - 1 }}:0]       beat_n;
    wire [{{ res_lanes }}*IW-1:0]    beat_index;
    wire [{{ res_lanes }}*SW-1:0]    beat_score;
    wire                beat_last;
    wire                res_valid;
    wire                res_ready;
    wire [IW-1:0]       res_index;
    wire [SW-1:0]       res_score;
    wire                res_last;
    wire [HW-1:0]       res_shift;
    wire [KW-1:0]       res_count;
    wire                unused_res_last = res_last;

    pq_topk_engine engine (
        .clk        (ap_clk),
        .rst        (rst),
        .cb_valid   (cb_valid_q),
        .cb_ready   (cb_ready),
        .cb_data    (cb_q),
        .cb_head    ({ {{ head_w }}{1'b0} }),   // one query per run: codebook 0
        .q_valid    (q_valid_q),
        .q_ready    (q_ready),
        .q_data     (q_q),
        .q_head     ({ {{ head_w }}{1'b0} }),
        .start      (start),
        .n_tokens   (n_q),
        .k          (k_q),
        .ready      (unused_ready),   // one query per call: start only when not busy
        .busy       (busy),
        .done       (done),
        .code_valid (code_valid),
        .code_ready (code_ready),
        .code_data  (code_data),
        .res_valid  (beat_valid),
        .res_ready  (beat_ready),
        .res_n      (beat_n),
        .res_index  (beat_index),
        .res_score  (beat_score),
        .res_last   (beat_last),
        .res_shift  (res_shift),
        .res_count  (res_count)
    );

    // The 64-bit result writer takes one result per cycle.
    result_unpack unpack (
        .clk       (ap_clk),
        .rst       (rst),
        .in_valid  (beat_valid),
        .in_ready  (beat_ready),
        .in_n      (beat_n),
        .in_index  (beat_index),
        .in_score  (beat_score),
        .in_last   (beat_last),
        .out_valid (res_valid),
        .out_ready (res_ready),
        .out_index (res_index),
        .out_score (res_score),
        .out_last  (res_last)
    );

    // ------------------------------------------------------------------ gmem0: codebook, query
    wire        rd0_start = (state_q == S_IDLE && ap_start)
                         || (state_q == S_CB && !rd0_busy && !cb_valid_q);
    wire [63:0] rd0_base  = (state_q == S_IDLE && arg_load_codebook != 32'd0) ? arg_codebook : arg_query;
    wire [31:0] rd0_beats = (state_q == S_IDLE && arg_load_codebook != 32'd0) ? CB_WORDS : D;
    wire        w0_valid;
    wire [31:0] w0_data;
    // A word is taken while the centroid (or query) being assembled has room.
    wire        w0_ready = (state_q == S_CB) ? !cb_valid_q
                         : (state_q == S_Q)  ? !q_valid_q
                         : 1'b0;
    wire        w0_fire  = w0_valid && w0_ready;
    wire        unused_w0 = &{w0_data[31:CBB], w0_data[31:QB]};   // CBB, QB <= 24

    kvpq_axi_reader #(.DATA_W(32), .SIZE_LOG2(2)) rd0 (
        .clk       (ap_clk),
        .rst       (rst),
        .start     (rd0_start),
        .base      (rd0_base),
        .beats     (rd0_beats),
        .clear     (run_go),
        .busy      (rd0_busy),
        .err       (rd0_err),
        .m_arid    (m_axi_gmem0_arid),
        .m_araddr  (m_axi_gmem0_araddr),
        .m_arlen   (m_axi_gmem0_arlen),
        .m_arsize  (m_axi_gmem0_arsize),
        .m_arburst (m_axi_gmem0_arburst),
        .m_arlock  (m_axi_gmem0_arlock),
        .m_arcache (m_axi_gmem0_arcache),
        .m_arprot  (m_axi_gmem0_arprot),
        .m_arqos   (m_axi_gmem0_arqos),
        .m_arvalid (m_axi_gmem0_arvalid),
        .m_arready (m_axi_gmem0_arready),
        .m_rid     (m_axi_gmem0_rid),
        .m_rdata   (m_axi_gmem0_rdata),
        .m_rresp   (m_axi_gmem0_rresp),
        .m_rlast   (m_axi_gmem0_rlast),
        .m_rvalid  (m_axi_gmem0_rvalid),
        .m_rready  (m_axi_gmem0_rready),
        .out_valid (w0_valid),
        .out_ready (w0_ready),
        .out_data  (w0_data)
    );

    // ------------------------------------------------------------------ gmem1: code beats
    wire                rd1_busy;
    wire [CODE_AXI-1:0] code_word;
    assign code_data = code_word[BEAT-1:0];
{%- if code_axi > beat %}
    wire                unused_code_pad = &code_word[CODE_AXI-1:BEAT];
{%- endif %}
    kvpq_axi_reader #(.DATA_W(CODE_AXI), .SIZE_LOG2({{ code_size_log2 }})) rd1 (
        .clk       (ap_clk),
        .rst       (rst),
        .start     (start),
        .base      (arg_codes),
        .beats     (beats_q),
        .clear     (run_go),
        .busy      (rd1_busy),
        .err       (rd1_err),
        .m_arid    (m_axi_gmem1_arid),
        .m_araddr  (m_axi_gmem1_araddr),
        .m_arlen   (m_axi_gmem1_arlen),
        .m_arsize  (m_axi_gmem1_arsize),
        .m_arburst (m_axi_gmem1_arburst),
        .m_arlock  (m_axi_gmem1_arlock),
        .m_arcache (m_axi_gmem1_arcache),
        .m_arprot  (m_axi_gmem1_arprot),
        .m_arqos   (m_axi_gmem1_arqos),
        .m_arvalid (m_axi_gmem1_arvalid),
        .m_arready (m_axi_gmem1_arready),
        .m_rid     (m_axi_gmem1_rid),
        .m_rdata   (m_axi_gmem1_rdata),
        .m_rresp   (m_axi_gmem1_rresp),
        .m_rlast   (m_axi_gmem1_rlast),
        .m_rvalid  (m_axi_gmem1_rvalid),
        .m_rready  (m_axi_gmem1_rready),
        .out_valid (code_valid),
        .out_ready (code_ready),
        .out_data  (code_word)
    );

    // ------------------------------------------------------------------ gmem2: results
    // The results' writer starts once every code beat is in, so a read error is known: the
    // results are then dropped (0 beats) and the header says count 0.
    reg  [63:0] header_q;         // count | shift << 32, from the engine
    reg         wr_go_q;          // the results' writer was started in this run
    reg         done_q;           // the engine finished in this run
    wire        res_go   = (state_q == S_RUN) && !wr_go_q && !rd1_busy;
    wire        wr_start = res_go || (state_q == S_HDR && !wr_busy);
    wire [63:0] wr_base  = res_go ? arg_out + 64'd8 : arg_out;
    wire [31:0] wr_beats = res_go ? (rd_err ? 32'd0 : count_q) : 32'd1;
    wire        wr_valid = (state_q == S_RUN) ? res_valid && wr_go_q && !rd_err : (state_q == S_FIN);
    wire        wr_ready;
    wire [63:0] header   = { rd_err, wr_err, header_q[61:32], rd_err ? 32'd0 : header_q[31:0] };
    wire        unused_header = &header_q[63:62];   // shift is narrower than 30 bits
    // Score sign-extended to 32 bits, index zero-extended.
{%- if score_w < 32 %}
    wire [31:0] score32 = { {(32-SW){res_score[SW-1]}}, res_score };
{%- else %}
    wire [31:0] score32 = res_score;
{%- endif %}
    wire [63:0] wr_data  = (state_q == S_RUN) ? { score32, {(32-IW){1'b0}}, res_index } : header;
    assign res_ready = (state_q == S_RUN) && wr_go_q && (rd_err || wr_ready);

    kvpq_axi_writer #(.DATA_W(64), .SIZE_LOG2(3)) wr (
        .clk       (ap_clk),
        .rst       (rst),
        .start     (wr_start),
        .base      (wr_base),
        .beats     (wr_beats),
        .clear     (run_go),
        .busy      (wr_busy),
        .err       (wr_err),
        .m_awid    (m_axi_gmem2_awid),
        .m_awaddr  (m_axi_gmem2_awaddr),
        .m_awlen   (m_axi_gmem2_awlen),
        .m_awsize  (m_axi_gmem2_awsize),
        .m_awburst (m_axi_gmem2_awburst),
        .m_awlock  (m_axi_gmem2_awlock),
        .m_awcache (m_axi_gmem2_awcache),
        .m_awprot  (m_axi_gmem2_awprot),
        .m_awqos   (m_axi_gmem2_awqos),
        .m_awvalid (m_axi_gmem2_awvalid),
        .m_awready (m_axi_gmem2_awready),
        .m_wdata   (m_axi_gmem2_wdata),
        .m_wstrb   (m_axi_gmem2_wstrb),
        .m_wlast   (m_axi_gmem2_wlast),
        .m_wvalid  (m_axi_gmem2_wvalid),
        .m_wready  (m_axi_gmem2_wready),
        .m_bid     (m_axi_gmem2_bid),
        .m_bresp   (m_axi_gmem2_bresp),
        .m_bvalid  (m_axi_gmem2_bvalid),
        .m_bready  (m_axi_gmem2_bready),
        .in_valid  (wr_valid),
        .in_ready  (wr_ready),
        .in_data   (wr_data)
    );

    // ------------------------------------------------------------------ unused channels
    // gmem0 and gmem1 only read, gmem2 only writes; the other direction is tied off.
{%- for t in tie_offs %}
    {{ t }}
{%- endfor %}

    // ------------------------------------------------------------------ run sequence
    always @(posedge ap_clk) begin
        if (rst) begin
            state_q    <= S_IDLE;
            cb_valid_q <= 1'b0;
            cb_fill_q  <= 32'd0;
            q_valid_q  <= 1'b0;
            q_fill_q   <= 32'd0;
            div_left_q <= 6'd0;
            n_q        <= {CW{1'b0}};
            k_q        <= {KW{1'b0}};
            count_q    <= 32'd0;
            header_q   <= 64'd0;
            wr_go_q    <= 1'b0;
            done_q     <= 1'b0;
        end else begin
            if (res_go) wr_go_q <= 1'b1;
            // Assemble centroids and the query from 32-bit words, element 0 lowest.
            if (w0_fire && state_q == S_CB) begin
{%- if sub == 1 %}
                cb_q <= w0_data[CBB-1:0];
{%- else %}
                cb_q <= { w0_data[CBB-1:0], cb_q[SUB*CBB-1:CBB] };
{%- endif %}
                if (cb_fill_q == SUB - 1) begin
                    cb_fill_q  <= 32'd0;
                    cb_valid_q <= 1'b1;
                end else begin
                    cb_fill_q <= cb_fill_q + 32'd1;
                end
            end
            if (cb_valid_q && cb_ready) cb_valid_q <= 1'b0;
            if (w0_fire && state_q == S_Q) begin
{%- if head_dim == 1 %}
                q_q <= w0_data[QB-1:0];
{%- else %}
                q_q <= { w0_data[QB-1:0], q_q[D*QB-1:QB] };
{%- endif %}
                if (q_fill_q == D - 1) begin
                    q_fill_q  <= 32'd0;
                    q_valid_q <= 1'b1;
                end else begin
                    q_fill_q <= q_fill_q + 32'd1;
                end
            end
            if (q_valid_q && q_ready) q_valid_q <= 1'b0;
            if (div_left_q != 6'd0) begin
                div_r_q    <= div_rem[31:0];
                div_n_q    <= { div_n_q[30:0], 1'b0 };
                beats_q    <= { beats_q[30:0], div_take };
                div_left_q <= div_left_q - 6'd1;
            end

            case (state_q)
                S_IDLE: if (ap_start) begin
                    n_q        <= n_clamped[CW-1:0];
                    k_q        <= k_clamped[KW-1:0];
                    count_q    <= count_next;
                    div_n_q    <= n_clamped + TPB - 32'd1;
                    div_r_q    <= 32'd0;
                    beats_q    <= 32'd0;
                    div_left_q <= 6'd32;
                    wr_go_q    <= 1'b0;
                    done_q     <= 1'b0;
                    state_q    <= (arg_load_codebook != 32'd0) ? S_CB : S_Q;
                end
                S_CB: if (!rd0_busy && !cb_valid_q) state_q <= S_Q;
                S_Q:  if (q_valid_q && q_ready) state_q <= S_START;
                S_START: if (start) state_q <= S_RUN;
                S_RUN: begin
                    if (done) begin
                        header_q <= { {(32-HW){1'b0}}, res_shift, {(32-KW){1'b0}}, res_count };
                        done_q   <= 1'b1;
                    end
                    // The engine is done and the results' writer took its beats.
                    if ((done || done_q) && wr_go_q) state_q <= S_HDR;
                end
                S_HDR: if (!wr_busy) state_q <= S_FIN;
                S_FIN: if (!wr_busy) state_q <= S_IDLE;
                default: state_q <= S_IDLE;
            endcase
        end
    end
endmodule

`default_nettype wire
