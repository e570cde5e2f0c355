{{ header }}
// kvpq_krnl: {{ engines }} pq_topk_engine(s) as a Vitis RTL kernel. One run (ap_ctrl_hs) answers a
// batch of queries, e.g. every KV head of a layer:
//   1. if load_codebook != 0, read engine.heads x M*K*SUB int32 centroid integers from
//      `codebooks` (gmem0) into every engine (they stay on chip for later runs);
//   2. read the n_jobs jobs from `jobs` (gmem0) as one stream of int32 words: each is
//      n_tokens, k, head, 0, codes offset, out offset, then its head_dim query integers
//      (docs/design.md section 6). Job j goes to engine j % {{ engines }}: its query into the engine
//      (which builds the LUT from codebook `head`), its job to the engine's lane;
//   3. each lane reads its jobs' code beats and writes their results through its own
//      master, gmem(1 + e), at the offsets the job gives into its `lane<e>` buffer:
//      out[0] = count | shift << 32 | flags, out[1 + i] = index | score << 32 (int32 score).
//      Bit 63: a read of the codebooks, the job or its codes answered SLVERR or DECERR
//      (results withheld, count 0); bit 62: a result write answered an error; bit 61: head
//      is not below engine.heads (results withheld, count 0).
//   ap_done rises once every job's header is written and answered.
// n_tokens, k and n_jobs are clamped to max_tokens = {{ max_tokens }}, k_max = {{ k_max }} and {{ max_jobs }}.
`default_nettype none
// Vitis requires the port name `interrupt`, a C++ keyword-like word to Verilator.
/* verilator lint_off SYMRSVDWORD */

module kvpq_krnl (
{%- for p in ports %}
    {{ p }}{% if !loop.last %},{% endif %}
{%- endfor %}
);
    localparam E         = {{ engines }};          // engines
    localparam EW        = {{ eng_w }};          // bits of an engine number
    localparam SUB       = {{ sub }};          // elements per centroid
    localparam CBB       = {{ cbb }};          // bits per centroid element
    localparam D         = {{ head_dim }};          // query elements
    localparam QB        = {{ qb }};          // bits per query element
    localparam HB        = {{ head_w }};          // bits of a head number
    localparam [31:0] HEADS     = 32'd{{ heads }};   // codebooks on chip
    localparam [31:0] CENTS     = 32'd{{ cents }};   // centroids per codebook (M * K)
    localparam [31:0] CB_ALL    = 32'd{{ cb_all }};   // int32 words of every codebook
    localparam [31:0] JOB_WORDS = 32'd{{ job_words }};   // int32 words per job
    localparam [31:0] TPB       = 32'd{{ tpb }};   // tokens per code beat
    localparam CW        = {{ count_w }};          // n_tokens width
    localparam KW        = {{ k_w }};          // k width
    localparam [31:0] MAX_TOKENS = 32'd{{ max_tokens }};
    localparam [31:0] K_MAX      = 32'd{{ k_max }};
    localparam [31:0] MAX_JOBS   = 32'd{{ max_jobs }};

    // Vitis drives ap_rst_n synchronously; register it once so it reaches every unit cleanly.
    reg rst;
    always @(posedge ap_clk) rst <= !ap_rst_n;

    // ------------------------------------------------------------------ control registers
    localparam [1:0] F_IDLE = 2'd0,   // wait for ap_start
                     F_CB   = 2'd1,   // codebook words -> every engine
                     F_JOB  = 2'd2,   // job words -> the engines and their lanes
                     F_WAIT = 2'd3;   // every job handed over: wait for the lanes
    reg  [1:0]  state_q;
    wire        ap_start;
    wire [E-1:0] lane_idle;
    wire        ap_done = (state_q == F_WAIT) && (&lane_idle);
    wire        run_go  = (state_q == F_IDLE) && ap_start;
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
        .ap_idle   (state_q == F_IDLE),
{%- for a in args %}
        .arg_{{ a.name }} (arg_{{ a.name }}){% if !loop.last %},{% endif %}
{%- endfor %}
    );

    // ------------------------------------------------------------------ gmem0: codebooks, jobs
    wire        load       = (arg_load_codebook != 32'd0);
    wire [31:0] jobs_n     = (arg_n_jobs > MAX_JOBS) ? MAX_JOBS : arg_n_jobs;
    wire [31:0] job_stream = jobs_n * JOB_WORDS;   // < 2^32: n_jobs is clamped
    reg  [31:0] jobs_left_q;                       // jobs not yet handed to a lane
    reg  [31:0] stream_q;                          // words of the job stream
    wire        rd_busy;
    wire        rd_err;                            // a gmem0 read answered an error this run
    reg                cb_valid_q;
    reg  [SUB*CBB-1:0] cb_q;
    reg  [31:0]        cb_fill_q;                  // elements in cb_q
    reg  [31:0]        cb_cent_q;                  // centroids of the current head sent
    reg  [HB-1:0]      cb_head_q;
    reg  [E-1:0]       cb_taken_q;                 // engines that took cb_q
    wire [E-1:0]       lane_cb_ready;
    wire [E-1:0]       cb_take = lane_cb_ready & ~cb_taken_q & {E{cb_valid_q}};
    wire               cb_sent = cb_valid_q && (&(cb_taken_q | cb_take));
    wire        cb_end     = (state_q == F_CB) && !rd_busy && !cb_valid_q;
    wire        rd_start   = (run_go && (load || jobs_n != 32'd0)) || (cb_end && jobs_left_q != 32'd0);
    wire [63:0] rd_base    = (state_q == F_IDLE && load) ? arg_codebooks : arg_jobs;
    wire [31:0] rd_beats   = (state_q == F_IDLE) ? (load ? CB_ALL : job_stream) : stream_q;
    wire        w_valid;
    wire [31:0] w_data;
    reg         q_pend_q;                          // a job's words are in: hand it over
    wire        w_ready    = (state_q == F_CB) ? !cb_valid_q
                           : (state_q == F_JOB) ? !q_pend_q
                           : 1'b0;
    wire        w_fire     = w_valid && w_ready;
    wire        unused_w   = &{w_data[31:CBB], w_data[31:QB]};   // CBB, QB <= 24

    kvpq_axi_reader #(.DATA_W(32), .SIZE_LOG2(2)) rd0 (
        .clk       (ap_clk),
        .rst       (rst),
        .start     (rd_start),
        .base      (rd_base),
        .beats     (rd_beats),
        .clear     (run_go),
        .busy      (rd_busy),
        .err       (rd_err),
{%- for (sig, port) in rd_conns %}
        .m_{{ sig }} ({{ port }}),
{%- endfor %}
        .out_valid (w_valid),
        .out_ready (w_ready),
        .out_data  (w_data)
    );

    // ------------------------------------------------------------------ the job in assembly
    reg  [31:0]       w_idx_q;       // word of the job
    reg  [CW-1:0]     jn_q;
    reg  [KW-1:0]     jk_q;
    reg  [31:0]       jhead_q;
    reg  [63:0]       jcodes_q;
    reg  [63:0]       jout_q;
    reg  [D*QB-1:0]   q_q;
    reg  [EW-1:0]     eng_q;         // engine of the job
    wire [31:0] n_clamped = (w_data > MAX_TOKENS) ? MAX_TOKENS : w_data;
    wire [31:0] k_clamped = (w_data > K_MAX) ? K_MAX : w_data;
    wire        unused_clamped = &{n_clamped[31:CW], k_clamped[31:KW]};
    wire        j_req   = (jhead_q >= HEADS);
    wire [HB-1:0] j_head = j_req ? {HB{1'b0}} : jhead_q[HB-1:0];

    // ceil(n / TPB) beats, by restoring division over 32 cycles (runs while the query loads;
    // TPB need not be a power of two).
    reg  [31:0] div_n_q;          // dividend bits not yet shifted in
    reg  [31:0] div_r_q;          // remainder (< TPB)
    reg  [31:0] beats_q;          // quotient
    reg  [5:0]  div_left_q;       // steps to go
    wire [32:0] div_shift = {div_r_q, div_n_q[31]};
    wire        div_take  = div_shift >= {1'b0, TPB};
    wire [32:0] div_rem   = div_take ? div_shift - {1'b0, TPB} : div_shift;
    wire        unused_div = div_rem[32];

    wire [E-1:0] lane_q_ready;
    wire [E-1:0] lane_job_ready;
    // Hand the job over when its beat count is known and its lane's queue has room.
    wire        deliver = q_pend_q && (div_left_q == 6'd0) && lane_job_ready[eng_q];
    wire        handed  = deliver && lane_q_ready[eng_q];

    // ------------------------------------------------------------------ engines
{%- for l in lanes %}
    kvpq_krnl_lane lane{{ l.e }} (
        .clk         (ap_clk),
        .rst         (rst),
        .base        ({{ l.bases }}),
        .idle        (lane_idle[{{ l.e }}]),
        .cb_valid    (cb_valid_q && !cb_taken_q[{{ l.e }}]),
        .cb_ready    (lane_cb_ready[{{ l.e }}]),
        .cb_data     (cb_q),
        .cb_head     (cb_head_q),
        .q_valid     (deliver && eng_q == {{ eng_w }}'d{{ l.e }}),
        .q_ready     (lane_q_ready[{{ l.e }}]),
        .q_data      (q_q),
        .q_head      (j_head),
        .job_valid   (handed && eng_q == {{ eng_w }}'d{{ l.e }}),
        .job_ready   (lane_job_ready[{{ l.e }}]),
        .job_n       (jn_q),
        .job_k       (jk_q),
        .job_beats   (beats_q),
        .job_codes   (jcodes_q),
        .job_out     (jout_q),
        .job_rd_err  (rd_err),
        .job_req_err (j_req),
{%- for (sig, port) in l.conns %}
        .m_{{ sig }} ({{ port }}){% if !loop.last %},{% endif %}
{%- endfor %}
    );
{%- endfor %}

    // ------------------------------------------------------------------ unused channels
    // gmem0 and the code stripes past 0 only read: their write sides are tied off.
{%- for t in tie_offs %}
    {{ t }}
{%- endfor %}

    // ------------------------------------------------------------------ run sequence
    always @(posedge ap_clk) begin
        if (rst) begin
            state_q     <= F_IDLE;
            cb_valid_q  <= 1'b0;
            cb_fill_q   <= 32'd0;
            cb_cent_q   <= 32'd0;
            cb_head_q   <= {HB{1'b0}};
            cb_taken_q  <= {E{1'b0}};
            q_pend_q    <= 1'b0;
            w_idx_q     <= 32'd0;
            div_left_q  <= 6'd0;
            eng_q       <= {EW{1'b0}};
            jobs_left_q <= 32'd0;
            stream_q    <= 32'd0;
        end else begin
            // Centroids from 32-bit words, element 0 lowest; sent to every engine.
            if (w_fire && state_q == F_CB) begin
{%- if sub == 1 %}
                cb_q <= w_data[CBB-1:0];
{%- else %}
                cb_q <= { w_data[CBB-1:0], cb_q[SUB*CBB-1:CBB] };
{%- endif %}
                if (cb_fill_q == SUB - 1) begin
                    cb_fill_q  <= 32'd0;
                    cb_valid_q <= 1'b1;
                end else begin
                    cb_fill_q <= cb_fill_q + 32'd1;
                end
            end
            if (cb_sent) begin
                cb_valid_q <= 1'b0;
                cb_taken_q <= {E{1'b0}};
                if (cb_cent_q == CENTS - 32'd1) begin
                    cb_cent_q <= 32'd0;
                    cb_head_q <= cb_head_q + {{ head_w }}'d1;
                end else begin
                    cb_cent_q <= cb_cent_q + 32'd1;
                end
            end else begin
                cb_taken_q <= cb_taken_q | cb_take;
            end
            // Job words.
            if (w_fire && state_q == F_JOB) begin
                case (w_idx_q)
                    32'd{{ w_n }}: begin
                        jn_q       <= n_clamped[CW-1:0];
                        div_n_q    <= n_clamped + TPB - 32'd1;
                        div_r_q    <= 32'd0;
                        beats_q    <= 32'd0;
                        div_left_q <= 6'd32;
                    end
                    32'd{{ w_k }}: jk_q <= k_clamped[KW-1:0];
                    32'd{{ w_head }}: jhead_q <= w_data;
                    32'd{{ w_codes }}: jcodes_q[31:0]  <= w_data;
                    32'd{{ w_codes + 1 }}: jcodes_q[63:32] <= w_data;
                    32'd{{ w_out }}: jout_q[31:0]    <= w_data;
                    32'd{{ w_out + 1 }}: jout_q[63:32]   <= w_data;
                    default: if (w_idx_q >= 32'd{{ job_header }}) begin
{%- if head_dim == 1 %}
                        q_q <= w_data[QB-1:0];
{%- else %}
                        q_q <= { w_data[QB-1:0], q_q[D*QB-1:QB] };
{%- endif %}
                    end
                endcase
                if (w_idx_q == JOB_WORDS - 32'd1) begin
                    w_idx_q  <= 32'd0;
                    q_pend_q <= 1'b1;
                end else begin
                    w_idx_q <= w_idx_q + 32'd1;
                end
            end
            if (div_left_q != 6'd0) begin
                div_r_q    <= div_rem[31:0];
                div_n_q    <= { div_n_q[30:0], 1'b0 };
                beats_q    <= { beats_q[30:0], div_take };
                div_left_q <= div_left_q - 6'd1;
            end
            if (handed) begin
                q_pend_q    <= 1'b0;
                eng_q       <= (eng_q == {{ eng_w }}'d{{ engines - 1 }}) ? {EW{1'b0}} : eng_q + {{ eng_w }}'d1;
                jobs_left_q <= jobs_left_q - 32'd1;
                if (jobs_left_q == 32'd1) state_q <= F_WAIT;
            end

            case (state_q)
                F_IDLE: if (ap_start) begin
                    jobs_left_q <= jobs_n;
                    stream_q    <= job_stream;
                    w_idx_q     <= 32'd0;
                    eng_q       <= {EW{1'b0}};
                    cb_head_q   <= {HB{1'b0}};
                    cb_cent_q   <= 32'd0;
                    state_q     <= load ? F_CB : (jobs_n == 32'd0) ? F_WAIT : F_JOB;
                end
                F_CB: if (cb_end) state_q <= (jobs_left_q == 32'd0) ? F_WAIT : F_JOB;
                F_WAIT: if (&lane_idle) state_q <= F_IDLE;
                default: ;
            endcase
        end
    end
endmodule

`default_nettype wire
