{{ header }}
// pq_topk_engine: PQ distance unit + LUT scanner + top-k ({{ strategy }}) behind one control
// interface (docs/design.md section 5).
//   - Load codebooks on cb_* (once per KV head), then send queries on q_*.
//   - The LUT of a query is built as soon as a LUT buffer is free, so the next query's LUT is
//     built while the current query is scanned (double buffering).
//   - start (while !busy) scans n_tokens tokens of the next built LUT from code_* and returns
//     min(k, n_tokens) results in ascending token index on res_*, up to {{ res_lanes }} per beat;
//     done pulses after the last one.
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
        .q_valid   (q_valid),
        .q_ready   (q_ready),
        .q_data    (q_data),
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

    topk_{{ strategy }} u_topk (
        .clk       (clk),
        .rst       (rst),
        .clear     (topk_clear_q),
        .in_valid  (s_valid),
        .in_score  (s_score),
        .in_index  (s_index),
        .flush     (s_last),
        .count     (res_count),
        .res_valid (res_valid),
        .res_ready (res_ready),
        .res_n     (res_n),
        .res_index (res_index),
        .res_score (res_score),
        .res_last  (res_last),
        .done      (topk_done)
    );

    // ---------------------------------------------------------------- control
    localparam [1:0] E_IDLE = 2'd0,   // wait for start
                     E_LUT  = 2'd1,   // wait for the query's LUT
                     E_SCAN = 2'd2,   // scanning
                     E_EMIT = 2'd3;   // top-k emitting results

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
    wire                      unused_scan_busy = scan_busy;

    assign busy = (state_q != E_IDLE);

    always @(posedge clk) begin
        done         <= 1'b0;
        scan_start_q <= 1'b0;
        topk_clear_q <= 1'b0;
        if (rst) begin
            state_q    <= E_IDLE;
            lut_full_q <= 2'b00;
            wsel_q     <= 1'b0;
            rsel_q     <= 1'b0;
        end else begin
            if (lut_done) begin
                lut_full_q[wsel_q] <= 1'b1;
                lut_shift_q[wsel_q*{{ shift_w }} +: {{ shift_w }}] <= lut_shift;
                wsel_q <= !wsel_q;
            end
            case (state_q)
                E_IDLE: if (start) begin
                    n_q     <= n_clamped;
                    k_q     <= k_clamped;
                    state_q <= E_LUT;
                end
                E_LUT: if (lut_full_q[rsel_q]) begin
                    res_shift    <= lut_shift_q[rsel_q*{{ shift_w }} +: {{ shift_w }}];
{%- if count_w > k_w %}
                    res_count    <= ({ {{ count_w - k_w }}'d0, k_q } < n_q) ? k_q : n_q[KW-1:0];
{%- elif count_w == k_w %}
                    res_count    <= (k_q < n_q) ? k_q : n_q;
{%- else %}
                    res_count    <= (k_q < { {{ k_w - count_w }}'d0, n_q }) ? k_q : { {{ k_w - count_w }}'d0, n_q };
{%- endif %}
                    scan_start_q <= 1'b1;
                    topk_clear_q <= 1'b1;
                    state_q      <= E_SCAN;
                end
                E_SCAN: if (s_last) begin
                    // The scanner has read its last LUT entry: the buffer is free for the next LUT.
                    lut_full_q[rsel_q] <= 1'b0;
                    rsel_q  <= !rsel_q;
                    state_q <= E_EMIT;
                end
                E_EMIT: if (topk_done) begin
                    done    <= 1'b1;
                    state_q <= E_IDLE;
                end
                default: state_q <= E_IDLE;
            endcase
        end
    end
endmodule

`default_nettype wire
