{{ header }}
// kvpq_axi_reader: reads `beats` consecutive DATA_W-bit words from `base` on an AXI4 read
// channel, as INCR bursts of at most 256 beats that never cross a 4 KiB boundary (AXI4 rule),
// and streams them out in order. `base` must be aligned to DATA_W/8 bytes (XRT buffers are
// 4 KiB aligned). The R channel is passed straight through, so `out_ready` is the backpressure.
// The AR signals the reader never varies are constants (ID 0, SIZE log2 of the beat bytes,
// INCR, normal non-cacheable bufferable, unprivileged, no QoS). `err` latches a beat that
// came with RRESP SLVERR or DECERR until `clear`; its data is still delivered.
`default_nettype none

module kvpq_axi_reader #(
    parameter DATA_W    = 32,
    parameter SIZE_LOG2 = 2     // log2(DATA_W / 8)
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              start,      // latch base and beats (while !busy)
    input  wire              clear,      // forget a latched error
    input  wire [63:0]       base,
    input  wire [31:0]       beats,
    output wire              busy,       // beats still to arrive
    output reg               err,        // a beat answered SLVERR or DECERR since `clear`
    output wire [0:0]        m_arid,
    output reg  [63:0]       m_araddr,
    output reg  [7:0]        m_arlen,
    output wire [2:0]        m_arsize,
    output wire [1:0]        m_arburst,
    output wire [0:0]        m_arlock,
    output wire [3:0]        m_arcache,
    output wire [2:0]        m_arprot,
    output wire [3:0]        m_arqos,
    output reg               m_arvalid,
    input  wire              m_arready,
    input  wire [0:0]        m_rid,
    input  wire [DATA_W-1:0] m_rdata,
    input  wire [1:0]        m_rresp,
    input  wire              m_rlast,
    input  wire              m_rvalid,
    output wire              m_rready,
    output wire              out_valid,
    input  wire              out_ready,
    output wire [DATA_W-1:0] out_data
);
    reg  [63:0] addr_q;     // address of the next burst
    reg  [31:0] ask_q;      // beats not yet requested
    reg  [31:0] left_q;     // beats not yet received

    // Beats up to the next 4 KiB boundary, capped at AXI4's 256-beat burst.
    wire [12:0] to_4k = (13'd4096 - {1'b0, addr_q[11:0]}) >> SIZE_LOG2;
    wire [31:0] cap   = (to_4k < 13'd256) ? {19'd0, to_4k} : 32'd256;
    wire [31:0] len   = (ask_q < cap) ? ask_q : cap;
    wire [31:0] len_m1 = len - 32'd1;

    assign m_arid    = {{ ax.id }};
    localparam [2:0] AXSIZE = SIZE_LOG2;
    assign m_arsize  = AXSIZE;
    assign m_arburst = {{ ax.burst }};     // INCR
    assign m_arlock  = {{ ax.lock }};
    assign m_arcache = {{ ax.cache }};
    assign m_arprot  = {{ ax.prot }};
    assign m_arqos   = {{ ax.qos }};
    assign busy      = (left_q != 32'd0);
    assign out_valid = m_rvalid;
    assign m_rready  = out_ready;
    assign out_data  = m_rdata;
    // Bursts are counted by beats, so RLAST carries nothing new; one ID is ever issued.
    wire   unused_r = &{m_rlast, m_rid, m_rresp[0]};
    wire   unused_len   = &len_m1[31:8];

    always @(posedge clk) begin
        if (rst) begin
            m_arvalid <= 1'b0;
            m_araddr  <= 64'd0;
            m_arlen   <= 8'd0;
            addr_q    <= 64'd0;
            ask_q     <= 32'd0;
            left_q    <= 32'd0;
            err       <= 1'b0;
        end else if (start) begin
            addr_q <= base;
            ask_q  <= beats;
            left_q <= beats;
        end else begin
            if (m_arvalid) begin
                if (m_arready) m_arvalid <= 1'b0;
            end else if (ask_q != 32'd0) begin
                m_arvalid <= 1'b1;
                m_araddr  <= addr_q;
                m_arlen   <= len_m1[7:0];
                addr_q    <= addr_q + ({32'd0, len} << SIZE_LOG2);
                ask_q     <= ask_q - len;
            end
            if (m_rvalid && out_ready) left_q <= left_q - 32'd1;
        end
        // SLVERR (2'b10) and DECERR (2'b11) both have RRESP[1] set.
        if (!rst) begin
            if (clear) err <= 1'b0;
            else if (m_rvalid && out_ready && m_rresp[1]) err <= 1'b1;
        end
    end
endmodule

`default_nettype wire
