    input  wire                       clk,
    input  wire                       rst,
    input  wire                       clear,     // a query's scores start (while accept is high)
    output wire                       accept,    // clear may start a query: its scores have room
    input  wire [{{ lanes - 1 }}:0]              in_valid,
    input  wire [{{ lanes * score_bits - 1 }}:0]             in_score,
    input  wire [{{ lanes * index_w - 1 }}:0]             in_index,
    input  wire                       flush,     // all scores delivered: emit `count` results
    input  wire [{{ k_w - 1 }}:0]              count,
    output wire                       res_valid,
    input  wire                       res_ready,
    output wire [{{ res_n_w - 1 }}:0]              res_n,      // results in this beat, slots 0 .. res_n - 1
    output wire [{{ res_lanes * index_w - 1 }}:0]              res_index,
    output wire [{{ res_lanes * score_bits - 1 }}:0]              res_score,
    output wire                       res_last,
    output reg                        done{# The interface every top-k unit shares: pq_topk_engine instantiates either. #}