{{ header }}
// result_unpack: the engine's result beats (up to {{ res_lanes }} results, ascending token index) as one
// result per cycle, for a consumer that takes one at a time (the board's UART). A beat is
// taken when the unit is empty or sends its
// beat's last result, so a stream of beats leaves without bubbles.
`default_nettype none

module result_unpack (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       in_valid,
    output wire                       in_ready,
    input  wire [{{ res_n_w - 1 }}:0]              in_n,       // results in the beat, slots 0 .. in_n - 1
    input  wire [{{ res_lanes * index_w - 1 }}:0]              in_index,
    input  wire [{{ res_lanes * score_bits - 1 }}:0]              in_score,
    input  wire                       in_last,
    output wire                       out_valid,
    input  wire                       out_ready,
    output wire [{{ index_w - 1 }}:0]              out_index,
    output wire [{{ score_bits - 1 }}:0]              out_score,
    output wire                       out_last
);
{%- if res_lanes == 1 %}
    // One result per beat: nothing to hold.
    assign in_ready  = out_ready;
    assign out_valid = in_valid;
    assign out_index = in_index;
    assign out_score = in_score;
    assign out_last  = in_last;
    wire unused = clk ^ rst ^ in_n[0];
{%- else %}
    localparam IDX = {{ index_w }};
    localparam SW  = {{ score_bits }};
    localparam RNW = {{ res_n_w }};

    reg                       held_q;         // a beat is being sent
    reg  [RNW-1:0]            left_q;         // its results not yet sent
    reg  [{{ res_lanes * index_w - 1 }}:0]              index_q;        // slot 0 is the next result
    reg  [{{ res_lanes * score_bits - 1 }}:0]              score_q;
    reg                       last_q;
    wire                      out_fire  = out_valid && out_ready;
    wire                      final_one = (left_q == {{ res_n_w }}'d1);

    assign in_ready  = !held_q || (out_fire && final_one);
    assign out_valid = held_q;
    assign out_index = index_q[IDX-1:0];
    assign out_score = score_q[SW-1:0];
    assign out_last  = last_q && final_one;

    always @(posedge clk) begin
        if (rst) begin
            held_q <= 1'b0;
        end else if (in_valid && in_ready) begin
            held_q  <= 1'b1;
            left_q  <= in_n;
            index_q <= in_index;
            score_q <= in_score;
            last_q  <= in_last;
        end else if (out_fire) begin
            // Shift the next slot down rather than select it: no wide multiplexer.
            held_q  <= !final_one;
            left_q  <= left_q - {{ res_n_w }}'d1;
            index_q <= index_q >> IDX;
            score_q <= score_q >> SW;
        end
    end
{%- endif %}
endmodule

`default_nettype wire
