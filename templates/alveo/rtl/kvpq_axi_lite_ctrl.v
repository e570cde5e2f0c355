{{ header }}
// kvpq_axi_lite_ctrl: the kernel's AXI4-Lite control slave in XRT's ap_ctrl_hs convention.
//   0x00 ap_ctrl: bit 0 ap_start (set by the host, cleared when the run ends), bit 1 ap_done
//        (clear on read), bit 2 ap_idle, bit 3 ap_ready (clear on read)
//   0x04 global interrupt enable; 0x08 interrupt enable (bit 0 done, bit 1 ready);
//   0x0c interrupt status (write 1 to toggle)
{%- for a in args %}
//   0x{{ "{:02x}"|format(a.offset) }} {{ a.name }}{% if a.size == 8 %} (low word; high word at 0x{{ "{:02x}"|format(a.offset + 4) }}){% endif %}
{%- endfor %}
`default_nettype none
// Vitis requires the port name `interrupt`, a C++ keyword-like word to Verilator.
/* verilator lint_off SYMRSVDWORD */

module kvpq_axi_lite_ctrl (
    input  wire        clk,
    input  wire        rst,
    input  wire        s_awvalid,
    output wire        s_awready,
    input  wire [11:0] s_awaddr,
    input  wire        s_wvalid,
    output wire        s_wready,
    input  wire [31:0] s_wdata,
    input  wire [3:0]  s_wstrb,
    output reg         s_bvalid,
    input  wire        s_bready,
    output wire [1:0]  s_bresp,
    input  wire        s_arvalid,
    output wire        s_arready,
    input  wire [11:0] s_araddr,
    output reg         s_rvalid,
    input  wire        s_rready,
    output reg  [31:0] s_rdata,
    output wire [1:0]  s_rresp,
    output wire        interrupt,
    output reg         ap_start,
    input  wire        ap_done,       // pulse: the run ended (also ap_ready)
    input  wire        ap_idle,
{%- for a in args %}
    output reg  [{{ a.size * 8 - 1 }}:0] arg_{{ a.name }}{% if !loop.last %},{% endif %}
{%- endfor %}
);
    localparam [11:0] A_CTRL = 12'h{{ "{:03x}"|format(reg_ctrl) }},
                      A_GIE  = 12'h{{ "{:03x}"|format(reg_gie) }},
                      A_IER  = 12'h{{ "{:03x}"|format(reg_ier) }},
                      A_ISR  = 12'h{{ "{:03x}"|format(reg_isr) }};

    reg        aw_have_q;     // a write address is waiting for its data
    reg [11:0] waddr_q;
    reg        done_q;        // sticky ap_done, cleared by reading ap_ctrl
    reg        ready_q;       // sticky ap_ready, cleared by reading ap_ctrl
    reg        gie_q;
    reg [1:0]  ier_q;
    reg [1:0]  isr_q;

    assign s_awready = !aw_have_q && !s_bvalid;
    assign s_wready  = aw_have_q && !s_bvalid;
    assign s_bresp   = 2'b00;
    assign s_arready = !s_rvalid;
    assign s_rresp   = 2'b00;
    assign interrupt = gie_q && (isr_q != 2'b00);

    wire w_fire = s_wvalid && s_wready;
    wire [31:0] wmask = { {8{s_wstrb[3]}}, {8{s_wstrb[2]}}, {8{s_wstrb[1]}}, {8{s_wstrb[0]}} };

    function [31:0] merge(input [31:0] old, input [31:0] data, input [31:0] mask);
        merge = (old & ~mask) | (data & mask);
    endfunction

    always @(posedge clk) begin
        if (rst) begin
            aw_have_q <= 1'b0;
            waddr_q   <= 12'd0;
            s_bvalid  <= 1'b0;
            s_rvalid  <= 1'b0;
            s_rdata   <= 32'd0;
            ap_start  <= 1'b0;
            done_q    <= 1'b0;
            ready_q   <= 1'b0;
            gie_q     <= 1'b0;
            ier_q     <= 2'b00;
            isr_q     <= 2'b00;
{%- for a in args %}
            arg_{{ a.name }} <= {{ a.size * 8 }}'d0;
{%- endfor %}
        end else begin
            // Write channel: address, then data, then the response.
            if (s_awvalid && s_awready) begin
                aw_have_q <= 1'b1;
                waddr_q   <= s_awaddr;
            end
            if (s_bvalid && s_bready) s_bvalid <= 1'b0;
            if (w_fire) begin
                aw_have_q <= 1'b0;
                s_bvalid  <= 1'b1;
                case (waddr_q)
                    A_CTRL: if (s_wstrb[0] && s_wdata[{{ start_bit }}]) ap_start <= 1'b1;
                    A_GIE:  if (s_wstrb[0]) gie_q <= s_wdata[0];
                    A_IER:  if (s_wstrb[0]) ier_q <= s_wdata[1:0];
                    A_ISR:  if (s_wstrb[0]) isr_q <= isr_q ^ s_wdata[1:0];
{%- for a in args %}
                    12'h{{ "{:03x}"|format(a.offset) }}: arg_{{ a.name }}[31:0] <= merge(arg_{{ a.name }}[31:0], s_wdata, wmask);
{%- if a.size == 8 %}
                    12'h{{ "{:03x}"|format(a.offset + 4) }}: arg_{{ a.name }}[63:32] <= merge(arg_{{ a.name }}[63:32], s_wdata, wmask);
{%- endif %}
{%- endfor %}
                    default: ;
                endcase
            end
            // Read channel: one outstanding read.
            if (s_rvalid && s_rready) s_rvalid <= 1'b0;
            if (s_arvalid && s_arready) begin
                s_rvalid <= 1'b1;
                case (s_araddr)
                    A_CTRL: s_rdata <= {{ ctrl_read }};
                    A_GIE:  s_rdata <= {31'd0, gie_q};
                    A_IER:  s_rdata <= {30'd0, ier_q};
                    A_ISR:  s_rdata <= {30'd0, isr_q};
{%- for a in args %}
                    12'h{{ "{:03x}"|format(a.offset) }}: s_rdata <= arg_{{ a.name }}[31:0];
{%- if a.size == 8 %}
                    12'h{{ "{:03x}"|format(a.offset + 4) }}: s_rdata <= arg_{{ a.name }}[63:32];
{%- endif %}
{%- endfor %}
                    default: s_rdata <= 32'd0;
                endcase
            end
            // The run's end: ap_start falls, ap_done and ap_ready rise; reading ap_ctrl
            // clears them (a read in the same cycle as the end leaves them set for the next read).
            if (s_arvalid && s_arready && s_araddr == A_CTRL) begin
                done_q  <= 1'b0;
                ready_q <= 1'b0;
            end
            if (ap_done) begin
                ap_start <= 1'b0;
                done_q   <= 1'b1;
                ready_q  <= 1'b1;
                isr_q    <= isr_q | ier_q;
            end
        end
    end
endmodule

`default_nettype wire
