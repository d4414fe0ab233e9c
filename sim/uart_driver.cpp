// Verilator-native serial line for the pin-level FPGA top (rtl.uart_bridge.FpgaTop), loaded
// by sim/uart_host.py through ctypes: the host's bytes go onto uart_rx as 8N1 frames of
// `divisor` clocks per bit, and uart_tx is decoded the way a USB-serial bridge would (each
// bit sampled in its middle). Python hands over whole byte strings; the clock runs in C++.
//
// Build: sim.batch.verilate_shared, through a wrapper that defines VTOP and includes its
// header (VTOP has the ports clk_in, uart_rx, uart_tx, led).
#include <cstdint>
#include <deque>
#include <memory>
#include "verilated.h"

struct DqtUart {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<VTOP> top;
    int div = 4;
    uint64_t cycle = 0;
    // receiver of the board's tx line
    int rx_state = 0;      // 0 idle, 1 start, 2 data, 3 stop
    int rx_timer = 0, rx_bit = 0;
    uint8_t rx_sh = 0;
    std::deque<uint8_t> got;
    int64_t framing_errors = 0;
};

namespace {

void clock(DqtUart* u) {
    u->top->clk_in = 1;
    u->top->eval();
    u->top->clk_in = 0;
    u->top->eval();
    ++u->cycle;
    // decode the board's tx line after the edge
    const int line = u->top->uart_tx & 1;
    switch (u->rx_state) {
    case 0:
        if (!line) { u->rx_state = 1; u->rx_timer = u->div / 2; }
        break;
    case 1:
        if (--u->rx_timer <= 0) {
            if (line) u->rx_state = 0;  // glitch
            else { u->rx_state = 2; u->rx_timer = u->div; u->rx_bit = 0; u->rx_sh = 0; }
        }
        break;
    case 2:
        if (--u->rx_timer <= 0) {
            u->rx_sh = static_cast<uint8_t>(u->rx_sh | (line << u->rx_bit));
            u->rx_timer = u->div;
            if (++u->rx_bit == 8) u->rx_state = 3;
        }
        break;
    default:
        if (--u->rx_timer <= 0) {
            if (line) u->got.push_back(u->rx_sh);
            else ++u->framing_errors;
            u->rx_state = 0;
        }
    }
}

}  // namespace

extern "C" {

void* dqt_uart_open(int divisor) {
    auto* u = new DqtUart;
    u->ctx = std::make_unique<VerilatedContext>();
    u->top = std::make_unique<VTOP>(u->ctx.get());
    u->div = divisor;
    u->top->uart_rx = 1;
    u->top->clk_in = 0;
    u->top->eval();
    for (int i = 0; i < 64; ++i) clock(u);  // power-on reset
    return u;
}

void dqt_uart_close(void* h) {
    auto* u = static_cast<DqtUart*>(h);
    u->top->final();
    delete u;
}

uint64_t dqt_uart_cycle(void* h) { return static_cast<DqtUart*>(h)->cycle; }
int64_t dqt_uart_framing_errors(void* h) { return static_cast<DqtUart*>(h)->framing_errors; }
int dqt_uart_led(void* h) { return static_cast<DqtUart*>(h)->top->led & 1; }

// Send n_in bytes (back to back), then keep clocking until n_out bytes have arrived (bytes
// that arrived beyond a previous call's count come first) or max_cycles have passed.
// Returns the number of bytes written to out.
int64_t dqt_uart_xfer(void* h, const uint8_t* in, int64_t n_in, uint8_t* out, int64_t n_out,
                      int64_t max_cycles) {
    auto* u = static_cast<DqtUart*>(h);
    const uint64_t stop = u->cycle + static_cast<uint64_t>(max_cycles);
    for (int64_t i = 0; i < n_in && u->cycle < stop; ++i) {
        const uint16_t frame = static_cast<uint16_t>((in[i] << 1) | (1u << 9));  // start 0, stop 1
        for (int b = 0; b < 10; ++b) {
            u->top->uart_rx = (frame >> b) & 1;
            for (int t = 0; t < u->div; ++t) clock(u);
        }
    }
    u->top->uart_rx = 1;
    while (static_cast<int64_t>(u->got.size()) < n_out && u->cycle < stop) clock(u);
    int64_t k = 0;
    while (k < n_out && !u->got.empty()) {
        out[k++] = u->got.front();
        u->got.pop_front();
    }
    return k;
}

}  // extern "C"
