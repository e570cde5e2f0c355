{{ header }}
// kvpq_board_top: pq_topk_engine behind a byte stream, for open boards with few pins (a UART
// or an FTDI FIFO on one side). Every command is one byte followed by a fixed payload, least
// significant byte first:
//   0x01 + {{ cb_bytes }} byte(s)   one centroid            -> cb stream
//   0x02 + {{ q_bytes }} byte(s)   one quantized query     -> q stream
//   0x03 + {{ start_bytes }} byte(s)   {k, n_tokens}             -> start
//   0x04 + {{ beat_bytes }} byte(s)   one code beat           -> code stream
// Each result leaves as {{ res_bytes }} byte(s), least significant first: {last, shift, score, index}.
// Unknown command bytes are dropped.
`default_nettype none

module kvpq_board_top (
    input  wire       clk,
    input  wire       rst,
    input  wire       rx_valid,
    output wire       rx_ready,
    input  wire [7:0] rx_data,
    output wire       tx_valid,
    input  wire       tx_ready,
    output wire [7:0] tx_data,
    output wire       led_busy
);
    localparam PW = {{ payload_bits }};   // payload register, whole bytes
    localparam RW = {{ res_bits }};   // result record, whole bytes

    localparam [7:0] CMD_CB    = 8'h{{ "{:02x}"|format(cmd_cb) }},
                     CMD_QUERY = 8'h{{ "{:02x}"|format(cmd_query) }},
                     CMD_START = 8'h{{ "{:02x}"|format(cmd_start) }},
                     CMD_BEAT  = 8'h{{ "{:02x}"|format(cmd_beat) }};
    localparam [1:0] R_CMD     = 2'd0,   // wait for a command byte
                     R_PAYLOAD = 2'd1,   // collect payload bytes
                     R_ISSUE   = 2'd2;   // hand the payload to the engine

    reg  [1:0]        rx_state_q;
    reg  [7:0]        cmd_q;
    reg  [{{ byte_w - 1 }}:0]        bytes_left_q;
    reg  [PW-1:0]     payload_q;        // bytes shift in from the top: an n-byte payload ends
                                        // at the top n bytes, its first byte lowest

    wire cb_ready, q_ready, code_ready, busy, done;
    wire unused_ready;
    wire issue_cb    = (rx_state_q == R_ISSUE) && (cmd_q == CMD_CB);
    wire issue_query = (rx_state_q == R_ISSUE) && (cmd_q == CMD_QUERY);
    wire issue_start = (rx_state_q == R_ISSUE) && (cmd_q == CMD_START);
    wire issue_beat  = (rx_state_q == R_ISSUE) && (cmd_q == CMD_BEAT);
    wire issued      = (issue_cb && cb_ready) || (issue_query && q_ready)
                    || (issue_start && !busy) || (issue_beat && code_ready);

    assign rx_ready = (rx_state_q != R_ISSUE);

    always @(posedge clk) begin
        if (rst) begin
            rx_state_q <= R_CMD;
        end else begin
            case (rx_state_q)
                R_CMD: if (rx_valid) begin
                    cmd_q      <= rx_data;
                    case (rx_data)
                        CMD_CB:    begin bytes_left_q <= {{ byte_w }}'d{{ cb_bytes }}; rx_state_q <= R_PAYLOAD; end
                        CMD_QUERY: begin bytes_left_q <= {{ byte_w }}'d{{ q_bytes }}; rx_state_q <= R_PAYLOAD; end
                        CMD_START: begin bytes_left_q <= {{ byte_w }}'d{{ start_bytes }}; rx_state_q <= R_PAYLOAD; end
                        CMD_BEAT:  begin bytes_left_q <= {{ byte_w }}'d{{ beat_bytes }}; rx_state_q <= R_PAYLOAD; end
                        default:   rx_state_q <= R_CMD;
                    endcase
                end
                R_PAYLOAD: if (rx_valid) begin
                    payload_q    <= { rx_data, payload_q[PW-1:8] };
                    bytes_left_q <= bytes_left_q - {{ byte_w }}'d1;
                    if (bytes_left_q == {{ byte_w }}'d1) rx_state_q <= R_ISSUE;
                end
                default: if (issued) rx_state_q <= R_CMD;
            endcase
        end
    end

    wire                      beat_valid;
    wire                      beat_ready;
    wire [{{ res_n_w - 1 }}:0]              beat_n;
    wire [{{ res_lanes * index_w - 1 }}:0]              beat_index;
    wire [{{ res_lanes * score_bits - 1 }}:0]              beat_score;
    wire                      beat_last;
    wire                      res_valid;
    wire                      res_last;
    wire [{{ index_w - 1 }}:0]              res_index;
    wire [{{ score_bits - 1 }}:0]              res_score;
    wire [{{ shift_w - 1 }}:0]               res_shift;
    wire [{{ k_w - 1 }}:0]              res_count;
    wire                      res_ready;
    wire                      unused_status = done ^ (^res_count);

    pq_topk_engine u_engine (
        .clk        (clk),
        .rst        (rst),
        .cb_valid   (issue_cb),
        .cb_ready   (cb_ready),
        .cb_data    (payload_q[{{ cb_base }} +: {{ cb_w }}]),
        .cb_head    ({ {{ head_w }}{1'b0} }),   // the byte protocol carries one codebook
        .q_valid    (issue_query),
        .q_ready    (q_ready),
        .q_data     (payload_q[{{ q_base }} +: {{ q_w }}]),
        .q_head     ({ {{ head_w }}{1'b0} }),
        .start      (issue_start && !busy),
        .n_tokens   (payload_q[{{ start_base }} +: {{ count_w }}]),
        .k          (payload_q[{{ start_base + count_w }} +: {{ k_w }}]),
        .ready      (unused_ready),   // one query at a time: start only when not busy
        .busy       (busy),
        .done       (done),
        .code_valid (issue_beat),
        .code_ready (code_ready),
        .code_data  (payload_q[{{ beat_base }} +: {{ beat_w }}]),
        .res_valid  (beat_valid),
        .res_ready  (beat_ready),
        .res_n      (beat_n),
        .res_index  (beat_index),
        .res_score  (beat_score),
        .res_last   (beat_last),
        .res_shift  (res_shift),
        .res_count  (res_count)
    );

    // The UART takes one result at a time.
    result_unpack u_unpack (
        .clk       (clk),
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

    // Busy until the query's last result has left the unpacker for the UART: the engine is
    // done once its last result beat is taken.
    assign led_busy = busy || res_valid;

    // ---------------------------------------------------------------- result serializer
    reg  [RW-1:0]             tx_record_q;
    reg  [{{ byte_w - 1 }}:0]               tx_left_q;      // bytes still to send (0: idle)
    assign res_ready = (tx_left_q == {{ byte_w }}'d0);
    assign tx_valid  = (tx_left_q != {{ byte_w }}'d0);
    assign tx_data   = tx_record_q[7:0];

    always @(posedge clk) begin
        if (rst) begin
            tx_left_q <= {{ byte_w }}'d0;
        end else if (res_valid && res_ready) begin
            tx_record_q <= {{ record_expr }};
            tx_left_q   <= {{ byte_w }}'d{{ res_bytes }};
        end else if (tx_valid && tx_ready) begin
            tx_record_q <= tx_record_q >> 8;
            tx_left_q   <= tx_left_q - {{ byte_w }}'d1;
        end
    end
endmodule

`default_nettype wire
