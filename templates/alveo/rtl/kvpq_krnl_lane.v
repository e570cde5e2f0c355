{{ header }}
// kvpq_krnl_lane: one engine of the kernel with its own AXI4 master (one HBM pseudo-channel).
// The kernel's front end sends it queries (straight into the engine, which builds their LUTs)
// and, once a query is taken, the job it belongs to. The lane then runs its jobs in order:
//   1. start: when the engine is ready and the previous job's beats are in, start the engine
//      and read ceil(n / TPB) code beats from base + the job's codes offset;
//   2. when the scan has ended, hand the job to the result side with its read error;
//   3. results: pack the 64-bit result words into the master's beats (byte strobes at the
//      ends), write them from out + 8, then the header at out once they are all answered.
// A job with a read error (codebook, job words or codes) or a request error (head out of
// range) is still scanned, to keep the engine in step, but its results are dropped and its
// header says count 0. At most three jobs are between start and header, so the two
// internal queues (depth 4) never overflow.
`default_nettype none

module kvpq_krnl_lane (
    input  wire                 clk,
    input  wire                 rst,
    input  wire [{{ stripes * 64 - 1 }}:0]          base,        // the lane's buffer arguments, stripe 0 lowest
    output wire                 idle,        // no job queued or in flight
    // Codebooks, broadcast by the front end.
    input  wire                 cb_valid,
    output wire                 cb_ready,
    input  wire [{{ sub * cbb - 1 }}:0]   cb_data,
    input  wire [{{ head_w - 1 }}:0]   cb_head,
    // Queries, into the engine.
    input  wire                 q_valid,
    output wire                 q_ready,
    input  wire [{{ head_dim * qb - 1 }}:0]   q_data,
    input  wire [{{ head_w - 1 }}:0]   q_head,
    // The job of the query taken last; job_ready says the queue has room.
    input  wire                 job_valid,
    output wire                 job_ready,
    input  wire [{{ count_w - 1 }}:0]   job_n,       // clamped
    input  wire [{{ k_w - 1 }}:0]   job_k,       // clamped
    input  wire [31:0]          job_beats,   // ceil(job_n / TPB)
    input  wire [63:0]          job_codes,   // byte offsets into the lane's buffer
    input  wire [63:0]          job_out,
    input  wire                 job_rd_err,  // a codebook or job word came with an error
    input  wire                 job_req_err, // head out of range
{%- for p in master_ports %}
    {{ p }}{% if !loop.last %},{% endif %}
{%- endfor %}
);
    localparam CW        = {{ count_w }};      // n_tokens width
    localparam KW        = {{ k_w }};      // k width
    localparam IW        = {{ index_w }};      // index width
    localparam SW        = {{ score_w }};      // score width
    localparam HW        = {{ shift_w }};      // shift width
    localparam BEAT      = {{ beat }};     // code beat bits
    localparam AXI_W     = {{ axi_w }};     // master data bits: the beat, at least 64
    localparam SIZE_LOG2 = {{ axi_size_log2 }};      // log2(AXI_W / 8)
    localparam R         = {{ slots }};      // 64-bit result words per master beat
    localparam RW        = {{ slot_w }};      // bits of a slot number
    localparam JW        = CW + KW + 32 + 128 + 2;   // a queued job
    localparam WQW       = 64 + KW + 2;     // a job waiting for its results: out, count, flags

    // ------------------------------------------------------------------ queues (depth 4)
    reg  [JW-1:0]  jq_q [0:3];
    reg  [1:0]     jq_rd_q, jq_wr_q;
    reg  [2:0]     jq_n_q;
    reg  [WQW-1:0] wq_q [0:3];
    reg  [1:0]     wq_rd_q, wq_wr_q;
    reg  [2:0]     wq_n_q;
    reg  [HW+KW-1:0] dq_q [0:3];     // {shift, count} of each query the engine finished
    reg  [1:0]     dq_rd_q, dq_wr_q;
    reg  [2:0]     dq_n_q;
    reg  [1:0]     inflight_q;       // jobs started whose header is not yet answered

    assign job_ready = (jq_n_q != 3'd4);
    wire   jq_push   = job_valid && job_ready;
    wire [JW-1:0] jq_in = { job_rd_err, job_req_err, job_out, job_codes, job_beats, job_k, job_n };
    wire [JW-1:0] jq_head = jq_q[jq_rd_q];
    wire [CW-1:0] j_n      = jq_head[CW-1:0];
    wire [KW-1:0] j_k      = jq_head[CW +: KW];
    wire [31:0]   j_beats  = jq_head[CW + KW +: 32];
    wire [63:0]   j_codes  = jq_head[CW + KW + 32 +: 64];
    wire [63:0]   j_out    = jq_head[CW + KW + 96 +: 64];
    wire          j_req    = jq_head[JW-2];
    wire          j_rd_err = jq_head[JW-1];
    // min(k, n): the results the engine returns for the job (at most k, so KW bits).
    wire [31:0]   j_min    = ({ {(32-KW){1'b0}}, j_k } < { {(32-CW){1'b0}}, j_n })
                           ? { {(32-KW){1'b0}}, j_k } : { {(32-CW){1'b0}}, j_n };
    wire [KW-1:0] j_count  = j_min[KW-1:0];
    wire          unused_min = &j_min[31:KW];

    // ------------------------------------------------------------------ engine
    wire                start;
    wire                eng_ready;
    wire                eng_busy;
    wire                eng_done;
    wire                code_valid;
    wire                code_ready;
    wire [BEAT-1:0]     code_data;
    wire                beat_valid;
    wire                beat_ready;
    wire [{{ res_n_w - 1 }}:0]       beat_n;
    wire [{{ res_lanes }}*IW-1:0]    beat_index;
    wire [{{ res_lanes }}*SW-1:0]    beat_score;
    wire                beat_last;
    wire [HW-1:0]       res_shift;
    wire [KW-1:0]       res_count;
    // Queries are told apart by their counts, so the last-beat flag carries nothing new.
    wire                unused_beat_last = beat_last;

    pq_topk_engine engine (
        .clk        (clk),
        .rst        (rst),
        .cb_valid   (cb_valid),
        .cb_ready   (cb_ready),
        .cb_data    (cb_data),
        .cb_head    (cb_head),
        .q_valid    (q_valid),
        .q_ready    (q_ready),
        .q_data     (q_data),
        .q_head     (q_head),
        .start      (start),
        .n_tokens   (j_n),
        .k          (j_k),
        .ready      (eng_ready),
        .busy       (eng_busy),
        .done       (eng_done),
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

    // ------------------------------------------------------------------ start side
    localparam L_IDLE = 1'b0,   // wait for a job, the engine and the reader
               L_SCAN = 1'b1;   // the job's scan runs
    reg          l_state_q;
    reg  [63:0]  s_out_q;       // the scanning job: where its results go
    reg  [KW-1:0] s_count_q;
    reg          s_rd_err_q;
    reg          s_req_q;
    wire         rd_busy;
    wire         rd_err;
    assign start = (l_state_q == L_IDLE) && (jq_n_q != 3'd0) && eng_ready && !rd_busy
                && (inflight_q != 2'd3);
    // The scan ended (the engine is ready again) and every beat of the job is in.
    wire         wq_push = (l_state_q == L_SCAN) && eng_ready && !rd_busy && (wq_n_q != 3'd4);

    wire [AXI_W-1:0] code_word;
    assign code_data = code_word[BEAT-1:0];
{%- if axi_w > beat %}
    wire             unused_code_pad = &code_word[AXI_W-1:BEAT];
{%- endif %}
    // The job's beats are striped over S = {{ stripes }} readers, each on its own master: beat b
    // comes from stripe b % S, at the job's codes offset + (b / S) beats of that stripe's
    // buffer. The engine takes them in order, stripe by stripe.
    localparam S = {{ stripes }};
    wire [S-1:0]       rd_busy_s;
    wire [S-1:0]       rd_err_s;
    wire [S-1:0]       rd_valid_s;
    wire [S-1:0]       rd_ready_s;
    wire [S*AXI_W-1:0] rd_data_s;
    assign rd_busy = |rd_busy_s;
    assign rd_err  = |rd_err_s;
{%- if stripes == 1 %}
    assign code_valid    = rd_valid_s[0];
    assign rd_ready_s[0] = code_ready;
    assign code_word     = rd_data_s;
{%- else %}
    reg  [{{ stripe_w - 1 }}:0]       cur_q;   // stripe of the next beat
    assign code_valid = rd_valid_s[cur_q];
    assign code_word  = rd_data_s[cur_q*AXI_W +: AXI_W];
    assign rd_ready_s = {{ "{" }}{{ stripes - 1 }}'d0, code_ready} << cur_q;
    always @(posedge clk) begin
        if (rst || start) cur_q <= {{ stripe_w }}'d0;
        else if (code_valid && code_ready) cur_q <= cur_q + {{ stripe_w }}'d1;
    end
{%- endif %}
{%- for st in stripe_list %}

    kvpq_axi_reader #(.DATA_W(AXI_W), .SIZE_LOG2(SIZE_LOG2)) rd{{ st.n }} (
        .clk       (clk),
        .rst       (rst),
        .start     (start),
        .clear     (start),
        .base      (base[{{ st.n }}*64 +: 64] + j_codes),
{%- if stripes == 1 %}
        .beats     (j_beats),
{%- else %}
        .beats     ((j_beats + 32'd{{ stripes - 1 - st.n }}) >> {{ stripe_log2 }}),
{%- endif %}
        .busy      (rd_busy_s[{{ st.n }}]),
        .err       (rd_err_s[{{ st.n }}]),
{%- for sig in read_sigs %}
        .m_{{ sig }} (m_{{ st.prefix }}{{ sig }}),
{%- endfor %}
        .out_valid (rd_valid_s[{{ st.n }}]),
        .out_ready (rd_ready_s[{{ st.n }}]),
        .out_data  (rd_data_s[{{ st.n }}*AXI_W +: AXI_W])
    );
{%- endfor %}

    // ------------------------------------------------------------------ result side
    localparam [1:0] W_IDLE = 2'd0,   // wait for a job whose scan ended
                     W_RES  = 2'd1,   // results -> packer -> writer
                     W_HDR  = 2'd2,   // results answered: start the header's write
                     W_FIN  = 2'd3;   // header written: wait for its response
    reg  [1:0]     w_state_q;
    reg  [63:0]    w_out_q;
    reg  [KW-1:0]  w_left_q;      // results still to take
    reg            w_drop_q;      // flagged: results are taken and dropped
    reg            w_rd_err_q;
    reg            w_req_q;
    wire           wr_busy;
    wire           wr_err;
    wire [WQW-1:0] wq_head  = wq_q[wq_rd_q];
    wire [63:0]    wq_out   = wq_head[63:0];
    wire [KW-1:0]  wq_count = wq_head[64 +: KW];
    wire           wq_req   = wq_head[WQW-2];
    wire           wq_rderr = wq_head[WQW-1];
    wire           wq_drop  = wq_req || wq_rderr;
    wire           wq_pop   = (w_state_q == W_IDLE) && (wq_n_q != 3'd0) && !wr_busy;

    // Results start at out + 8: the first beat is the one holding that address, the slot
    // within it is where the first word goes.
    wire [63:0]    res_addr  = wq_out + 64'd8;
    wire [63:0]    res_base  = { res_addr[63:SIZE_LOG2], {SIZE_LOG2{1'b0}} };
{%- if slots > 1 %}
    wire [RW-1:0]  res_slot0 = res_addr[3 +: RW];
    wire [RW-1:0]  hdr_slot  = w_out_q[3 +: RW];
{%- else %}
    wire [RW-1:0]  res_slot0 = 1'b0;
    wire [RW-1:0]  hdr_slot  = 1'b0;
    wire           unused_slot = &{res_addr[3], w_out_q[3]};
{%- endif %}
    wire [31:0]    res_words = { {{ 32 - k_w }}'d0, wq_count } + { {{ 32 - slot_w }}'d0, res_slot0 };
    // No results (dropped, or count 0): no beats, even when the area starts mid-beat.
    wire [31:0]    res_beats = (wq_drop || wq_count == {KW{1'b0}}) ? 32'd0 : (res_words + R - 1) >> {{ slot_log2 }};
    wire           unused_addr = &{res_addr[2:0], w_out_q[2:0]};

    // The packer: the engine's result beats (up to L = {{ res_lanes }} words, ascending) are
    // shifted in behind the words already held (slot acc_s_q of a window of 2R slots);
    // whenever R slots are filled they leave as one master beat, and the job's last words
    // leave as a partial beat. Byte strobes mark the slots that hold words, so a result area
    // that starts or ends mid-beat leaves its neighbours untouched. L <= R always (the
    // engine sends at most a code beat's worth of 64-bit words per cycle).
    localparam L = {{ res_lanes }};
    reg  [AXI_W-1:0]   acc_data_q;    // words held, slots 0 .. acc_s_q - 1
    reg  [AXI_W/8-1:0] acc_strb_q;
    reg  [RW-1:0]      acc_s_q;
    reg                flush_q;       // the job's words are in, acc still holds some
    reg  [AXI_W-1:0]   out_data_q;    // the beat offered to the writer
    reg  [AXI_W/8-1:0] out_strb_q;
    reg                out_valid_q;
    wire               wr_in_ready;
    wire               w_res    = (w_state_q == W_RES);
    wire               out_fire = out_valid_q && w_res && wr_in_ready;
    wire               out_free = !out_valid_q || out_fire;
{%- if k_w > res_n_w %}
    wire [KW-1:0]      n_in     = { {{ k_w - res_n_w }}'d0, beat_n };
{%- elif k_w == res_n_w %}
    wire [KW-1:0]      n_in     = beat_n;
{%- else %}
    // A beat never holds more results than k_max.
    wire [KW-1:0]      n_in     = beat_n[KW-1:0];
    wire               unused_n = &beat_n[{{ res_n_w - 1 }}:KW];
{%- endif %}
    wire               more     = w_res && (w_left_q != {KW{1'b0}}) && beat_valid;
    wire               drop_take = more && w_drop_q;
    wire               pk_take  = more && !w_drop_q && !flush_q && out_free;
    assign beat_ready = drop_take || pk_take;
    wire               ends    = (w_left_q == n_in);   // this beat ends the job's results
    wire               flush_go = flush_q && out_free;

    // The beat's words and their strobes, slot l holding result l.
    wire [L*64-1:0]    in_data;
    wire [L*8-1:0]     in_strb;
    wire [L-1:0]       in_mask  = ~({L{1'b1}} << beat_n);   // slots 0 .. beat_n - 1
    genvar gl;
    generate
        for (gl = 0; gl < L; gl = gl + 1) begin : g_word
            wire [SW-1:0] sc = beat_score[gl*SW +: SW];
{%- if score_w < 32 %}
            // Slots past beat_n hold stale words: zero them, the window ORs words together.
            assign in_data[gl*64 +: 64] = {64{in_mask[gl]}}
                                        & { {(32-SW){sc[SW-1]}}, sc, {(32-IW){1'b0}}, beat_index[gl*IW +: IW] };
{%- else %}
            // Slots past beat_n hold stale words: zero them, the window ORs words together.
            assign in_data[gl*64 +: 64] = {64{in_mask[gl]}} & { sc, {(32-IW){1'b0}}, beat_index[gl*IW +: IW] };
{%- endif %}
            assign in_strb[gl*8 +: 8]   = {8{in_mask[gl]}};
        end
    endgenerate
    wire [2*AXI_W-1:0]   win_data = { {{ win_pad }}acc_data_q } | ({ {{ in_pad }}in_data } << (acc_s_q * 64));
    wire [2*AXI_W/8-1:0] win_strb = { {{ win_strb_pad }}acc_strb_q } | ({ {{ in_strb_pad }}in_strb } << (acc_s_q * 8));
    wire [31:0]          total    = { {{ 32 - slot_w }}'d0, acc_s_q } + { {{ 32 - res_n_w }}'d0, beat_n };
    wire                 full     = (total >= R);
    wire [31:0]          spill    = total - R;
    wire                 unused_spill = &spill[31:RW];
    wire                 spill_held = |win_strb[2*AXI_W/8-1:AXI_W/8];
    // The header, in the slot of its address.
    wire [HW+KW-1:0]   dq_head  = dq_q[dq_rd_q];
    wire [63:0]        header   = { w_rd_err_q, wr_err, w_req_q, {(29-HW){1'b0}}, dq_head[KW +: HW],
                                    {(32-KW){1'b0}}, w_drop_q ? {KW{1'b0}} : dq_head[KW-1:0] };
    wire [AXI_W-1:0]   hdr_data = { {{ word_pad }}header } << (hdr_slot * 64);
    wire [AXI_W/8-1:0] hdr_strb = { {{ strb_pad }}8'hff } << (hdr_slot * 8);
    wire               hdr_go   = (w_state_q == W_HDR) && !wr_busy;
    wire               fin      = (w_state_q == W_FIN) && !wr_busy;

    kvpq_axi_writer #(.DATA_W(AXI_W), .SIZE_LOG2(SIZE_LOG2)) wr (
        .clk       (clk),
        .rst       (rst),
        .start     (wq_pop || hdr_go),
        .clear     (wq_pop),
        .base      (base[63:0] + (wq_pop ? res_base : { w_out_q[63:SIZE_LOG2], {SIZE_LOG2{1'b0}} })),
        .beats     (wq_pop ? res_beats : 32'd1),
        .busy      (wr_busy),
        .err       (wr_err),
        .m_awid    (m_awid),
        .m_awaddr  (m_awaddr),
        .m_awlen   (m_awlen),
        .m_awsize  (m_awsize),
        .m_awburst (m_awburst),
        .m_awlock  (m_awlock),
        .m_awcache (m_awcache),
        .m_awprot  (m_awprot),
        .m_awqos   (m_awqos),
        .m_awvalid (m_awvalid),
        .m_awready (m_awready),
        .m_wdata   (m_wdata),
        .m_wstrb   (m_wstrb),
        .m_wlast   (m_wlast),
        .m_wvalid  (m_wvalid),
        .m_wready  (m_wready),
        .m_bid     (m_bid),
        .m_bresp   (m_bresp),
        .m_bvalid  (m_bvalid),
        .m_bready  (m_bready),
        .in_valid  (w_res ? out_valid_q : (w_state_q == W_FIN)),
        .in_ready  (wr_in_ready),
        .in_data   (w_res ? out_data_q : hdr_data),
        .in_strb   (w_res ? out_strb_q : hdr_strb)
    );

    wire dq_push = eng_done;
    wire dq_pop  = fin;
    // The results were all taken and written, and the engine has said the query is done.
    wire res_end = w_res && (w_left_q == {KW{1'b0}}) && !out_valid_q && !flush_q
                && (dq_n_q != 3'd0);

    assign idle = (jq_n_q == 3'd0) && (l_state_q == L_IDLE) && (inflight_q == 2'd0)
               && !eng_busy;

    always @(posedge clk) begin
        if (rst) begin
            jq_rd_q    <= 2'd0;
            jq_wr_q    <= 2'd0;
            jq_n_q     <= 3'd0;
            wq_rd_q    <= 2'd0;
            wq_wr_q    <= 2'd0;
            wq_n_q     <= 3'd0;
            dq_rd_q    <= 2'd0;
            dq_wr_q    <= 2'd0;
            dq_n_q     <= 3'd0;
            inflight_q <= 2'd0;
            l_state_q  <= L_IDLE;
            w_state_q  <= W_IDLE;
            out_valid_q <= 1'b0;
            flush_q     <= 1'b0;
            acc_s_q     <= {RW{1'b0}};
            acc_strb_q  <= {(AXI_W/8){1'b0}};
            w_left_q    <= {KW{1'b0}};
        end else begin
            // Job queue.
            if (jq_push) begin
                jq_q[jq_wr_q] <= jq_in;
                jq_wr_q       <= jq_wr_q + 2'd1;
            end
            if (start) jq_rd_q <= jq_rd_q + 2'd1;
            jq_n_q <= jq_n_q + { 2'd0, jq_push } - { 2'd0, start };
            // Start side.
            if (start) begin
                s_out_q    <= j_out;
                s_count_q  <= j_count;
                s_rd_err_q <= j_rd_err;
                s_req_q    <= j_req;
                l_state_q  <= L_SCAN;
            end
            if (wq_push) begin
                wq_q[wq_wr_q] <= { s_rd_err_q || rd_err, s_req_q, s_count_q, s_out_q };
                wq_wr_q       <= wq_wr_q + 2'd1;
                l_state_q     <= L_IDLE;
            end
            if (wq_pop) wq_rd_q <= wq_rd_q + 2'd1;
            wq_n_q <= wq_n_q + { 2'd0, wq_push } - { 2'd0, wq_pop };
            inflight_q <= inflight_q + { 1'b0, start } - { 1'b0, fin };
            // Engine completions.
            if (dq_push) begin
                dq_q[dq_wr_q] <= { res_shift, res_count };
                dq_wr_q       <= dq_wr_q + 2'd1;
            end
            if (dq_pop) dq_rd_q <= dq_rd_q + 2'd1;
            dq_n_q <= dq_n_q + { 2'd0, dq_push } - { 2'd0, dq_pop };
            // Result side.
            if (wq_pop) begin
                w_out_q    <= wq_out;
                w_left_q   <= wq_count;
                w_drop_q   <= wq_drop;
                w_rd_err_q <= wq_rderr;
                w_req_q    <= wq_req;
                acc_s_q    <= res_slot0;
                acc_data_q <= {AXI_W{1'b0}};
                acc_strb_q <= {(AXI_W/8){1'b0}};
                flush_q    <= 1'b0;
                w_state_q  <= W_RES;
            end
            if (drop_take || pk_take) w_left_q <= w_left_q - n_in;
            if (out_fire) out_valid_q <= 1'b0;
            if (pk_take) begin
                if (full || ends) begin
                    out_data_q  <= win_data[AXI_W-1:0];
                    out_strb_q  <= win_strb[AXI_W/8-1:0];
                    out_valid_q <= 1'b1;
                end
                if (full) begin
                    acc_data_q <= win_data[2*AXI_W-1:AXI_W];
                    acc_strb_q <= win_strb[2*AXI_W/8-1:AXI_W/8];
                    acc_s_q    <= spill[RW-1:0];
                    flush_q    <= ends && spill_held;
                end else begin
                    acc_data_q <= ends ? {AXI_W{1'b0}} : win_data[AXI_W-1:0];
                    acc_strb_q <= ends ? {(AXI_W/8){1'b0}} : win_strb[AXI_W/8-1:0];
                    acc_s_q    <= total[RW-1:0];
                end
            end
            if (flush_go) begin
                out_data_q  <= acc_data_q;
                out_strb_q  <= acc_strb_q;
                out_valid_q <= 1'b1;
                flush_q     <= 1'b0;
            end
            if (res_end)  w_state_q <= W_HDR;
            if (hdr_go)   w_state_q <= W_FIN;
            if (fin)      w_state_q <= W_IDLE;
        end
    end
endmodule

`default_nettype wire
