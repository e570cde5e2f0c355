{{ header }}
// kvpq_axi_writer: writes `beats` DATA_W-bit words (with their byte strobes) taken from a
// valid/ready stream to consecutive addresses from `base` on an AXI4 write channel, as INCR
// bursts of at most 256 beats that never cross a 4 KiB boundary; each burst's address goes
// out before its data.
// `busy` stays high until every write response has come back, so the data is in memory
// when it falls. `base` must be aligned to DATA_W/8 bytes. The AW signals the writer never
// varies are constants (ID 0, SIZE log2 of the beat bytes, INCR, normal non-cacheable
// bufferable, unprivileged, no QoS). `err` latches a write response SLVERR or DECERR until
// `clear`.
`default_nettype none

module kvpq_axi_writer #(
    parameter DATA_W    = 64,
    parameter SIZE_LOG2 = 3     // log2(DATA_W / 8)
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                start,      // latch base and beats (while !busy)
    input  wire                clear,      // forget a latched error
    input  wire [63:0]         base,
    input  wire [31:0]         beats,
    output wire                busy,
    output reg                 err,        // a response was SLVERR or DECERR since `clear`
    output wire [0:0]          m_awid,
    output reg  [63:0]         m_awaddr,
    output reg  [7:0]          m_awlen,
    output wire [2:0]          m_awsize,
    output wire [1:0]          m_awburst,
    output wire [0:0]          m_awlock,
    output wire [3:0]          m_awcache,
    output wire [2:0]          m_awprot,
    output wire [3:0]          m_awqos,
    output reg                 m_awvalid,
    input  wire                m_awready,
    output wire [DATA_W-1:0]   m_wdata,
    output wire [DATA_W/8-1:0] m_wstrb,
    output wire                m_wlast,
    output wire                m_wvalid,
    input  wire                m_wready,
    input  wire [0:0]          m_bid,
    input  wire [1:0]          m_bresp,
    input  wire                m_bvalid,
    output wire                m_bready,
    input  wire                in_valid,
    output wire                in_ready,
    input  wire [DATA_W-1:0]   in_data,
    input  wire [DATA_W/8-1:0] in_strb     // bytes of in_data to write
);
    reg  [63:0] addr_q;     // address of the next burst
    reg  [31:0] ask_q;      // beats not yet covered by a burst address
    reg  [8:0]  burst_q;    // beats left in the burst whose address went out
    reg  [31:0] open_q;     // bursts whose write response is outstanding

    wire [12:0] to_4k = (13'd4096 - {1'b0, addr_q[11:0]}) >> SIZE_LOG2;
    wire [31:0] cap   = (to_4k < 13'd256) ? {19'd0, to_4k} : 32'd256;
    wire [31:0] len   = (ask_q < cap) ? ask_q : cap;
    wire [31:0] len_m1 = len - 32'd1;
    wire        unused_len = &len_m1[31:8];

    wire in_burst = (burst_q != 9'd0);
    wire w_fire   = in_burst && in_valid && m_wready;
    wire aw_fire  = m_awvalid && m_awready;
    wire b_fire   = m_bvalid;

    assign m_awid    = {{ ax.id }};
    localparam [2:0] AXSIZE = SIZE_LOG2;
    assign m_awsize  = AXSIZE;
    assign m_awburst = {{ ax.burst }};     // INCR
    assign m_awlock  = {{ ax.lock }};
    assign m_awcache = {{ ax.cache }};
    assign m_awprot  = {{ ax.prot }};
    assign m_awqos   = {{ ax.qos }};
    // One ID is ever issued; SLVERR and DECERR both have BRESP[1] set.
    wire unused_b = &{m_bid, m_bresp[0]};
    assign m_wvalid = in_burst && in_valid;
    assign in_ready = in_burst && m_wready;
    assign m_wdata  = in_data;
    assign m_wstrb  = in_strb;
    assign m_wlast  = (burst_q == 9'd1);
    assign m_bready = 1'b1;
    assign busy     = (ask_q != 32'd0) || m_awvalid || in_burst || (open_q != 32'd0);

    always @(posedge clk) begin
        if (rst) begin
            m_awvalid <= 1'b0;
            m_awaddr  <= 64'd0;
            m_awlen   <= 8'd0;
            addr_q    <= 64'd0;
            ask_q     <= 32'd0;
            burst_q   <= 9'd0;
            open_q    <= 32'd0;
            err       <= 1'b0;
        end else if (start) begin
            addr_q <= base;
            ask_q  <= beats;
        end else begin
            if (m_awvalid) begin
                if (m_awready) begin
                    m_awvalid <= 1'b0;
                    burst_q   <= {1'b0, m_awlen} + 9'd1;
                end
            end else if (!in_burst && ask_q != 32'd0) begin
                m_awvalid <= 1'b1;
                m_awaddr  <= addr_q;
                m_awlen   <= len_m1[7:0];
                addr_q    <= addr_q + ({32'd0, len} << SIZE_LOG2);
                ask_q     <= ask_q - len;
            end
            if (w_fire) burst_q <= burst_q - 9'd1;
            case ({aw_fire, b_fire})
                2'b10:   open_q <= open_q + 32'd1;
                2'b01:   open_q <= open_q - 32'd1;
                default: ;
            endcase
        end
        if (!rst) begin
            if (clear) err <= 1'b0;
            else if (b_fire && m_bresp[1]) err <= 1'b1;
        end
    end
endmodule

`default_nettype wire
