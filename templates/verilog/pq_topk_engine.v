{{ header }}
// pq_topk_engine: PQ distance unit + LUT scanner + top-k ({{ strategy }}) behind one control
// interface (docs/design.md section 5).
//   - Load codebooks on cb_* (once per KV head, into slot cb_head of {{ heads }}), then send
//     queries on q_* (q_head names the slot their LUT is built from).
//   - The LUT of a query is built as soon as a LUT buffer is free, so the next query's LUT is
//     built while the current query is scanned (double buffering).
//   - start (while ready) scans n_tokens tokens of the next built LUT from code_* and returns
//     min(k, n_tokens) results in ascending token index on res_*, up to {{ res_lanes }} per beat;
//     done pulses after the last one. ready rises when the scan ends, so the next query's scan
//     overlaps this query's top-k work; queries finish in order, and busy stays high while
//     any is in flight.
//   n_tokens is clamped to MAX_TOKENS and k to K_MAX.
`default_nettype none

module pq_topk_engine (
{%- for (decl, doc) in ports %}
    {{ decl }}{% if !loop.last %},{% endif %}  // {{ doc }}
{%- endfor %}
);
    localparam CNT        = {{ count_w }};
    localparam KW         = {{ k_w }};
{%- if clamp_n %}
    localparam [CNT-1:0] MAX_TOKENS = {{ count_w }}'d{{ max_tokens }};
{%- endif %}
{%- if clamp_k %}
    localparam [KW-1:0]  K_MAX      = {{ k_w }}'d{{ k_max }};
{%- endif %}

    // ---------------------------------------------------------------- LUT double buffer
    reg  [1:0]                lut_full_q;     // buffer holds a built, unscanned LUT
    reg  [{{ 2 * shift_w - 1 }}:0]               lut_shift_q;    // shift of each buffer
    reg                       wsel_q;         // buffer the distance unit fills next
    reg                       rsel_q;         // buffer the scanner reads next

    wire                      lut_we;
    wire [{{ m_w - 1 }}:0]               lut_wm;
    wire [{{ code_bits - 1 }}:0]               lut_wc;
    wire [{{ lut_bits - 1 }}:0]              lut_wdata;
    wire                      lut_done;
    wire [{{ shift_w - 1 }}:0]               lut_shift;

    pq_dist_unit u_dist (
        .clk       (clk),
        .rst       (rst),
        .cb_valid  (cb_valid),
        .cb_ready  (cb_ready),
        .cb_data   (cb_data),
        .cb_head   (cb_head),
        .q_valid   (q_valid),
        .q_ready   (q_ready),
        .q_data    (q_data),
        .q_head    (q_head),
        .lut_free  (!lut_full_q[wsel_q]),
        .lut_we    (lut_we),
        .lut_wm    (lut_wm),
        .lut_wc    (lut_wc),
        .lut_wdata (lut_wdata),
        .lut_done  (lut_done),
        .lut_shift (lut_shift)
    );

    // ---------------------------------------------------------------- scanner
    reg                       scan_start_q;
    reg  [CNT-1:0]            n_q;
    wire [{{ lanes - 1 }}:0]              s_valid;
    wire [{{ lanes * score_bits - 1 }}:0]             s_score;
    wire [{{ lanes * index_w - 1 }}:0]             s_index;
    wire                      s_last;
    wire                      scan_busy;

    lut_scanner u_scan (
        .clk        (clk),
        .rst        (rst),
        .lut_we     (lut_we),
        .lut_wbuf   (wsel_q),
        .lut_wm     (lut_wm),
        .lut_wc     (lut_wc),
        .lut_wdata  (lut_wdata),
        .start      (scan_start_q),
        .start_buf  (rsel_q),
        .n_tokens   (n_q),
        .busy       (scan_busy),
        .code_valid (code_valid),
        .code_ready (code_ready),
        .code_data  (code_data),
        .s_valid    (s_valid),
        .s_score    (s_score),
        .s_index    (s_index),
        .s_last     (s_last)
    );

    // ---------------------------------------------------------------- top-k
    reg                       topk_clear_q;
    wire                      topk_done;
    wire                      topk_accept;
    reg  [KW-1:0]             scan_count_q;   // results of the query being scanned

    topk_{{ strategy }} u_topk (
        .clk       (clk),
        .rst       (rst),
        .clear     (topk_clear_q),
        .accept    (topk_accept),
        .in_valid  (s_valid),
        .in_score  (s_score),
        .in_index  (s_index),
        .flush     (s_last),
        .count     (scan_count_q),
        .res_valid (res_valid),
        .res_ready (res_ready),
        .res_n     (res_n),
        .res_index (res_index),
        .res_score (res_score),
        .res_last  (res_last),
        .done      (topk_done)
    );

    // ---------------------------------------------------------------- queries in flight
    // The next query may scan while the top-k unit still emits this one, so each query's count
    // and shift wait in a two-entry queue. Its head is the query whose results stream, or the
    // last one done until a newer one exists: res_count and res_shift stay valid after done.
    reg  [KW-1:0]             ent_count_q [0:1];
    reg  [{{ shift_w - 1 }}:0]               ent_shift_q [0:1];
    reg                       ent_wr_q, ent_rd_q;
    reg  [1:0]                ent_n_q;        // entries held
    reg                       head_done_q;    // the head's results are all out
    assign res_count = ent_count_q[ent_rd_q];
    assign res_shift = ent_shift_q[ent_rd_q];

    // ---------------------------------------------------------------- control
    localparam [1:0] E_IDLE = 2'd0,   // wait for start
                     E_LUT  = 2'd1,   // wait for the query's LUT and room in the top-k unit
                     E_SCAN = 2'd2;   // scanning

    reg  [1:0]                state_q;
    reg  [KW-1:0]             k_q;
{%- if clamp_n %}
    wire [CNT-1:0]            n_clamped = (n_tokens > MAX_TOKENS) ? MAX_TOKENS : n_tokens;
{%- else %}
    wire [CNT-1:0]            n_clamped = n_tokens;   // every n_tokens value is <= MAX_TOKENS
{%- endif %}
{%- if clamp_k %}
    wire [KW-1:0]             k_clamped = (k > K_MAX) ? K_MAX : k;
{%- else %}
    wire [KW-1:0]             k_clamped = k;          // every k value is <= K_MAX
{%- endif %}
{%- if count_w > k_w %}
    wire [KW-1:0]             count_new = ({ {{ count_w - k_w }}'d0, k_q } < n_q) ? k_q : n_q[KW-1:0];
{%- elif count_w == k_w %}
    wire [KW-1:0]             count_new = (k_q < n_q) ? k_q : n_q;
{%- else %}
    wire [KW-1:0]             count_new = (k_q < { {{ k_w - count_w }}'d0, n_q }) ? k_q : { {{ k_w - count_w }}'d0, n_q };
{%- endif %}
    wire                      unused_scan_busy = scan_busy;
    wire                      scan_go = (state_q == E_LUT) && lut_full_q[rsel_q] && topk_accept;
    wire                      advance = head_done_q && (ent_n_q == 2'd2);

    assign ready = (state_q == E_IDLE);
    assign busy  = (state_q != E_IDLE) || (ent_n_q != { 1'b0, head_done_q });

    always @(posedge clk) begin
        done         <= 1'b0;
        scan_start_q <= 1'b0;
        topk_clear_q <= 1'b0;
        if (rst) begin
            state_q     <= E_IDLE;
            lut_full_q  <= 2'b00;
            wsel_q      <= 1'b0;
            rsel_q      <= 1'b0;
            ent_wr_q    <= 1'b0;
            ent_rd_q    <= 1'b0;
            ent_n_q     <= 2'd0;
            head_done_q <= 1'b0;
        end else begin
            if (lut_done) begin
                lut_full_q[wsel_q] <= 1'b1;
                lut_shift_q[wsel_q*{{ shift_w }} +: {{ shift_w }}] <= lut_shift;
                wsel_q <= !wsel_q;
            end
            if (topk_done) done <= 1'b1;
            if (advance) begin
                ent_rd_q    <= !ent_rd_q;
                head_done_q <= topk_done;
            end else if (topk_done) begin
                head_done_q <= 1'b1;
            end
            if (scan_go) begin
                ent_count_q[ent_wr_q] <= count_new;
                ent_shift_q[ent_wr_q] <= lut_shift_q[rsel_q*{{ shift_w }} +: {{ shift_w }}];
                ent_wr_q              <= !ent_wr_q;
                scan_count_q          <= count_new;
            end
            ent_n_q <= ent_n_q + { 1'b0, scan_go } - { 1'b0, advance };
            case (state_q)
                E_IDLE: if (start) begin
                    n_q     <= n_clamped;
                    k_q     <= k_clamped;
                    state_q <= E_LUT;
                end
                E_LUT: if (scan_go) begin
                    scan_start_q <= 1'b1;
                    topk_clear_q <= 1'b1;
                    state_q      <= E_SCAN;
                end
                E_SCAN: if (s_last) begin
                    // The scanner has read its last LUT entry: the buffer is free for the next
                    // LUT, and the next query may start while the top-k unit finishes this one.
                    lut_full_q[rsel_q] <= 1'b0;
                    rsel_q  <= !rsel_q;
                    state_q <= E_IDLE;
                end
                default: state_q <= E_IDLE;
            endcase
        end
    end
endmodule

`default_nettype wire
